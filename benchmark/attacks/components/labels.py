"""Analytic label recovery from the update."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmark.victim import Observation


def last_linear_weight_gradient(observation: Observation) -> Tensor:
    """The update's tensor for the weight of the model's last ``nn.Linear`` (K, D)."""
    linears = [m for m in observation.model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to read a label from")
    weight = linears[-1].weight
    index = next(i for i, p in enumerate(observation.model.parameters()) if p is weight)
    return observation.update[index]


def idlg_label(observation: Observation) -> Tensor:
    """iDLG (Zhao et al., 2020): the label of a single sample.

    With cross-entropy, ∂L/∂W_last[j, :] = (p_j − y_j)·aᵀ, and a ≥ 0 after a sigmoid, so the true
    class is the only row with a negative sum: ŷ = argmin_j Σ_k ∂L/∂W_last[j, k]. Returns (1,).
    """
    if observation.batch_size != 1:
        raise ValueError(f"the iDLG label rule needs batch size 1, got {observation.batch_size}")
    return torch.argmin(last_linear_weight_gradient(observation).sum(dim=1)).reshape(1)
