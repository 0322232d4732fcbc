"""Inverting Gradients (Geiping, Bauermeister, Dröge, Moeller; NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import GradientMatchingAttack
from benchmark.attacks.components.distances import cosine_distance
from benchmark.attacks.components.priors import bn_distance, total_variation
from benchmark.attacks.labels.single import idlg_label
from benchmark.core.errors import NotApplicableError
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class InvertingGradientsConfig:
    max_steps: int = 24_000  # Adam iterations (paper: 24 000; its default config: 4 800)
    lr: float = 0.1
    tv: float = 1e-4  # weight α of the TV prior (authors' CLI default; 1e-6 for an untrained ConvNet)
    signed: bool = True  # Adam on the sign of the gradient
    boxed: bool = True  # project onto the image box [0, 1] after each step
    lr_decay_at: tuple[float, ...] = (3 / 8, 5 / 8, 7 / 8)  # fractions of max_steps where lr ×= 0.1
    patience: int | None = None  # stop a problem whose best loss stalls this many steps (paper: never)
    bn_prior: float = 0.0  # weight of Yin et al.'s BatchNorm-statistics prior (needs threat.bn_statistics)
    labels: str = "auto"  # a label rule (leakbench ls label-rules) read before optimising; auto: the paper's


@ATTACKS.register("inverting_gradients", aliases=("ig",))
class InvertingGradients(GradientMatchingAttack):
    """Inverting Gradients (Geiping et al., NeurIPS 2020): cosine gradient matching with a TV prior.

        min_x  1 − ⟨∇θ L(f(x), y), g⟩ / (‖∇θ L(f(x), y)‖·‖g‖) + α·TV(x)

    over all parameter tensors concatenated, TV anisotropic (mean |∂x| + mean |∂y|). x ~ N(0, 1) in
    model-input coordinates; Adam (lr 0.1) on the sign of the gradient; after every step x is
    clamped to the image box [0, 1] expressed in those coordinates; lr ×0.1 at 3/8, 5/8 and 7/8 of
    the run. Labels: the threat model's if given, the iDLG rule for one sample, otherwise
    softmax-parametrised labels optimised jointly. Restarts (the runner's) keep the lowest loss.

    Where the threat model gives the private batch's BatchNorm statistics, ``bn_prior`` > 0 adds the
    prior of Yin et al. (CVPR 2021), β·Σ_l ‖μ_l(x) − μ_l‖₂ + ‖σ²_l(x) − σ²_l‖₂ (not in the paper).
    """

    Config = InvertingGradientsConfig
    own_label_rule = "idlg"

    def __init__(
        self,
        observations: Sequence[Observation],
        config: InvertingGradientsConfig | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__(observations, config, seeds)
        if self.config.bn_prior > 0 and self.problems.target_bn_statistics is None:
            raise NotApplicableError(
                "bn_prior needs the private batch's BatchNorm statistics: a task with "
                "threat.bn_statistics: batch or known"
            )

    def known_labels(self) -> Tensor | None:
        """The threat model's labels, else for one image the iDLG rule's (as the paper's code does)."""
        if self.problems.labels is None and self.observations[0].batch_size == 1:
            return torch.stack([idlg_label(observation) for observation in self.observations])
        return self.problems.labels

    def objective(self) -> Tensor:
        distance = cosine_distance(
            self.problems.flat_updates(self.inputs, self.label_targets()), self.problems.flat_target
        )
        loss = distance + self.config.tv * total_variation(self.inputs)
        if self.config.bn_prior > 0:
            observed = self.problems.target_bn_statistics
            loss = loss + self.config.bn_prior * bn_distance(self.problems.bn_statistics(self.inputs), observed)
        return loss

    def after_backward(self) -> None:
        if self.config.signed:
            self.inputs.grad.sign_()

    def after_step(self) -> None:
        if self.config.boxed:
            self.problems.to_box(self.inputs)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.candidates(), lr=self.config.lr)
        milestones = [int(self.config.max_steps * f) for f in self.config.lr_decay_at]
        return [optimizer], [torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)]
