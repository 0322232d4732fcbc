"""Distances between the attacker's and the observed updates, one value per problem.

Both updates are flat, (K, P): K problems, then every parameter tensor's entries in order
(:meth:`~benchmark.attacks.components.engine.ProblemBatch.flat_updates`), so that each sum over all
parameters is one reduction.
"""

from __future__ import annotations

from torch import Tensor


def squared_distance(gradients: Tensor, target: Tensor) -> Tensor:
    """DLG (Zhu et al., 2019): Σ_l ‖∇'_l − ∇_l‖², (K, P) each → (K,)."""
    return (gradients - target).pow(2).sum(dim=1)


def cosine_distance(gradients: Tensor, target: Tensor) -> Tensor:
    """Inverting Gradients (Geiping et al., 2020): 1 − ⟨∇', ∇⟩ / (‖∇'‖·‖∇‖) over all parameters
    concatenated, (K, P) each → (K,). The norms are square roots of summed squares: torch's float32
    ``norm`` on the CPU loses about 2e-6 of a million-entry update, which 1 − cos magnifies."""
    norms = gradients.pow(2).sum(dim=1).sqrt() * target.pow(2).sum(dim=1).sqrt()
    return 1 - (gradients * target).sum(dim=1) / norms
