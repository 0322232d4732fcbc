"""Image priors added to gradient-matching objectives, one value per problem."""

from __future__ import annotations

from torch import Tensor


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
