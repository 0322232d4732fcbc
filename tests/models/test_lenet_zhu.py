import pytest
import torch

from benchmark.models import MODELS


@pytest.mark.parametrize(("channels", "size", "features"), [(3, 32, 768), (1, 28, 588)])
def test_architecture_matches_dlg(channels, size, features):
    model = MODELS.get("lenet_zhu")(channels, size, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (channels, 12, (5, 5), (2, 2), (2, 2)),
        (12, 12, (5, 5), (2, 2), (2, 2)),
        (12, 12, (5, 5), (1, 1), (2, 2)),
    ]
    assert model.classifier.in_features == features
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in model.modules()) == 3
    assert model(torch.rand(2, channels, size, size)).shape == (2, 10)
