"""Single-sample label rules: the label of a batch of one, read from the head's gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import last_linear_gradients, negative_features
from benchmark.fl.observation import Observation


def idlg_label(observation: Observation) -> Tensor:
    """iDLG (Zhao et al., 2020): the label of a single sample.

    With cross-entropy, ∂L/∂W_last[j, :] = (p_j − y_j)·aᵀ, and a ≥ 0 after a sigmoid, so the true
    class is the only row with a negative sum: ŷ = argmin_j Σ_k ∂L/∂W_last[j, k]. Returns (1,).
    """
    if observation.batch_size != 1:
        raise ValueError(f"the iDLG label rule needs batch size 1, got {observation.batch_size}")
    return torch.argmin(last_linear_gradients(observation)[0].sum(dim=1)).reshape(1)


def bias_sign_label(observation: Observation) -> Tensor:
    """The label of a single sample from the sign of the head's bias gradient (Geiping et al. 2020).

    Cross-entropy: ∂L/∂b_j = p_j − y_j is negative only for the true class, ŷ = argmin_j ∂L/∂b_j.
    One-logit logistic head: ∂L/∂b = σ(u) − t, so ŷ = 1 iff ∂L/∂b < 0. Needs a bias; returns (1,).
    """
    _, bias = last_linear_gradients(observation)
    if observation.batch_size != 1 or bias is None:
        raise ValueError("the bias-sign rule needs batch size 1 and a last layer with a bias")
    return (bias < 0).to(torch.int64).reshape(1) if len(bias) == 1 else torch.argmin(bias).reshape(1)


def row_norm_label(observation: Observation) -> Tensor:
    """The label of a single sample from the norms of the head's weight-gradient rows (K ≥ 3 classes).

    Cross-entropy: ∂L/∂W_j = (p_j − y_j)·xᵀ, and |p_y − 1| = Σ_{j≠y} p_j ≥ p_j, so the true class
    has the largest row, whatever the signs of the features x (unlike the iDLG rule, which needs
    x ≥ 0). Ties arise only when all the remaining probability sits on one class. Returns (1,).
    """
    weight, _ = last_linear_gradients(observation)
    if observation.batch_size != 1 or weight.shape[0] < 3:
        raise ValueError("the row-norm rule needs batch size 1 and at least three classes")
    return torch.argmax(weight.to(torch.float64).norm(dim=1)).reshape(1)


def label_from_update(observation: Observation) -> tuple[Tensor, str] | None:
    """The single sample's label where the threat model or the update gives it, with its source:
    ``known``, else ``bias sign``, else ``row norm``; None where neither rule applies (a head with
    one or two logits and no bias)."""
    if observation.labels is not None:
        return observation.labels, "known"
    if observation.batch_size != 1:
        return None
    weight, bias = last_linear_gradients(observation)
    if bias is not None:
        return bias_sign_label(observation), "bias sign"
    if weight.shape[0] >= 3:
        return row_norm_label(observation), "row norm"
    return None


@LABEL_RULES.register("idlg")
class IDLGRule(LabelRule):
    """iDLG (Zhao et al., 2020) as a rule: one sample, the class whose weight-gradient row sums negative."""

    paper = "Zhao, Mopuri, Bilen: iDLG: Improved Deep Leakage from Gradients (arXiv 2001.02610, 2020)"

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if observation.batch_size != 1:
            return f"it reads one sample's label (this batch has {observation.batch_size})"
        return super().unsupported(observation) or negative_features(observation)

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        counts = torch.zeros(observation.num_classes, dtype=torch.int64)
        counts[idlg_label(observation)] = 1
        return counts, {}
