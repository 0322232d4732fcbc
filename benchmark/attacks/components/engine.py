"""K attack problems in one computation: the attacker's updates for all candidates at once.

A problem is one observation attacked from one seed (a target, or a restart of it). The
attacker's update for problem k is the victim's own update rule (``benchmark.victim.PROTOCOLS``,
written with ``torch.func``) inside ``vmap``, so one training step serves all K problems and each
problem's result is the one it would have alone. The victim model is held once: its parameters are shared across
problems that observed the same model, and stacked only where the problems' models differ (a
fresh victim per target). One problem alone takes the rule without ``vmap``, differentiated by
plain autograd: the same numbers without the batching and functorch overhead of each operation.
Where the problems' models differ, the attacker's convolutions differentiate themselves with forward
convolutions (:class:`_Conv2d`), so that the objective's backward pass never runs torch's convolution
double backward, which loops over the K problems (vmap folds them into groups). An objective compiled
with ``torch.compile`` (``OptimizationAttack.compile_objective``) takes ``vmap`` for one problem too.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import replace_all_batch_norm_modules_, vmap

from benchmark.fl.batchnorm import BatchStatistics, batch_statistics
from benchmark.fl.observation import Observation
from benchmark.fl.updates import PROTOCOLS, plain_autograd


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Every entry of ``tensors``, in order, as one 1-d tensor."""
    return torch.cat([t.flatten() for t in tensors])


class _Conv2dFunction(torch.autograd.Function):
    """``F.conv2d(x, w, b, stride, padding)`` whose backward is written with forward convolutions:
    ∂x = conv_transpose2d(g, w), ∂w = conv2d(xᵀ, gᵀ) with the stride as dilation, ∂b = Σ g. The same
    derivatives as torch's; differentiating them again (the objective's backward through the
    update) takes each convolution's first-order backward, never ``_convolution_double_backward``,
    whose weight term loops over groups."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor, b: Tensor | None, stride: tuple[int, int], padding: tuple[int, int]) -> Tensor:
        return F.conv2d(x, w, b, stride, padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w, b, stride, padding = inputs
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding, ctx.bias = stride, padding, b is not None

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w = ctx.saved_tensors
        (s_h, s_w), (p_h, p_w), (k_h, k_w) = ctx.stride, ctx.padding, w.shape[2:]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # the rows and columns the strided forward never reached
            extra = (
                x.shape[2] + 2 * p_h - (g.shape[2] - 1) * s_h - k_h,
                x.shape[3] + 2 * p_w - (g.shape[3] - 1) * s_w - k_w,
            )
            grad_x = F.conv_transpose2d(g, w, None, ctx.stride, ctx.padding, extra)
        if ctx.needs_input_grad[1]:
            grad_w = F.conv2d(x.transpose(0, 1), g.transpose(0, 1), None, 1, ctx.padding, ctx.stride)
            grad_w = grad_w.transpose(0, 1)[:, :, :k_h, :k_w]
        if ctx.bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class _Conv2d(nn.Conv2d):
    """An ``nn.Conv2d`` computed by :class:`_Conv2dFunction`; torch's own within ``torch.compile``, which
    cannot trace the function under ``vmap`` and whose compiled double backward has no loop over groups."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if torch.compiler.is_compiling():
            return F.conv2d(input, weight, bias, self.stride, self.padding)
        return _Conv2dFunction.apply(input, weight, bias, self.stride, self.padding)


def _convolutions_differentiated_forward(model: nn.Module) -> None:
    """Every plain ``nn.Conv2d`` of ``model`` (zero padding given as numbers, no dilation or groups) as :class:`_Conv2d`."""
    for module in model.modules():
        if (
            type(module) is nn.Conv2d
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
            and module.dilation == (1, 1)
            and module.groups == 1
        ):
            module.__class__ = _Conv2d


