"""Yin et al.'s batch label restoration (See through Gradients / GradInversion, CVPR 2021)."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import distinct_labels_fit, last_linear_gradients, negative_features, one_per_class
from benchmark.fl.observation import Observation


@LABEL_RULES.register("yin")
class YinRule(LabelRule):
    """Yin et al. (CVPR 2021, §3.1): ŷ = argsort_j(min_d ∂L/∂W_{j,d})[:B].

    ∂L/∂W_j = (1/B)·Σ_n (p_nj − y_nj)·a_nᵀ; with non-negative head inputs a_n (a ReLU or sigmoid
    before the head) every entry of an absent class's row is ≥ 0, and a present class's row has
    negative entries. Assumes distinct labels (B ≤ K).
    """

    paper = "Yin, Mallya, Vahdat, Alvarez, Kautz, Molchanov: See through Gradients, CVPR 2021"

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        return super().unsupported(observation) or distinct_labels_fit(observation) or negative_features(observation)

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        minima = last_linear_gradients(observation)[0].min(dim=1).values
        chosen = torch.argsort(minima, stable=True)[: observation.batch_size]
        return one_per_class(chosen, observation.num_classes), {"negative_rows": int((minima < 0).sum())}
