"""Distances between the attacker's and the observed updates, one value per problem.

Every tensor is (K, ...): K problems, then the parameter's shape; the sums run over all
parameter tensors of the model.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor


def _per_problem_sum(tensors: Sequence[Tensor] | object) -> Tensor:
    return sum(t.flatten(1).sum(dim=1) for t in tensors)  # type: ignore[union-attr]


def squared_distance(gradients: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:
    """DLG (Zhu et al., 2019): Σ_l ‖∇'_l − ∇_l‖², shape (K,)."""
    return _per_problem_sum((g - t) ** 2 for g, t in zip(gradients, target, strict=True))


def cosine_distance(gradients: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:
    """Inverting Gradients (Geiping et al., 2020): 1 − ⟨∇', ∇⟩ / (‖∇'‖·‖∇‖) over all parameters
    concatenated, shape (K,)."""
    dot = _per_problem_sum(g * t for g, t in zip(gradients, target, strict=True))
    norms = _per_problem_sum(g * g for g in gradients).sqrt() * _per_problem_sum(t * t for t in target).sqrt()
    return 1 - dot / norms
