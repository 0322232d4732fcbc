"""adam-dlg: DLG's gradient matching with the iDLG label, optimised by Adam (a LeakBench plugin example).

For each problem k (a target, or a restart of one), a dummy input x'_k ~ N(0, 1), (B, C, H, W),
minimises the squared distance between its update and the observed one,

    min_{x'}  Σ_l ‖∇_{θ_l} CE(f(x'), ŷ) − ∇_{θ_l}‖²,

with the label ŷ given by the threat model or read from the last layer (iDLG rule, batch size 1),
using Adam instead of DLG's L-BFGS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmark.attacks.base import OptimizationAttack
from benchmark.attacks.components.distances import squared_distance
from benchmark.attacks.labels.single import idlg_label
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class AdamDLGConfig:
    """The hyper-parameters; defaults are your paper's."""

    max_steps: int = 2000  # every attack has it; a task's budget may override it
    lr: float = 0.1
    stop_loss: float | None = 1e-6  # optional: a problem stops once its objective is below it


class AdamDLG(OptimizationAttack):
    """adam-dlg (LeakBench example plugin): DLG's objective with the iDLG label, optimised by Adam."""

    Config = AdamDLGConfig

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:  # why it cannot run on a task, or None
        if observation.labels is None and observation.batch_size != 1:
            return "the iDLG label rule needs batch size 1 or known labels"
        return None

    def __init__(self, observations, config: AdamDLGConfig | None = None, seeds=None) -> None:
        super().__init__(observations, config, seeds)
        first = self.observations[0]
        self.inputs = nn.Parameter(self.randn(first.batch_size, *first.input_shape))  # (K, B, C, H, W)
        labels = self.problems.labels  # (K, B) where the threat model gives them, else None
        if labels is None:
            labels = torch.stack([idlg_label(observation) for observation in self.observations])
        self.register_buffer("labels", labels)

    def candidates(self) -> list[Tensor]:  # the tensors the optimiser changes
        return [self.inputs]

    def objective(self) -> Tensor:  # one loss per problem, (K,)
        return squared_distance(self.problems.flat_updates(self.inputs, self.labels), self.problems.flat_target)

    def current(self) -> dict[str, Tensor]:  # images (K, B, C, H, W) in [0, 1], labels (K, B)
        return {"images": self.problems.to_images(self.inputs.detach()), "labels": self.labels}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.candidates(), lr=self.config.lr)
