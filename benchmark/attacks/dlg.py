"""DLG: Deep Leakage from Gradients (Zhu, Liu, Han; NeurIPS 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.attacks.components.distances import squared_distance
from benchmark.attacks.components.lbfgs import BatchedLBFGS
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class DLGConfig:
    max_steps: int = 300  # L-BFGS steps (paper: 300)
    lr: float = 1.0
    lbfgs_iterations: int = 20  # function evaluations per L-BFGS step (PyTorch default)
    stop_loss: float | None = None  # stop once the gradient distance is below this (paper: none)
    patience: int | None = None  # stop a problem whose best loss stalls this many steps (paper: never)


@ATTACKS.register("dlg")
class DLG(OptimizationAttack):
    """DLG (Zhu et al., NeurIPS 2019): inputs and soft labels optimised jointly with L-BFGS.

    Dummy inputs x' ~ N(0, 1) and dummy label logits y' ~ N(0, 1) minimise

        min_{x', y'}  Σ_l ‖∇_{θ_l} CE(f(x'), softmax(y')) − ∇_{θ_l}‖²

    Where the threat model gives the labels, only x' is optimised. The recovered
    label is argmax y' at the best point found (not the initial guess, a bug of public code).
    """

    Config = DLGConfig

    def __init__(self, observations: Sequence[Observation], config: DLGConfig | None = None,
                 seeds: Sequence[int] | None = None) -> None:
        super().__init__(observations, config, seeds)
        first = self.observations[0]
        self.inputs = nn.Parameter(self.randn(first.batch_size, *first.input_shape))
        labels = self.known_labels()
        self.learns_labels = labels is None
        if self.learns_labels:
            self.label_logits = nn.Parameter(self.randn(first.batch_size, first.num_classes))
        else:
            self.register_buffer("labels", labels)

    def known_labels(self) -> Tensor | None:
        """(K, B) labels fixed before optimising: the threat model's, if any."""
        return self.problems.labels

    def candidates(self) -> list[Tensor]:
        return [self.inputs, self.label_logits] if self.learns_labels else [self.inputs]

    def _targets(self) -> Tensor:
        return self.label_logits.softmax(dim=-1) if self.learns_labels else self.labels

    def objective(self) -> Tensor:
        return squared_distance(self.problems.flat_updates(self.inputs, self._targets()), self.problems.flat_target)

    def current(self) -> dict[str, Tensor]:
        labels = self.label_logits.argmax(dim=-1) if self.learns_labels else self.labels
        return {"images": self.problems.to_images(self.inputs.detach()), "labels": labels.detach()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return BatchedLBFGS(self.candidates(), lr=self.config.lr, max_iter=self.config.lbfgs_iterations)
