"""Quantisation of the update (gradient compression as a defence; cf. QSGD, Alistarh et al., NeurIPS
2017, and signSGD, Bernstein et al., ICML 2018).

``quantization`` (k bits): per tensor g with m = max|g|, the 2^k levels −m + j·Δ, Δ = 2m/(2^k − 1),
j = 0 … 2^k − 1, and every entry rounded to the nearest (deterministic rounding); 1 bit gives ±m.
``sign``: per tensor, sign(g)·mean|g| (zero counts as positive), so every entry is ±scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update


@DEFENSES.register("quantization")
@dataclass(frozen=True)
class Quantization(Defense):
    """Uniform ``bits``-bit quantisation of every tensor over [−max|g|, max|g|]."""

    strength = "bits"
    bits: int = 8

    def __post_init__(self) -> None:
        self._require(1 <= self.bits <= 32, f"bits must be in 1..32, got {self.bits}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        defended = {}
        for name, g in update.items():
            bound = g.abs().max()
            step = 2 * bound / (2**self.bits - 1)
            if bound == 0:
                defended[name] = g.clone()
                continue
            level = torch.round((g + bound) / step).clamp(0, 2**self.bits - 1)
            defended[name] = level * step - bound
        return defended


@DEFENSES.register("sign")
@dataclass(frozen=True)
class SignCompression(Defense):
    """sign(g)·mean|g| per tensor (no strength parameter: it is 1-bit compression)."""

    def apply(self, update: Update, client: ClientRound) -> Update:
        return {name: torch.where(g >= 0, 1.0, -1.0).to(g) * g.abs().mean() for name, g in update.items()}
