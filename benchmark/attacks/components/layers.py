"""A victim model as a chain of linear layers and invertible activations: what closed-form attacks invert.

The chain is read by running a copy of the model once and recording its leaf modules in call order;
it is accepted only when re-composing the recorded layers reproduces the model's output, so skip
connections or functional operations in ``forward`` are refused, never silently ignored.

A fully connected layer is treated as a 1×1 convolution on a 1×1 image with D channels: every
layer maps an input (C, H, W) to a pre-activation z (F, H', W') with ``F.conv2d``, and one set of
formulas serves both kinds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core.errors import NotApplicableError


@dataclass(frozen=True)
class Invertible:
    """An element-wise activation x = σ(z) that a closed-form attack can undo."""

    inverse: Callable[[nn.Module, Tensor], Tensor]  # x ↦ z = σ⁻¹(x)
    derivative: Callable[[nn.Module, Tensor], Tensor]  # z ↦ σ'(z)


def _logit(module: nn.Module, x: Tensor) -> Tensor:
    eps = torch.finfo(x.dtype).eps  # recovered outputs may stray just outside (0, 1)
    return torch.logit(x.clamp(eps, 1 - eps))


def _sigmoid_derivative(module: nn.Module, z: Tensor) -> Tensor:
    return torch.sigmoid(z) * torch.sigmoid(-z)


INVERTIBLE: dict[type[nn.Module], Invertible] = {
    nn.Identity: Invertible(lambda m, x: x, lambda m, z: torch.ones_like(z)),
    nn.LeakyReLU: Invertible(
        lambda m, x: torch.where(x < 0, x / m.negative_slope, x),
        lambda m, z: torch.where(z < 0, m.negative_slope, 1.0).to(z.dtype),
    ),
    nn.Sigmoid: Invertible(_logit, _sigmoid_derivative),
}


def activation_problem(module: nn.Module) -> str | None:
    """Why ``module`` cannot be inverted element-wise, or None."""
    if type(module) not in INVERTIBLE:
        known = ", ".join(t.__name__ for t in INVERTIBLE)
        return f"activation {type(module).__name__} is not invertible (invertible: {known})"
    if isinstance(module, nn.LeakyReLU) and module.negative_slope <= 0:
        return f"LeakyReLU with slope {module.negative_slope} is not invertible"
    return None


@dataclass(frozen=True)
class Layer:
    """One linear layer of a chain, z = W x (+ b), followed by its activation σ (``nn.Identity`` if none).

    Attributes:
        name: the module's name in the model.
        module: the ``nn.Conv2d`` or ``nn.Linear``.
        activation: the module applied to z.
        input_shape: (C, H, W); a Linear's input is (D, 1, 1).
        output_shape: (F, H', W'); a Linear's output is (F, 1, 1).
        weight: position of the weight in ``model.parameters()``, hence in the observed update.
        bias: position of the bias, or None.
    """

    name: str
    module: nn.Module
    activation: nn.Module
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    weight: int
    bias: int | None

    @property
    def kind(self) -> str:
        return "linear" if isinstance(self.module, nn.Linear) else "conv"

    @property
    def stride(self) -> tuple[int, int]:
        return tuple(self.module.stride) if self.kind == "conv" else (1, 1)  # type: ignore[return-value]

    @property
    def padding(self) -> tuple[int, int]:
        return tuple(self.module.padding) if self.kind == "conv" else (0, 0)  # type: ignore[return-value]

    @property
    def kernel(self) -> tuple[int, int]:
        return tuple(self.module.kernel_size) if self.kind == "conv" else (1, 1)  # type: ignore[return-value]

    @property
    def unknowns(self) -> int:
        """Entries of the layer's input."""
        return prod(self.input_shape)

    def as_kernel(self, tensor: Tensor) -> Tensor:
        """The weight, or a tensor shaped like it (its gradient), as a conv kernel (F, C, kh, kw) in float64."""
        return tensor.detach().to(torch.float64).reshape(self.output_shape[0], self.input_shape[0], *self.kernel)

    def apply(self, weight: Tensor, x: Tensor) -> Tensor:
        """z = W x for inputs (N, C, H, W) (no bias), in the dtype of ``weight``."""
        return F.conv2d(x, weight, stride=self.stride, padding=self.padding)

    def transpose(self, weight: Tensor, k: Tensor) -> Tensor:
        """Wᵀ k for output gradients k (N, F, H', W') → (N, C, H, W)."""
        return torch.nn.grad.conv2d_input(
            (k.shape[0], *self.input_shape), weight, k, stride=self.stride, padding=self.padding
        )

    def weight_gradient(self, x: Tensor, k: Tensor) -> Tensor:
        """∇W = Σ_pos k[f, pos]·x[c, s·pos + (a, b)] for one input x (1, C, H, W) and k (1, F, H', W')."""
        shape = (self.output_shape[0], self.input_shape[0], *self.kernel)
        return torch.nn.grad.conv2d_weight(x, shape, k, stride=self.stride, padding=self.padding)


