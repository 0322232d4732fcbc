import torch
from torch import nn

from benchmark.models import MODELS


def test_first_layer_is_fully_connected_with_a_bias_on_the_flattened_image():
    model = MODELS.get("mlp")(3, 32, 10)
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert (first.in_features, first.bias is not None) == (3072, True)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
