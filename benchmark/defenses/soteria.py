"""Soteria (Sun et al., "Soteria: Provable Defense against Privacy Leakage in Federated Learning from
Representation Perspective", CVPR 2021): perturb the representation's gradient.

The representation r (N, F) is the input of the model's first fully connected layer, whose weight
gradient ∂L/∂W (out, F) = Σ_n δ_n r_nᵀ is what reveals the input. Per feature f the score

    s_f = Σ_n ‖∂r_{n,f}/∂x_n‖₂ / |r_{n,f}|

is small where a feature carries much of the input at little sensitivity (large |r|/‖∂r/∂x‖); the
columns of ∂L/∂W of the round(p·F) features with the smallest s_f are set to zero
(p = ``fraction``). Every other tensor of the update is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from benchmark.defenses import DEFENSES, ClientRound, Defense, Update

FEATURE_CHUNK = 64  # features whose input gradients are computed in one batched backward pass


def defended_layer(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The first ``nn.Linear`` of the model, with its name: the layer whose input is the representation."""
    return next(((name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)), None)


def representation(client: ClientRound, layer: nn.Module, inputs: Tensor) -> Tensor:
    """The input of ``layer`` when the client's model runs on ``inputs`` (N, C, H, W): (N, F)."""
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    try:
        buffers = {name: b.clone() for name, b in client.buffers.items()}  # train-mode BN must not touch the client's
        functional_call(client.model, (client.params, buffers), (inputs,))
    finally:
        handle.remove()
    return captured[0].flatten(1)


def feature_scores(client: ClientRound, layer: nn.Module) -> Tensor:
    """s_f = Σ_n ‖∂r_{n,f}/∂x_n‖₂ / |r_{n,f}| for every feature f: (F,)."""
    inputs = client.inputs.detach().requires_grad_(True)
    rep = representation(client, layer, inputs)
    count = rep.shape[1]
    sensitivity = []
    for first in range(0, count, FEATURE_CHUNK):
        chosen = torch.arange(first, min(first + FEATURE_CHUNK, count))
        basis = torch.zeros(len(chosen), *rep.shape, dtype=rep.dtype)
        basis[torch.arange(len(chosen)), :, chosen] = 1  # one backward per feature, summed over examples
        (grads,) = torch.autograd.grad(rep, inputs, basis, retain_graph=True, is_grads_batched=True)
        sensitivity.append(grads.flatten(2).norm(dim=2))  # (chunk, N): examples are independent
    return (torch.cat(sensitivity) / rep.detach().abs().T.clamp_min(1e-12)).sum(1)


@DEFENSES.register("soteria")
@dataclass(frozen=True)
class Soteria(Defense):
    """Zero the first fully connected layer's weight gradient on the share ``fraction`` of features
    with the largest |r|/‖∂r/∂x‖."""

    strength = "fraction"
    fraction: float = 0.8

    def __post_init__(self) -> None:
        self._require(0 <= self.fraction <= 1, f"fraction must be in [0, 1], got {self.fraction}")

    def apply(self, update: Update, client: ClientRound) -> Update:
        found = defended_layer(client.model)
        self._require(
            found is not None,
            f"{type(client.model).__name__} has no fully connected layer, whose "
            "input representation Soteria defends; choose another defence",
        )
        name, layer = found
        scores = feature_scores(client, layer)
        pruned = scores.argsort()[: round(self.fraction * len(scores))]
        mask = torch.ones_like(scores)
        mask[pruned] = 0
        weight = f"{name}.weight"
        return {key: g * mask.to(g) if key == weight else g for key, g in update.items()}
