"""DP-SGD (Abadi et al., CCS 2016) on the client's round.

Each example's gradient g_n (over all parameters) is clipped to norm C, the clipped gradients are
summed, Gaussian noise of standard deviation σ·C is added to every entry, and the sum is divided by
the batch size N:

    g̃ = (Σ_n g_n · min(1, C/‖g_n‖₂) + N(0, σ²C²·I)) / N.

Per-example gradients come from the victim's own FedSGD update rule under ``torch.func.vmap``. The
(ε, δ) guarantee is computed by opacus's RDP accountant (Mironov 2017) for ``rounds`` such steps,
each on a batch sampled from the client's data with probability ``sample_rate``; the default
(one round, sample rate 1: the batch is all the client holds) is the attacked round, with no
amplification by subsampling. BatchNorm in train mode mixes examples and cannot be used (as in opacus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import vmap
from torch.nn.modules.batchnorm import _BatchNorm

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update
from benchmark.defenses.clipping import clip_factor
from benchmark.fl.updates import fedsgd_update


def per_example_gradients(client: ClientRound) -> Update:
    """∇θ L(f_θ(x_n), y_n) for each example n: one tensor (N, *shape) per parameter name."""

    def one(inputs, targets):
        return fedsgd_update(client.model, client.params, client.buffers, inputs[None], targets[None], client.fl)

    return vmap(one)(client.inputs, client.targets)


@DEFENSES.register("dpsgd")
@dataclass(frozen=True)
class DPSGD(Defense):
    """Per-example clipping to ``max_grad_norm`` C plus Gaussian noise σ·C (σ = ``noise_multiplier``)."""

    strength = "noise_multiplier"
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    sample_rate: float = 1.0
    rounds: int = 1

    def __post_init__(self) -> None:
        self._require(self.noise_multiplier >= 0, f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        self._require(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        self._require(0 < self.delta < 1, f"delta must be in (0, 1), got {self.delta}")
        self._require(0 < self.sample_rate <= 1, f"sample_rate must be in (0, 1], got {self.sample_rate}")
        self._require(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        self._require(
            client.fl.protocol == "fedsgd",
            "DP-SGD clips the per-example gradients of a FedSGD round; set fl.protocol: fedsgd",
        )
        self._require(
            not any(isinstance(m, _BatchNorm) and m.training for m in client.model.modules()),
            "a per-example gradient does not exist under BatchNorm in train mode, which mixes the examples "
            "of a batch (opacus refuses it too); set victim.mode: eval or choose a model without BatchNorm",
        )
        grads = per_example_gradients(client)
        norms = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads.values()))  # (N,)
        factors = clip_factor(norms, self.max_grad_norm)
        noise_std = self.noise_multiplier * self.max_grad_norm
        defended = {}
        for name in update:
            g = grads[name]
            clipped = (g * factors.view(-1, *[1] * (g.ndim - 1))).sum(0)
            noise = torch.randn(clipped.shape, generator=client.generator).to(clipped)
            defended[name] = (clipped + noise_std * noise) / len(g)
        return defended

    def privacy(self, steps: int | None = None, sample_rate: float | None = None) -> dict[str, float]:
        """(ε, δ) of ``steps`` DP-SGD steps at ``sample_rate`` (default: the defence's ``rounds`` and
        ``sample_rate``), from opacus's RDP accountant; ε = inf without noise."""
        from opacus.accountants import RDPAccountant

        steps = self.rounds if steps is None else steps
        sample_rate = self.sample_rate if sample_rate is None else sample_rate
        if self.noise_multiplier == 0:
            return {"epsilon": math.inf, "delta": self.delta}
        accountant = RDPAccountant()
        for _ in range(steps):
            accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=sample_rate)
        return {"epsilon": accountant.get_epsilon(self.delta), "delta": self.delta}
