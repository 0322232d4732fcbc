"""iDLG: improved Deep Leakage from Gradients (Zhao, Mopuri, Bilen; 2020)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.dlg import DLG, DLGConfig
from benchmark.attacks.labels.single import idlg_label
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class IDLGConfig(DLGConfig):
    stop_loss: float | None = 1e-6  # paper: stop once the gradient distance is below 1e-6


@ATTACKS.register("idlg")
class IDLG(DLG):
    """iDLG (Zhao et al., 2020): the label read from the last layer's gradient, then DLG on inputs.

    The label comes from :func:`idlg_label` (or the threat model); x' alone is optimised with
    L-BFGS against the update, stopping below a distance of 1e-6:

        min_{x'}  Σ_l ‖∇_{θ_l} CE(f(x'), ŷ) − ∇_{θ_l}‖²
    """

    Config = IDLGConfig
    own_label_rule = "idlg"

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if observation.labels is None and observation.batch_size != 1:
            return f"the iDLG label rule needs batch size 1 (this task has {observation.batch_size}) or known labels"
        if observation.labels is None and observation.fl.protocol != "fedsgd":
            return "the iDLG label rule reads a FedSGD gradient (this task shares a FedAvg update); give known labels"
        return None

    def known_labels(self) -> Tensor:
        if self.problems.labels is not None:
            return self.problems.labels
        return torch.stack([idlg_label(observation) for observation in self.observations])
