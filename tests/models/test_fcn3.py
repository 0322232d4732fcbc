import torch
from torch import nn

from benchmark.models import MODELS


def test_architecture_matches_rgap():
    model = MODELS.get("fcn3")(1, 28, 2)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 1000), (1000, 100), (100, 1)]
    assert all(m.bias is None for m in linears)
    assert [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 1)
