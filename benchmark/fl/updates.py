"""The client's loss and the FL update rules (FedSGD, FedAvg), written with ``torch.func`` so that
the victim and the attacker compute an update with one function."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

from benchmark.core.registry import Registry
from benchmark.protocol.spec import FLSpec


def logistic_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary logistic loss of a one-logit head u (N, 1): mean over n of log(1 + exp(−y_n·u_n)), y = ±1.

    ``targets`` are labels t ∈ {0, 1} (N,) (y = 2t − 1) or probabilities of the two classes (N, 2),
    whose second column is P(t = 1); equal to binary cross-entropy on sigmoid(u).
    """
    positive = targets[:, 1] if targets.ndim == 2 else targets.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[:, 0], positive)


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The victim's loss, selected by the head's width: one logit (N, 1) is a binary logistic head
    (:func:`logistic_loss`, R-GAP's victims); K ≥ 2 logits (N, K) take the mean cross-entropy.

    ``targets`` are class indices (N,) or class probabilities (N, K) (K = 2 for one logit). Victim
    and attacker both use this function, so the attacker's loss is the victim's loss.
    """
    return (logistic_loss if logits.shape[1] == 1 else F.cross_entropy)(logits, targets)


UpdateRule = Callable[[nn.Module, dict[str, Tensor], dict[str, Tensor], Tensor, Tensor, FLSpec], dict[str, Tensor]]


PROTOCOLS: Registry[UpdateRule] = Registry("FL protocol")


_plain_autograd: ContextVar[bool] = ContextVar("plain_autograd", default=False)


@contextmanager
def plain_autograd() -> Iterator[None]:
    """Within this block :func:`gradient` differentiates with ``torch.autograd`` instead of
    ``torch.func.grad``: the same gradient without functorch's per-operation overhead, for a caller
    outside any ``torch.func`` transform (the attacker's engine with one problem)."""
    token = _plain_autograd.set(True)
    try:
        yield
    finally:
        _plain_autograd.reset(token)


LossOfParameters = Callable[..., Tensor]  # (params: dict[str, Tensor], *args) -> a scalar loss


def gradient(loss: LossOfParameters) -> Callable[..., dict[str, Tensor]]:
    """``torch.func.grad(loss)``: (params, *args) ↦ ∂loss/∂params, composable with ``vmap``; within
    :func:`plain_autograd` the same by ``torch.autograd.grad``, as ``torch.func.grad`` behaves: the
    gradient is computed under an outer ``no_grad`` too, and is differentiable again where the
    caller records gradients; a parameter the loss does not use gets zeros."""
    if not _plain_autograd.get():
        return grad(loss)

    def differentiate(params: dict[str, Tensor], *args: Tensor) -> dict[str, Tensor]:
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            leaves = {name: p if p.requires_grad else p.detach().requires_grad_() for name, p in params.items()}
            values = torch.autograd.grad(
                loss(leaves, *args),
                list(leaves.values()),
                create_graph=recording,
                allow_unused=True,
                materialize_grads=True,
            )
        return dict(zip(leaves, values))

    return differentiate


def _loss_of(model: nn.Module) -> Callable[[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor], Tensor]:
    # Buffers are an argument, not captured: a model in train mode updates its BatchNorm statistics
    # in place, which torch.func allows only on the function's own inputs.
    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return task_loss(functional_call(model, (params, buffers), (inputs,)), targets)

    return loss


@PROTOCOLS.register("fedsgd")
def fedsgd_update(
    model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor, fl: FLSpec
) -> dict[str, Tensor]:
    """FedSGD: ∇θ L(f_θ(x), y), the gradient of the mean loss over the batch, per parameter name.

    Written with ``torch.func`` so that the victim and the attacker (inside ``vmap``, differentiating
    w.r.t. its candidates) compute the update with this one function.
    """
    return gradient(_loss_of(model))(params, buffers, inputs, targets)


@PROTOCOLS.register("fedavg")
def fedavg_update(
    model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor, fl: FLSpec
) -> dict[str, Tensor]:
    """FedAvg (McMahan et al., 2017) client: ``local_epochs`` passes of SGD over the batch in order,
    mini-batches of ``local_batch_size``; the update is θ_before − θ_after (Geiping et al.'s setting)."""
    loss, current = _loss_of(model), params
    size = fl.local_batch_size or len(inputs)
    for _ in range(fl.local_epochs):
        for start in range(0, len(inputs), size):
            step = gradient(loss)(current, buffers, inputs[start : start + size], targets[start : start + size])
            current = {name: current[name] - fl.local_lr * step[name] for name in current}
    return {name: params[name] - current[name] for name in params}
