"""Label counts from the head's row sums and the model's statistics on dummy data (Geng et al.;
Dimitrov et al. for FedAvg)."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from benchmark.attacks.labels import LABEL_RULES, LabelRule
from benchmark.attacks.labels.head import (
    dummy_inputs,
    features_and_logits,
    last_linear_gradients,
    negative_features,
    round_counts,
)
from benchmark.fl.observation import Observation

DUMMY_INPUTS = 64  # N(0, 1) model inputs the statistics are averaged over


def _statistics(model: torch.nn.Module, inputs: Tensor) -> tuple[Tensor, float]:
    """The mean softmax p̄ (K,) and the mean ‖a‖₁ of the head's inputs over ``inputs``."""
    features, logits = features_and_logits(model, inputs)
    return logits.softmax(dim=1).mean(dim=0).to(torch.float64), float(features.sum(dim=1).mean())


@LABEL_RULES.register("geng")
class GengRule(LabelRule):
    """Label counts (Geng et al., 2021, FedSGD; Dimitrov et al., TMLR 2022, FedAvg).

    FedSGD: row j of ∂L/∂W sums to (1/N)·Σ_n (p_nj − y_nj)·‖a_n‖₁ with non-negative head inputs a;
    with ‖a_n‖₁ ≈ Ō and p_nj ≈ p̄_j, both measured on 64 dummy N(0, 1) inputs, n_j = N·p̄_j − N·g_j/Ō.
    FedAvg (S = local epochs × ⌈N / local batch⌉ SGD steps at rate η, update θ₀ − θ_S): the statistics
    interpolated linearly between the global model θ₀ and θ_S, n_j = mean_s (N·p̄_{s,j} − N·g_j/(η·S·Ō_s)).
    The counts are rounded to N by the largest remainder.
    """

    paper = (
        "Geng et al.: Towards General Deep Leakage in Federated Learning (arXiv 2110.09074, 2021); "
        "Dimitrov et al.: Data Leakage in Federated Averaging (TMLR 2022)"
    )
    protocols = ("fedsgd", "fedavg")

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        return super().unsupported(observation) or negative_features(observation)

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict]:
        g = last_linear_gradients(observation)[0].to(torch.float64).sum(dim=1)
        size, fl = observation.batch_size, observation.fl
        inputs = dummy_inputs(observation, DUMMY_INPUTS)
        start = _statistics(observation.model, inputs)
        if fl.protocol == "fedsgd":
            steps, rate, end = 1, 1.0, start
        else:
            steps = fl.local_epochs * math.ceil(size / (fl.local_batch_size or size))
            rate = fl.local_lr
            after = copy.deepcopy(observation.model)
            with torch.no_grad():
                for parameter, update in zip(after.parameters(), observation.update):
                    parameter -= update
            end = _statistics(after, inputs)
        estimates = torch.zeros_like(g)
        for s in range(steps):
            t = s / steps
            p = (1 - t) * start[0] + t * end[0]
            o = (1 - t) * start[1] + t * end[1]
            estimates += size * p - size * g / (rate * steps * o)
        estimates /= steps
        return round_counts(estimates, size), {"estimates": [round(float(e), 4) for e in estimates]}
