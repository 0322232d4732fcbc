"""Additive noise on the shared update (Zhu et al., NeurIPS 2019, §5: Gaussian and Laplacian noise).

Every entry of every tensor of the update gets independent noise: g̃ = g + ξ, with
ξ ~ N(0, σ²) (``gaussian``) or ξ ~ Laplace(0, b), density exp(−|ξ|/b)/(2b) (``laplacian``).
DLG's paper states the noise by its variance (10⁻⁴ … 10⁻¹); here the parameter is the standard
deviation σ, resp. the scale b (whose standard deviation is √2·b).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update


@DEFENSES.register("gaussian")
@dataclass(frozen=True)
class GaussianNoise(Defense):
    """g + N(0, σ²) elementwise."""

    strength = "sigma"
    sigma: float = 1e-2

    def __post_init__(self) -> None:
        self._require(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        return {
            name: g + self.sigma * torch.randn(g.shape, generator=client.generator).to(g) for name, g in update.items()
        }


def laplace_like(g: Tensor, scale: float, generator: torch.Generator) -> Tensor:
    """Laplace(0, scale) samples shaped like ``g``: the difference of two Exp(1) samples, times the scale."""
    exponential = torch.empty((2, *g.shape)).exponential_(generator=generator)
    return (scale * (exponential[0] - exponential[1])).to(g)


@DEFENSES.register("laplacian")
@dataclass(frozen=True)
class LaplacianNoise(Defense):
    """g + Laplace(0, b) elementwise."""

    strength = "scale"
    scale: float = 1e-2

    def __post_init__(self) -> None:
        self._require(self.scale >= 0, f"scale must be >= 0, got {self.scale}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        return {name: g + laplace_like(g, self.scale, client.generator) for name, g in update.items()}
