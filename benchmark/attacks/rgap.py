"""R-GAP: Recursive Gradient Attack on Privacy (Zhu & Blaschko, ICLR 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import ClosedFormAttack, Reconstruction
from benchmark.attacks.components.equations import Descent, descend, head_equations, most_plausible, single_sample_chain
from benchmark.attacks.components.layers import Layer, activation_problem
from benchmark.attacks.components.rank import layer_rank, recoverable_by_rgap
from benchmark.attacks.labels.single import label_from_update
from benchmark.core.errors import NotApplicableError
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class RGAPConfig:
    max_steps: int = 1  # closed form: one solve


def chain_problem(chain: list[Layer], lowest_start: int) -> str | None:
    """Why R-GAP's recursion cannot descend from layer ``lowest_start`` to the input, or None."""
    for layer in chain[:lowest_start]:
        if (problem := activation_problem(layer.activation)) is not None:
            return f"layer '{layer.name}': {problem}"
    return None


def head_problem(head: Layer) -> str | None:
    """Why R-GAP's head equations do not apply to this head, or None."""
    if head.kind != "linear" or head.bias is not None or head.output_shape[0] == 2:
        return "R-GAP's head equations need a fully connected head without bias, with one logit or K ≥ 3"
    if not isinstance(head.activation, nn.Identity):
        return f"the head must output logits, not {type(head.activation).__name__} of them"
    return None


@ATTACKS.register("rgap")
class RGAP(ClosedFormAttack):
    """R-GAP (Zhu & Blaschko, ICLR 2021): the input recovered layer by layer from the head down.

    For a chain x_{i+1} = σ(W_i x_i) without biases and a single sample with label y:

    - head (one logit u, logistic loss): ⟨∇w_d, w_d⟩ = −μ/(1 + e^{μ}), μ = y·u, solved for μ in
      float64; then k_d = ∂L/∂u = −y/(1 + e^{μ}). Multi-class heads (K ≥ 3, cross-entropy) read the
      logit scale from the other rows (see :func:`head_equations`).
    - every layer i from the top: least squares on [K_i; W_i] x_i = [vec ∇W_i; z_i] (gradient and
      weight constraints, padding fixed to zero; :class:`LayerSystem`), then z_{i−1} = σ⁻¹(x_i) and
      k_{i−1} = (W_iᵀ k_i) ⊙ σ'(z_{i−1}).

    Supported: chains of Conv2d/Linear layers without bias, with invertible activations (LeakyReLU,
    sigmoid, identity), batch size 1; heads with one logit and a known label (the logistic head does
    not reveal it), or K ≥ 3 logits with a known label or the row-norm rule. Two roots of the
    logistic equation (a correctly classified sample) give the same image up to scale on
    positively homogeneous networks: the one inside the image box [0, 1] is kept
    (:func:`most_plausible`; R-GAP's code instead flips the label to make the root unique). Every
    layer's rank (analysis in :mod:`benchmark.attacks.components.rank`) is reported in ``details``; a
    rank-deficient layer gets its minimum-norm solution and is flagged, not hidden.
    """

    Config = RGAPConfig

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        try:
            chain = single_sample_chain(observation)
        except NotApplicableError as err:
            return str(err)
        return cls.chain_unsupported(chain, observation)

    @classmethod
    def chain_unsupported(cls, chain: list[Layer], observation: Observation) -> str | None:
        """Why the attack cannot invert this chain of layers for this observation, or None."""
        if any(layer.bias is not None for layer in chain):
            return "R-GAP assumes layers without bias (ssras handles biases)"
        if label_from_update(observation) is None:
            return (
                "the label is neither known nor readable from a one-logit head without bias (ssras obtains it with DLG)"
            )
        return chain_problem(chain, len(chain) - 1) or head_problem(chain[-1])

    def from_head(self, observation: Observation, chain: list[Layer], label: int) -> tuple[Descent, int]:
        """R-GAP from the head for one label: the most plausible descent over the roots of the head
        equations, and the number of roots."""
        head = chain[-1]
        descents = [
            descend(chain, len(chain) - 1, k, z, observation.update)
            for k, z in head_equations(
                head, head.as_kernel(head.module.weight), head.as_kernel(observation.update[head.weight]), label
            )
        ]
        return most_plausible(observation, descents), len(descents)

    def rank_report(self, chain: list[Layer], descent: Descent) -> dict[str, Any]:
        """The rank analysis of the systems a descent solved (input layer first), logged and for ``details``."""
        rows = [layer_rank(chain, index, system) for index, system in sorted(descent.systems.items())]
        self.log("attack/rank_deficiency", float(sum(row.deficiency for row in rows)))
        return {
            "layers": [row.as_dict() for row in rows],
            "rank_deficient": not recoverable_by_rgap(rows),
            "residual": descent.residual,
        }

    def solve(self, observation: Observation) -> Reconstruction:
        chain = single_sample_chain(observation)
        label, source = label_from_update(observation)  # type: ignore[misc]
        best, roots = self.from_head(observation, chain, int(label))
        details = self.rank_report(chain, best) | {"label_source": source, "head_roots": roots}
        images = observation.to_images(best.input.reshape(1, *observation.input_shape).float())
        return Reconstruction(
            images=images, labels=label.reshape(1).long().clone(), loss=best.residual, details=details
        )
