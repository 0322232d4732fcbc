"""GradInversion: See through Gradients (Yin, Mallya, Vahdat, Alvarez, Kautz, Molchanov; CVPR 2021)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import GradientMatchingAttack
from benchmark.attacks.components.distances import squared_distance
from benchmark.attacks.components.priors import bn_distance, total_variation
from benchmark.core.errors import NotApplicableError
from benchmark.fl.batchnorm import BatchStatistics, batch_norm_layers
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class GradInversionConfig:
    max_steps: int = 20_000  # Adam iterations (paper and breaching's seethroughgradients config: 20 000)
    lr: float = 0.1
    warmup: int = 50  # linear warm-up steps, then cosine decay to 0 (breaching's config)
    gradient_scale: float = 1e-4  # weight of the squared gradient distance (breaching's objective scale)
    tv: float = 1e-4  # α_TV (breaching's config)
    l2: float = 1e-6  # α_ℓ2 of ‖x‖₂ (breaching's config)
    bn: float = 0.1  # α_BN of the BatchNorm prior (breaching's deep_inversion scale)
    group: float = 0.01  # α_group of group consistency (ours: breaching leaves it out)
    labels: str = "yin"  # the label rule (leakbench ls label-rules): Yin et al.'s own
    patience: int | None = None  # stop a problem whose best loss stalls this many steps (paper: never)


@ATTACKS.register("gradinversion", aliases=("yin",))
class GradInversion(GradientMatchingAttack):
    """GradInversion (Yin et al., CVPR 2021): the batch's labels first (Yin's rule), then

        min_x  s·Σ_l ‖∇θ_l L(f(x), ŷ) − g_l‖² + α_TV·TV(x) + α_ℓ2·‖x‖₂ + α_BN·R_BN(x) + α_g·‖x − x̄_G‖₂

    R_BN = Σ_l ‖μ_l(x) − μ_l‖₂ + ‖σ²_l(x) − σ²_l‖₂ against the private batch's BatchNorm statistics
    where the threat model gives them (``threat.bn_statistics``), else the model's running statistics
    (the paper's setting, a trained network). Group consistency: the problems of one target (its
    restarts, ``--restarts``, each from its own seed, solved together by the batched engine) are one
    group, and each is pulled towards the group's pixel-wise mean x̄_G (held fixed within a step; the
    paper registers the members before averaging, which this leaves out). x starts from N(0, 1) in
    model-input coordinates projected onto the image box; Adam (lr 0.1) with a 50-step warm-up and
    cosine decay; x projected onto the box after each step. The restart with the lowest objective is
    kept.
    """

    Config = GradInversionConfig

    def __init__(
        self,
        observations: Sequence[Observation],
        config: GradInversionConfig | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__(observations, config, seeds)
        self.problems.to_box(self.inputs)  # the N(0, 1) start projected too: every candidate scored is an image
        layers = [m for _, m in batch_norm_layers(self.observations[0].model)]
        readable = self.problems.target_bn_statistics is not None or all(m.track_running_stats for m in layers)
        if self.config.bn > 0 and not readable:
            raise NotApplicableError("the model keeps no running BatchNorm statistics to match; give bn: 0")
        targets = self._bn_targets() if readable else ()
        for i, (mean, var) in enumerate(targets):  # fixed for the fit: read once, not every step
            self.register_buffer(f"bn_target_mean_{i}", mean, persistent=False)
            self.register_buffer(f"bn_target_var_{i}", var, persistent=False)
        self._bn_target_layers = len(targets)
        first_of = {}
        group_of = torch.tensor([first_of.setdefault(id(o), len(first_of)) for o in self.observations])
        self.register_buffer("group_of", group_of, persistent=False)
        self.register_buffer("group_size", torch.bincount(group_of).float(), persistent=False)

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if not batch_norm_layers(observation.model):
            return "GradInversion matches BatchNorm statistics, and this model has no BatchNorm layer"
        return None

    def bn_targets(self) -> BatchStatistics:
        """The statistics R_BN matches, (K, C) per layer (:meth:`_bn_targets`, kept as buffers)."""
        return tuple(
            (getattr(self, f"bn_target_mean_{i}"), getattr(self, f"bn_target_var_{i}"))
            for i in range(self._bn_target_layers)
        )

    def _bn_targets(self) -> BatchStatistics:
        """The private batch's statistics where the threat model gives them, else every problem's
        model's running statistics."""
        if self.problems.target_bn_statistics is not None:
            return self.problems.target_bn_statistics
        per_problem = [
            [(m.running_mean, m.running_var) for _, m in batch_norm_layers(o.model)] for o in self.observations
        ]
        return tuple(
            (torch.stack([p[i][0] for p in per_problem]), torch.stack([p[i][1] for p in per_problem]))
            for i in range(len(per_problem[0]))
        )

    def group_distance(self) -> Tensor:
        """‖x_k − x̄_G(k)‖₂ per problem (K,): the distance to the mean of its group, held fixed."""
        x = self.inputs.detach()
        sums = x.new_zeros(len(self.group_size), *x.shape[1:]).index_add_(0, self.group_of, x)
        means = sums / self.group_size.view(-1, *[1] * (x.dim() - 1))
        return (self.inputs - means[self.group_of]).flatten(1).norm(dim=1)

    def objective(self) -> Tensor:
        config = self.config
        distance = squared_distance(
            self.problems.flat_updates(self.inputs, self.label_targets()), self.problems.flat_target
        )
        loss = config.gradient_scale * distance + config.tv * total_variation(self.inputs)
        loss = loss + config.l2 * self.inputs.flatten(1).norm(dim=1)
        if config.bn > 0:
            loss = loss + config.bn * bn_distance(self.problems.bn_statistics(self.inputs), self.bn_targets())
        if config.group > 0:
            loss = loss + config.group * self.group_distance()
        return loss

    def after_step(self) -> None:
        self.problems.to_box(self.inputs)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.candidates(), lr=self.config.lr)
        warmup, total = self.config.warmup, self.config.max_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        return [optimizer], [torch.optim.lr_scheduler.LambdaLR(optimizer, factor)]