Call = tuple[str, nn.Module, Tensor, Tensor]  # name, module, its input, its output


def _leaf_calls(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[Call], Tensor, Tensor]:
    """Leaf modules of a copy of ``model`` in call order, with their input and output, for a fixed random input."""
    probe = copy.deepcopy(model)  # running the model must not touch the caller's copy (BatchNorm statistics)
    calls: list[Call] = []
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: calls.append((name, m, args[0], out)))
        for name, module in probe.named_modules()
        if not list(module.children())
    ]
    dtype = next(probe.parameters()).dtype
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    try:
        with torch.no_grad():
            output = probe(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls, x, output


def first_layer(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, nn.Module]:
    """The name and module of the first leaf module the model calls on its input (flattening aside)."""
    calls = [
        name
        for name, module, *_ in _leaf_calls(model, input_shape)[0]
        if not isinstance(module, (nn.Flatten, nn.Identity))
    ]
    if not calls:
        raise NotApplicableError("the model calls no leaf module")
    return calls[0], dict(model.named_modules())[calls[0]]


def _geometry_problem(name: str, module: nn.Module, args: Tensor) -> str | None:
    if isinstance(module, nn.Conv2d) and (
        module.groups != 1
        or module.dilation != (1, 1)
        or module.padding_mode != "zeros"
        or isinstance(module.padding, str)
    ):
        return (
            f"convolution '{name}' uses groups, dilation, string or non-zero padding; only plain convolutions "
            "are supported"
        )
    if isinstance(module, nn.Linear) and args.dim() != 2:
        return f"fully connected layer '{name}' acts on a {args.dim()}-d tensor, not on flat features"
    return None


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def linear_chain(model: nn.Module, input_shape: tuple[int, int, int]) -> list[Layer]:
    """The model as layers [L_1, ..., L_d] with x_{i+1} = σ_i(W_i x_i (+ b_i)), L_d the head.

    Raises:
        NotApplicableError: the model is not such a chain (another kind of module, two activations
            in a row, a module called twice, or a ``forward`` that does more than chain its modules).
    """
    calls, x, output = _leaf_calls(model, input_shape)
    names = [name for name, *_ in calls]
    if len(set(names)) != len(names):
        raise NotApplicableError("a module is called more than once (shared weights); the model is not a chain")
    index = {id(p): i for i, p in enumerate(model.parameters())}
    modules = dict(model.named_modules())
    found: list[dict] = []
    for name, module, args, out in calls:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if (problem := _geometry_problem(name, module, args)) is not None:
                raise NotApplicableError(problem)
            original = modules[name]
            flat = (1, 1) if isinstance(module, nn.Linear) else ()  # features (D,) as a (D, 1, 1) image
            found.append(
                {
                    "name": name,
                    "module": original,
                    "activation": nn.Identity(),
                    "input_shape": tuple(args.shape[1:]) + flat,
                    "output_shape": tuple(out.shape[1:]) + flat,
                    "weight": index[id(original.weight)],
                    "bias": None if original.bias is None else index[id(original.bias)],
                }
            )
        elif isinstance(module, (nn.Flatten, nn.Identity)):
            continue
        elif found and isinstance(found[-1]["activation"], nn.Identity) and not _has_state(module):
            found[-1]["activation"] = modules[name]
        else:
            raise NotApplicableError(
                f"module '{name}' ({type(module).__name__}) is neither a Conv2d/Linear layer nor "
                "a stateless activation right after one; closed-form attacks need a chain of layers"
            )
    if not found:
        raise NotApplicableError("the model has no Conv2d or Linear layer")
    layers = [Layer(**entry) for entry in found]
    recomposed = x
    with torch.no_grad():
        for layer in layers:
            module_input = recomposed.reshape(1, *layer.input_shape)
            module_input = module_input.flatten(1) if layer.kind == "linear" else module_input
            recomposed = layer.activation(layer.module(module_input))
    if recomposed.shape != output.shape or not torch.allclose(recomposed, output, rtol=1e-4, atol=1e-6):
        raise NotApplicableError(
            "re-composing the model's layers does not reproduce its output (skip connections "
            "or functional operations in forward); closed-form attacks need a chain of layers"
        )
    return layers
