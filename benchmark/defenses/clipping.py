"""Norm clipping of the whole update (as in DP-FedAvg's client clipping, McMahan et al., ICLR 2018):
g̃ = g · min(1, C / ‖g‖₂), the norm taken over all tensors of the update concatenated."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update, global_norm


def clip_factor(norm, max_norm: float):
    """min(1, C / norm), safe at norm 0."""
    return (max_norm / (norm + 1e-12)).clamp(max=1.0)


@DEFENSES.register("clipping")
@dataclass(frozen=True)
class NormClipping(Defense):
    """Scale the update down to L2 norm ``max_norm`` when it is longer; a shorter update is unchanged."""

    strength = "max_norm"
    max_norm: float = 1.0

    def __post_init__(self) -> None:
        self._require(self.max_norm > 0, f"max_norm must be > 0, got {self.max_norm}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        factor = clip_factor(global_norm(list(update.values())), self.max_norm)
        return {name: g * factor for name, g in update.items()}
