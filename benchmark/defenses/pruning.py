"""Gradient pruning (magnitude top-k sparsification; Zhu et al., NeurIPS 2019, §5; Lin et al., ICLR 2018).

Per tensor of the update with n entries, the k = n − round(p·n) entries of largest magnitude are kept
and the others set to zero (p = ``fraction``, the share pruned); ties are broken by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update


@DEFENSES.register("pruning")
@dataclass(frozen=True)
class Pruning(Defense):
    """Zero the share ``fraction`` of smallest-magnitude entries of every tensor."""

    strength = "fraction"
    fraction: float = 0.9

    def __post_init__(self) -> None:
        self._require(0 <= self.fraction <= 1, f"fraction must be in [0, 1], got {self.fraction}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        defended = {}
        for name, g in update.items():
            flat = g.flatten()
            keep = flat.abs().topk(flat.numel() - round(self.fraction * flat.numel())).indices
            defended[name] = torch.zeros_like(flat).index_copy(0, keep, flat[keep]).view_as(g)
        return defended
