"""The bias rule for batches of distinct labels (breaching's ``analytic`` label strategy)."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import distinct_labels_fit, last_linear_gradients, one_per_class
from benchmark.fl.observation import Observation


@LABEL_RULES.register("analytic")
class AnalyticRule(LabelRule):
    """Labels from the signs of the head's bias gradient (Geiping et al., NeurIPS 2020; breaching).

    With cross-entropy, ∂L/∂b_j = (1/B)·Σ_n (p_nj − y_nj): positive for every absent class, and
    negative for a class present once unless the batch's other samples put more than 1 on it in
    total. For B distinct labels: the B classes with the most negative ∂L/∂b. Needs a bias; no
    assumption on the sign of the features.
    """

    paper = "Geiping, Bauermeister, Dröge, Moeller: Inverting Gradients, NeurIPS 2020 (breaching's 'analytic')"

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if reason := super().unsupported(observation) or distinct_labels_fit(observation):
            return reason
        return (
            "it reads the head's bias gradient, and the last layer has no bias"
            if (last_linear_gradients(observation)[1] is None)
            else None
        )

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        _, bias = last_linear_gradients(observation)
        chosen = torch.argsort(bias, stable=True)[: observation.batch_size]
        return one_per_class(chosen, observation.num_classes), {"negative_classes": int((bias < 0).sum())}
