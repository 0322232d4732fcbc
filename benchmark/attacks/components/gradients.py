"""The attacker's side of the update: gradients of the victim's own loss on candidate inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmark.victim import task_loss


def candidate_gradients(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, ...]:
    """∇θ L(f(inputs), targets), differentiable w.r.t. the candidates (``create_graph``).

    ``targets`` are class indices (N,) or (soft) class probabilities (N, K).
    """
    loss = task_loss(model(inputs), targets)
    return torch.autograd.grad(loss, list(model.parameters()), create_graph=True)


def squared_distance(gradients: tuple[Tensor, ...] | list[Tensor], target: tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    """DLG's distance: Σ over parameter tensors of ‖∇' − ∇‖²."""
    return sum(((g - t) ** 2).sum() for g, t in zip(gradients, target, strict=True))
