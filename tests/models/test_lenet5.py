import pytest
import torch

from benchmark.models import MODELS


def test_architecture_matches_grnn():
    model = MODELS.get("lenet5")(3, 32, 100)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 6, (5, 5)), (6, 16, (5, 5))]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 100)]
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in model.modules()) == 4
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_too_small_images_are_refused_with_the_minimum():
    with pytest.raises(ValueError, match="at least 12"):
        MODELS.get("lenet5")(3, 8, 10)
