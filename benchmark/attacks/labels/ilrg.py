"""Instance-wise batch label restoration, iLRG (Ma et al., ICLR 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import head_layer, last_linear_gradients, round_counts
from benchmark.fl.observation import Observation


@LABEL_RULES.register("ilrg")
class ILRGRule(LabelRule):
    """iLRG (Ma et al., ICLR 2023): label counts from a linear system in the head's gradients.

    With ∂L/∂W_j = (1/B)·Σ_n (p_nj − y_nj)·a_nᵀ and ∂L/∂b_j = (1/B)·Σ_n (p_nj − y_nj), the ratio
    ē_j = ∂L/∂W_j / ∂L/∂b_j is a weighted mean of the head's inputs, dominated by class j's samples;
    its softmax P_j = softmax(W·ē_j + b) stands for their predictions. The counts k solve
    Σ_j k_j = B and Σ_j k_j·P_{j,i} − k_i = B·∂L/∂b_i (i = 1…K) by least squares, then are rounded
    to B. Exact on untrained networks, where a class's samples share nearly one prediction; needs a
    bias and, for the embeddings to be separable, B no larger than the head's input width. The
    system is square in effect (its K + 1 rows sum to a dependent one), so the rule's confidence is
    how far its solution is from integers (``largest_rounding``, 0 when exact).
    """

    paper = "Ma, Sun, Zhang, Wang, Yin: Instance-wise Batch Label Restoration via Gradients in FL, ICLR 2023"

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if reason := super().unsupported(observation):
            return reason
        head = head_layer(observation.model)
        if head.bias is None:
            return "it divides the head's weight gradient by its bias gradient, and the last layer has no bias"
        if observation.batch_size > head.in_features:
            return (
                f"its rank condition needs B ≤ the head's input width ({head.in_features}), "
                f"got B = {observation.batch_size}"
            )
        return None

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        weight, bias = last_linear_gradients(observation)
        head, size = head_layer(observation.model), observation.batch_size
        weight, bias = weight.to(torch.float64), bias.to(torch.float64)
        safe = torch.where(bias.abs() > 0, bias, torch.ones_like(bias))
        embeddings = torch.where(bias.abs()[:, None] > 0, weight / safe[:, None], torch.zeros_like(weight))
        with torch.no_grad():
            logits = embeddings @ head.weight.to(torch.float64).T + head.bias.to(torch.float64)
        probabilities = logits.softmax(dim=1)  # row j: the prediction of class j's mean embedding
        classes = len(bias)
        system = torch.cat([torch.ones(1, classes, dtype=torch.float64), probabilities.T - torch.eye(classes)])
        values = torch.cat([torch.tensor([float(size)], dtype=torch.float64), size * bias])
        solution = torch.linalg.lstsq(system, values[:, None], driver="gelsd").solution[:, 0]
        rounding = float((solution - solution.round()).abs().max())
        return round_counts(solution, size), {"largest_rounding": rounding}
