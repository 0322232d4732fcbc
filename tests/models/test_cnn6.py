import pytest
import torch
from torch import nn

from benchmark.models import MODELS

CNN6 = [
    (3, 12, (4, 4), (2, 2), (2, 2)),
    (12, 36, (3, 3), (2, 2), (1, 1)),
    (36, 36, (3, 3), (1, 1), (1, 1)),
    (36, 36, (3, 3), (1, 1), (1, 1)),
    (36, 64, (3, 3), (2, 2), (1, 1)),
    (64, 128, (3, 3), (1, 1), (1, 1)),
]


@pytest.mark.parametrize(("name", "conv2"), [("cnn6", 36), ("cnn6d", 20)])
def test_architecture_matches_rgap(name, conv2):
    model = MODELS.get(name)(3, 32, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    expected = [list(layer) for layer in CNN6]
    expected[1][1] = expected[2][0] = conv2
    assert [[c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding] for c in convs] == expected
    assert all(m.bias is None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    slopes = [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 6
    assert (model.classifier.in_features, model.classifier.out_features) == (3200, 1)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 1)


def test_multiclass_tasks_get_one_logit_per_class_and_other_sizes_work():
    assert MODELS.get("cnn6")(3, 32, 10)(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert MODELS.get("cnn6")(1, 28, 2)(torch.rand(1, 1, 28, 28)).shape == (1, 1)
