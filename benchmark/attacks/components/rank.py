"""Rank analysis (Zhu & Blaschko, ICLR 2021) and RA-I (SSRAS, Sensors 2022): which layers of an
architecture can leak their input to a closed-form attack, before any attack runs.

For each layer L_i of a chain (input x_i with n_i unknowns) R-GAP solves the stacked system
[K_i; W_i] x_i = [vec ∇W_i; z_i − b_i] (see :class:`~benchmark.attacks.components.equations.LayerSystem`).
Counting its rows (gradient constraints = weights, weight constraints = outputs) overestimates what
it determines: its numeric rank r_i does not, and the deficiency n_i − r_i is what R-GAP cannot
recover, whatever the gradient. r_i counts the scaled system's singular values above √(n_i·ε)·s_max
(float64 ε), the tolerance its normal equations resolve; least squares on the system itself would use
max(M, N)·ε·s_max (why not: ``LayerSystem``, "Rank tolerance").

RA-I adds virtual constraints derived from weights, as SSRAS describes it (its formula is not
published; this one is ours): the weights of the layer below impose them, since x_i = σ(W_{i−1} x_{i−1})
is a function of n_{i−1} numbers, so where n_i > n_{i−1} the input of L_i lies on an
n_{i−1}-dimensional set, v_i = max(0, n_i − n_{i−1}) constraints that no gradient provides (v_1 = 0
for the model input). The index is

    RA-I_i = n_i − r_i − v_i,

the unknowns still free after the layer's own and its virtual constraints (assuming they are
independent, the R-GAP counting argument). Verdicts: ``recoverable`` (r_i = n_i, R-GAP recovers
x_i); ``deficient for R-GAP`` (r_i < n_i but RA-I_i ≤ 0: R-GAP's layer-by-layer solve cannot, a
joint solve with the layer below may); ``not recoverable`` (RA-I_i > 0: too few constraints for
any attack).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.attacks.components.equations import FLOAT, LayerSystem
from benchmark.attacks.components.layers import Layer, linear_chain
from benchmark.fl.updates import task_loss


@dataclass(frozen=True)
class LayerRank:
    """One row of the rank analysis (see the module docstring for the quantities)."""

    layer: str
    kind: str
    input_shape: tuple[int, int, int]
    unknowns: int
    weight_constraints: int
    gradient_constraints: int
    virtual_constraints: int
    rank: int
    deficiency: int
    ra_i: int
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"input_shape": list(self.input_shape)}


def layer_rank(chain: Sequence[Layer], index: int, system: LayerSystem) -> LayerRank:
    """The rank-analysis row of layer ``index`` from the system solved for its input."""
    layer = chain[index]
    virtual = max(0, layer.unknowns - chain[index - 1].unknowns) if index else 0
    deficiency = layer.unknowns - system.rank
    ra_i = deficiency - virtual
    verdict = "recoverable" if deficiency == 0 else "deficient for R-GAP" if ra_i <= 0 else "not recoverable"
    return LayerRank(
        layer=layer.name,
        kind=layer.kind,
        input_shape=layer.input_shape,
        unknowns=layer.unknowns,
        weight_constraints=system.weight_constraints,
        gradient_constraints=system.gradient_constraints,
        virtual_constraints=virtual,
        rank=system.rank,
        deficiency=deficiency,
        ra_i=ra_i,
        verdict=verdict,
    )


def analyze(model: nn.Module, input_shape: tuple[int, int, int], *, seed: int = 0) -> list[LayerRank]:
    """Rank analysis of ``model`` (unchanged) at one random input x ~ U[0, 1] and label, in float64.

    The systems use the true output gradients and pre-activations of that input, so each row is
    what R-GAP faces on a sample of that shape. Rows run from the input layer to the head.
    """
    generator = torch.Generator().manual_seed(seed)
    probe = copy.deepcopy(model).to(FLOAT)
    chain = linear_chain(probe, input_shape)
    outputs: dict[int, Tensor] = {}
    hooks = [
        layer.module.register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out))
        for i, layer in enumerate(chain)
    ]
    try:
        logits = probe(torch.rand(1, *input_shape, generator=generator, dtype=FLOAT))
    finally:
        for hook in hooks:
            hook.remove()
    classes = 2 if logits.shape[1] == 1 else logits.shape[1]
    label = torch.randint(classes, (1,), generator=generator)
    parameters = list(probe.parameters())
    z = [outputs[i] for i in range(len(chain))]
    gradients = torch.autograd.grad(task_loss(logits, label), parameters + z)
    rows = []
    for index, layer in enumerate(chain):
        bias = 0 if layer.bias is None else layer.module.bias.detach()[:, None, None]
        system = LayerSystem(
            layer,
            layer.as_kernel(layer.module.weight),
            gradients[len(parameters) + index].reshape(layer.output_shape),
            layer.as_kernel(gradients[layer.weight]),
            z[index].detach().reshape(layer.output_shape) - bias,
        )
        rows.append(layer_rank(chain, index, system))
    return rows


def recoverable_by_rgap(rows: Sequence[LayerRank]) -> bool:
    """R-GAP recovers the model input only if no layer from the head down is rank-deficient."""
    return all(row.deficiency == 0 for row in rows)
