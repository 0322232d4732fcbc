import torch

from benchmark.models import MODELS


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_sigmoid_resnet18_has_every_relu_made_a_sigmoid():
    plain, sigmoid = MODELS.get("resnet18")(3, 32, 10), MODELS.get("resnet18_sigmoid")(3, 32, 10)
    assert _count(sigmoid, torch.nn.ReLU) == 0
    assert _count(sigmoid, torch.nn.Sigmoid) == _count(plain, torch.nn.ReLU) == 17  # stem + 2 per block
    assert [p.shape for p in sigmoid.parameters()] == [p.shape for p in plain.parameters()]
    assert sigmoid(torch.rand(2, 3, 32, 32)).shape == (2, 10)
