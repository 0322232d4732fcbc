"""DLG: Deep Leakage from Gradients (Zhu, Liu, Han; NeurIPS 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack, Reconstruction
from benchmark.attacks.components.gradients import candidate_gradients, squared_distance
from benchmark.victim import Observation


@dataclass(frozen=True)
class DLGConfig:
    max_steps: int = 300  # L-BFGS steps (paper: 300)
    lr: float = 1.0
    lbfgs_iterations: int = 20  # function evaluations per L-BFGS step (PyTorch default)
    stop_loss: float | None = None  # stop once the gradient distance is below this (paper: none)


@ATTACKS.register("dlg")
class DLG(OptimizationAttack):
    """DLG (Zhu et al., NeurIPS 2019): inputs and soft labels optimised jointly with L-BFGS.

    Dummy inputs x' ~ N(0, 1) and dummy label logits y' ~ N(0, 1) minimise

        min_{x', y'}  Σ_l ‖∇_{θ_l} CE(f(x'), softmax(y')) − ∇_{θ_l}‖²

    Where the threat model gives the labels, only x' is optimised. The recovered
    label is argmax y' at the best point found (not the initial guess, a bug of public code).
    """

    Config = DLGConfig

    def __init__(self, observation: Observation, config: DLGConfig | None = None) -> None:
        super().__init__(observation, config)
        shape = (observation.batch_size, *observation.input_shape)
        self.inputs = nn.Parameter(torch.randn(shape))
        labels = self.known_labels()
        self.learns_labels = labels is None
        if self.learns_labels:
            self.label_logits = nn.Parameter(torch.randn(observation.batch_size, observation.num_classes))
        else:
            self.register_buffer("labels", labels)

    def known_labels(self) -> Tensor | None:
        """Labels fixed before optimising: the threat model's, if any."""
        return self.observation.labels

    def candidates(self) -> list[Tensor]:
        return [self.inputs, self.label_logits] if self.learns_labels else [self.inputs]

    def _targets(self) -> Tensor:
        return self.label_logits.softmax(dim=1) if self.learns_labels else self.labels

    def objective(self) -> Tensor:
        gradients = candidate_gradients(self.victim_model, self.inputs, self._targets())
        return squared_distance(gradients, list(self.target_update))

    def current(self, loss: float) -> Reconstruction:
        labels = self.label_logits.argmax(dim=1) if self.learns_labels else self.labels
        images = self.observation.to_images(self.inputs.detach())
        return Reconstruction(images=images.clone(), labels=labels.detach().clone(), loss=loss)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.LBFGS(self.candidates(), lr=self.config.lr, max_iter=self.config.lbfgs_iterations)
