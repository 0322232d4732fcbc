import pytest
import torch
from torch import nn

from benchmark.attacks.components.layers import INVERTIBLE, activation_problem, first_layer, linear_chain
from benchmark.core.errors import NotApplicableError
from benchmark.models import MODELS


def test_lenet_is_a_chain_of_convolutions_and_a_linear_head():
    model = MODELS.get("lenet_zhu")(3, 16, 10)
    chain = linear_chain(model, (3, 16, 16))
    assert [(layer.kind, layer.input_shape, layer.output_shape) for layer in chain] == [
        ("conv", (3, 16, 16), (12, 8, 8)),
        ("conv", (12, 8, 8), (12, 4, 4)),
        ("conv", (12, 4, 4), (12, 4, 4)),
        ("linear", (192, 1, 1), (10, 1, 1)),
    ]
    assert [type(layer.activation) for layer in chain] == [nn.Sigmoid] * 3 + [nn.Identity]
    parameters = list(model.parameters())
    assert all(
        parameters[layer.weight] is layer.module.weight and parameters[layer.bias] is layer.module.bias
        for layer in chain
    )


class _Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(x.flatten(1) + self.a(x.flatten(1)))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Skip(), "does not reproduce its output"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()), "BatchNorm2d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, groups=1, dilation=2)), "dilation"),
    ],
)
def test_what_is_not_a_plain_chain_is_refused(model, message):
    with pytest.raises(NotApplicableError, match=message):
        linear_chain(model, (1, 2, 2) if isinstance(model, _Skip) else (1, 8, 8))


def test_the_first_layer_skips_flattening():
    name, module = first_layer(MODELS.get("mlp")(1, 4, 10), (1, 4, 4))
    assert name == "layers.1" and isinstance(module, nn.Linear)


@pytest.mark.parametrize("activation", [nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Identity()])
def test_activations_invert_exactly(activation):
    z = torch.randn(100, dtype=torch.float64)
    rule = INVERTIBLE[type(activation)]
    torch.testing.assert_close(rule.inverse(activation, activation(z)), z)
    z.requires_grad_(True)
    (slope,) = torch.autograd.grad(activation(z).sum(), z)
    torch.testing.assert_close(rule.derivative(activation, z.detach()), slope)


def test_non_invertible_activations_are_named():
    assert "ReLU is not invertible" in activation_problem(nn.ReLU())
    assert "slope 0" in activation_problem(nn.LeakyReLU(0.0))
    assert activation_problem(nn.LeakyReLU(0.2)) is None