class ProblemBatch(nn.Module):
    """Stacked observations of K problems over one architecture.

    Attributes:
        flat_target: the observed updates, (K, P): every parameter's entries in order.
        labels: (K, B) labels where the threat model gives them, else None.
    """

    def __init__(self, observations: Sequence[Observation]) -> None:
        super().__init__()
        first = observations[0]
        self.observations = list(observations)
        self.model = copy.deepcopy(first.model).requires_grad_(False)
        if self.model.training:  # batch statistics, without in-place running-stat updates under vmap
            replace_all_batch_norm_modules_(self.model)
        self._names = [name for name, _ in self.model.named_parameters()]
        per_problem = [list(o.model.parameters()) for o in observations]
        self.shared = all(torch.equal(a, b) for params in per_problem[1:] for a, b in zip(params, per_problem[0]))
        if not self.shared:  # stacked weights: vmap's convolutions are grouped, one group per problem
            _convolutions_differentiated_forward(self.model)
        for i in range(len(self._names)):
            stacked = per_problem[0][i] if self.shared else torch.stack([p[i] for p in per_problem])
            # derived from the observations, so never written to checkpoints (persistent=False)
            self.register_buffer(f"param_{i}", stacked.detach().clone(), persistent=False)
        self.register_buffer(
            "flat_target", torch.stack([flatten(o.update) for o in observations]).detach(), persistent=False
        )
        labels = [o.labels for o in observations]
        self.register_buffer(
            "labels", torch.stack(labels) if all(x is not None for x in labels) else None, persistent=False
        )
        statistics = [o.bn_statistics for o in observations]
        self._bn_layers = len(statistics[0]) if all(s is not None for s in statistics) else None
        for layer in range(self._bn_layers or 0):
            for j, kind in enumerate(("mean", "var")):
                self.register_buffer(
                    f"bn_{kind}_{layer}", torch.stack([s[layer][j] for s in statistics]), persistent=False
                )
        zeros = torch.zeros(first.input_shape)[None]
        low, high = (
            (zeros, zeros + 1)
            if first.normalization is None
            else (first.normalization.apply(zeros), first.normalization.apply(zeros + 1))
        )
        self.register_buffer("box_low", low, persistent=False)  # (1, C, H, W): broadcasts over (K, B, C, H, W)
        self.register_buffer("box_high", high, persistent=False)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def target_updates(self) -> tuple[Tensor, ...]:
        """The observed updates, one (K, ...) tensor per model parameter (views of :attr:`flat_target`)."""
        shapes = [getattr(self, f"param_{i}").shape[0 if self.shared else 1 :] for i in range(len(self._names))]
        pieces = self.flat_target.split([shape.numel() for shape in shapes], dim=1)
        return tuple(piece.view(len(self), *shape) for piece, shape in zip(pieces, shapes))

    def _params(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"param_{i}") for i, name in enumerate(self._names)}

    def updates(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, ...]:
        """The attacker's update for every problem k: the victim's own update rule (FedSGD's
        ∇θ L(f_θ(x_k), y_k), or FedAvg's unrolled local steps) applied to the candidates.

        Args:
            inputs: (K, B, C, H, W) candidate model inputs.
            targets: (K, B) class indices or (K, B, N) class probabilities.
        Returns:
            One (K, ...) tensor per parameter, differentiable w.r.t. ``inputs`` and ``targets``.
        """
        buffers, fl = dict(self.model.named_buffers()), self.observations[0].fl
        rule = PROTOCOLS.get(fl.protocol)

        def update(params: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
            return rule(self.model, params, buffers, x, y, fl)

        # one problem (its parameters unstacked: shared): no batching to do, unless compiled (torch.compile
        # traces torch.func's transforms, not plain autograd's)
        if len(self) == 1 and not torch.compiler.is_compiling():
            with plain_autograd():
                alone = update(self._params(), inputs[0], targets[0])
            return tuple(alone[name][None] for name in self._names)
        per_problem = vmap(update, in_dims=(None if self.shared else 0, 0, 0))(self._params(), inputs, targets)
        return tuple(per_problem[name] for name in self._names)

    def flat_updates(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """:meth:`updates` as one (K, P) tensor, laid out as :attr:`flat_target`."""
        return torch.cat([update.flatten(1) for update in self.updates(inputs, targets)], dim=1)

    @property
    def target_bn_statistics(self) -> BatchStatistics | None:
        """The observed BatchNorm statistics of every problem's private batch, (K, C) each, or None
        where the threat model gives none."""
        if self._bn_layers is None:
            return None
        return tuple((getattr(self, f"bn_mean_{i}"), getattr(self, f"bn_var_{i}")) for i in range(self._bn_layers))

    def bn_statistics(self, inputs: Tensor) -> BatchStatistics:
        """The same statistics of the candidates (K, B, C, H, W), (K, C) each, differentiable."""
        buffers = dict(self.model.named_buffers())

        def statistics(params: dict[str, Tensor], x: Tensor) -> BatchStatistics:
            return batch_statistics(self.model, params, buffers, x)

        return vmap(statistics, in_dims=(None if self.shared else 0, 0))(self._params(), inputs)

    def to_box(self, inputs: Tensor) -> None:
        """Project candidate model inputs (K, B, C, H, W) in place onto the image box: the inputs whose
        images lie in [0, 1] (the preprocessing's image of [0, 1]; Inverting Gradients' projection after
        each step)."""
        with torch.no_grad():
            inputs.copy_(torch.maximum(torch.minimum(inputs, self.box_high), self.box_low))

    def to_images(self, inputs: Tensor) -> Tensor:
        """Model inputs (K, B, C, H, W) → images in [0, 1]."""
        return self.observations[0].to_images(inputs.flatten(0, 1)).view_as(inputs)
