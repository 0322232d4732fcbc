"""Label Leakage from Gradients (Wainakh et al., PETS 2022): label counts from the head's row sums."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import dummy_inputs, head_layer, last_linear_gradients, negative_features
from benchmark.fl.observation import Observation
from benchmark.fl.updates import task_loss


def two_stages(row_sums: Tensor, batch: int, impact: float, offsets: Tensor | None = None) -> Tensor:
    """LLG's assignment: every class whose row sum g_j is negative gets a label and g_j −= m (stage 1,
    at most B classes, the most negative first); then, on g − s, the class with the smallest g gets
    the next label and g_j −= m, until B labels (stage 2). The impact m of one label is negative.
    Returns counts (K,) int64.

    (breaching 0.1.2's ``wainakh`` strategies subtract m in stage 2 from the last class of stage 1's
    loop instead of the chosen one, so a repeated label takes every remaining slot.)
    """
    g = row_sums.to(torch.float64).clone()
    counts = torch.zeros(len(g), dtype=torch.int64)
    present = torch.argsort(g, stable=True)[: min(batch, int((g < 0).sum()))]
    counts[present] = 1
    g[present] -= impact
    if offsets is not None:
        g -= offsets.to(torch.float64)
    for _ in range(batch - int(counts.sum())):
        chosen = int(torch.argmin(g))
        counts[chosen] += 1
        g[chosen] -= impact
    return counts


class _LLGBase(LabelRule):
    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        return super().unsupported(observation) or negative_features(observation)


@LABEL_RULES.register("llg")
class LLGRule(_LLGBase):
    """LLG (Wainakh et al., PETS 2022): g_j = Σ_d ∂L/∂W_{j,d} is negative for the classes present
    (non-negative head inputs); one label's impact is estimated from the update itself,
    m = (1 + 1/K)·Σ_{g_j<0} g_j / B, and labels are assigned in :func:`two_stages`."""

    paper = "Wainakh et al.: User-Level Label Leakage from Gradients in Federated Learning, PETS 2022"

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        g = last_linear_gradients(observation)[0].to(torch.float64).sum(dim=1)
        batch, classes = observation.batch_size, observation.num_classes
        impact = float(g[g < 0].sum()) * (1 + 1 / classes) / batch
        return two_stages(g, batch, impact), {"impact": impact}


@LABEL_RULES.register("llg+")
class LLGPlusRule(_LLGBase):
    """LLG+ (Wainakh et al., PETS 2022): the impact measured on the server's own model. For each
    class c, a dummy batch of B N(0, 1) inputs all labelled c gives row c's sum g⁽ᶜ⁾_c, and one with
    labels cycling over the other classes gives its offset s_c (breaching's ``wainakh-whitebox``);
    m = mean_c (g⁽ᶜ⁾_c − s_c) / B, then :func:`two_stages` on g with offsets s. The dummy-batch
    construction is ours where the paper leaves it open."""

    paper = "Wainakh et al.: User-Level Label Leakage from Gradients in Federated Learning, PETS 2022 (LLG+)"

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        g = last_linear_gradients(observation)[0].to(torch.float64).sum(dim=1)
        batch, classes = observation.batch_size, observation.num_classes
        model = copy.deepcopy(observation.model)
        weight = head_layer(model).weight
        inputs = dummy_inputs(observation, 2 * classes * batch).view(2 * classes, batch, *observation.input_shape)
        own, offsets = torch.zeros(classes, dtype=torch.float64), torch.zeros(classes, dtype=torch.float64)
        for c in range(classes):
            others = torch.tensor([o for o in range(classes) if o != c])
            for k, labels in enumerate((torch.full((batch,), c), others[torch.arange(batch) % len(others)])):
                (gradient,) = torch.autograd.grad(task_loss(model(inputs[2 * c + k]), labels), weight)
                (own if k == 0 else offsets)[c] = gradient[c].sum().to(torch.float64)
        impact = float((own - offsets).mean()) / batch
        return two_stages(g, batch, impact, offsets), {"impact": impact}
