"""Image priors added to gradient-matching objectives, one value per problem."""

from __future__ import annotations

from torch import Tensor

from benchmark.fl.batchnorm import BatchStatistics


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic TV of Inverting Gradients: mean |∂x| + mean |∂y| per problem; images (K, B, C, H, W) → (K,)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(dim=1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(dim=1)
    return dx + dy


def squared_total_variation(images: Tensor) -> Tensor:
    """Squared-difference TV of GRNN's code: 2·(mean (∂y)² + mean (∂x)²) per problem, the means over
    the whole batch; images (K, B, C, H, W) → (K,)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).flatten(1).mean(dim=1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).flatten(1).mean(dim=1)
    return 2 * (dy + dx)


def bn_distance(statistics: BatchStatistics, targets: BatchStatistics) -> Tensor:
    """Yin et al.'s BatchNorm prior (DeepInversion; See through Gradients, CVPR 2021):
    Σ_l ‖μ_l(x) − μ_l‖₂ + ‖σ²_l(x) − σ²_l‖₂ per problem, each layer's (K, C) statistics → (K,)."""
    return sum(
        (mean - target_mean).norm(dim=-1) + (var - target_var).norm(dim=-1)
        for (mean, var), (target_mean, target_var) in zip(statistics, targets)
    )
