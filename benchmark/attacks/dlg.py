"""DLG: Deep Leakage from Gradients (Zhu, Liu, Han; NeurIPS 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import GradientMatchingAttack
from benchmark.attacks.components.distances import squared_distance
from benchmark.attacks.components.lbfgs import BatchedLBFGS


@dataclass(frozen=True)
class DLGConfig:
    max_steps: int = 300  # L-BFGS steps (paper: 300)
    lr: float = 1.0
    lbfgs_iterations: int = 20  # function evaluations per L-BFGS step (PyTorch default)
    stop_loss: float | None = None  # stop once the gradient distance is below this (paper: none)
    patience: int | None = None  # stop a problem whose best loss stalls this many steps (paper: never)
    labels: str = "auto"  # a label rule (leakbench ls label-rules) read before optimising; auto: the paper's


@ATTACKS.register("dlg")
class DLG(GradientMatchingAttack):
    """DLG (Zhu et al., NeurIPS 2019): inputs and soft labels optimised jointly with L-BFGS.

    Dummy inputs x' ~ N(0, 1) and dummy label logits y' ~ N(0, 1) minimise

        min_{x', y'}  Σ_l ‖∇_{θ_l} CE(f(x'), softmax(y')) − ∇_{θ_l}‖²

    Where the threat model gives the labels, only x' is optimised. The recovered
    label is argmax y' at the best point found (not the initial guess, a bug of public code).
    """

    Config = DLGConfig

    def objective(self) -> Tensor:
        return squared_distance(
            self.problems.flat_updates(self.inputs, self.label_targets()), self.problems.flat_target
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return BatchedLBFGS(self.candidates(), lr=self.config.lr, max_iter=self.config.lbfgs_iterations)
