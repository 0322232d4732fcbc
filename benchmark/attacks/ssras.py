"""SSRAS: Single-Sample Reconstruction Attack System (Sensors 22(19):7157, 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import Reconstruction
from benchmark.attacks.components.equations import (
    Descent,
    descend,
    invert_biased_linear,
    single_sample_chain,
    step_down,
)
from benchmark.attacks.components.layers import Layer
from benchmark.attacks.dlg import DLG
from benchmark.attacks.labels.single import label_from_update
from benchmark.attacks.rgap import RGAP, chain_problem, head_problem
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class SSRASConfig:
    max_steps: int = 1  # closed form: one solve (plus a DLG run where the label must be guessed)
    # The paper gives no values for these two (ours):
    dlg_steps: int = 20  # L-BFGS steps of the DLG run that proposes the label (improved R-GAP)
    consistency: float = 1e-3  # a label is accepted once R-GAP's relative residual is below this


def _bias_start(chain: list[Layer]) -> int | None:
    """The lowest fully connected layer with a bias: the bias attack reads its input and its k."""
    return next((i for i, layer in enumerate(chain) if layer.kind == "linear" and layer.bias is not None), None)


@ATTACKS.register("ssras")
class SSRAS(RGAP):
    """SSRAS (Sensors 2022): one sample, per layer by the bias attack or (improved) R-GAP.

    It reconstructs one sample whether or not its label can be read, from fully connected and
    convolutional layers with or without biases. The paper publishes no code; this is the decision
    flow implemented:

    1. Start. If some fully connected layer L_s has a bias, start at the lowest one with the bias
       attack: x_s = Σ_i ∂b_i·∂W_i / Σ_i ∂b_i² and k_s = ∂L/∂b_s are read directly, exact, and
       need neither the label nor the layers above (if L_s is the first layer, x_s is the image).
       Otherwise start at the head with R-GAP's head equations (:func:`head_equations`), which need
       the label.
    2. Label. The threat model's, else read from the update (bias-sign rule, or row-norm rule for
       K ≥ 3), else improved R-GAP: a short DLG run proposes a label, and the candidates (DLG's
       first, then the other classes) are tried in turn until R-GAP's descent is consistent (relative
       residual ≤ ``consistency``; a wrong label leaves a residual of order one); if none is, the
       most consistent one is kept.
    3. Descent. From the start down to the input with R-GAP's layer step (least squares on
       [K_i; W_i] x_i = [vec ∇W_i; z_i − b_i]): a bias only shifts the output constraint.
       Activations are undone element-wise (LeakyReLU, sigmoid via logit, identity).

    Why this order: the bias attack is exact and needs nothing else, so it replaces R-GAP wherever it
    applies; R-GAP needs the label only at the head; DLG, the slowest and least reliable source of a
    label, runs only when nothing else reveals it, and R-GAP's residual checks its answer. Every
    solved layer's rank is reported in ``details``, as for ``rgap``.
    """

    Config = SSRASConfig

    @classmethod
    def chain_unsupported(cls, chain: list[Layer], observation: Observation) -> str | None:
        start = _bias_start(chain)
        if start is not None:
            return chain_problem(chain, start)
        return head_problem(chain[-1]) or chain_problem(chain, len(chain) - 1)  # DLG supplies an unreadable label

    def _dlg_labels(self, observation: Observation) -> list[int]:
        """Label candidates, the one a short DLG run converges to first (improved R-GAP)."""
        seed = self.seeds[next(i for i, o in enumerate(self.observations) if o is observation)]
        (guess,) = DLG.solve_plainly([observation], DLG.Config(max_steps=self.config.dlg_steps), [seed])
        first = int(guess.labels[0])
        return [first] + [label for label in range(observation.num_classes) if label != first]

    def _first_consistent(
        self, observation: Observation, chain: list[Layer], labels: list[int]
    ) -> tuple[Descent, int, int]:
        """R-GAP from the head for each candidate label until one is consistent: (descent, label, labels tried)."""
        tried = []
        for label in labels:
            tried.append((self.from_head(observation, chain, label)[0], label))
            if tried[-1][0].residual <= self.config.consistency:
                break
        descent, label = min(tried, key=lambda pair: pair[0].residual)
        return descent, label, len(tried)

    def _from_bias(
        self, observation: Observation, chain: list[Layer], start: int
    ) -> tuple[Tensor, Descent | None, dict[str, Any]]:
        """The bias attack on layer ``start``, then R-GAP below it: (model input, descent or None, bias facts)."""
        layer = chain[start]
        x, facts = invert_biased_linear(observation.update[layer.weight], observation.update[layer.bias])
        if start == 0:
            return x, None, facts
        k = observation.update[layer.bias].to(torch.float64).reshape(layer.output_shape)
        k, z = step_down(layer, chain[start - 1], x, k)
        descent = descend(chain, start - 1, k, z, observation.update)
        return descent.input, descent, facts

    def solve(self, observation: Observation) -> Reconstruction:
        chain = single_sample_chain(observation)
        start = _bias_start(chain)
        readable = label_from_update(observation)
        details: dict[str, Any] = {}
        if start is not None:
            inputs, descent, details["bias_attack"] = self._from_bias(observation, chain, start)
            details["start"] = f"bias attack on '{chain[start].name}'"
            if readable is None:
                readable = torch.tensor([self._dlg_labels(observation)[0]]), "DLG"
            label, details["label_source"] = int(readable[0]), readable[1]
        else:
            labels = [int(readable[0])] if readable is not None else self._dlg_labels(observation)
            descent, label, details["labels_tried"] = self._first_consistent(observation, chain, labels)
            inputs = descent.input
            details["start"] = "R-GAP head equations"
            details["label_source"] = readable[1] if readable is not None else "DLG, checked by R-GAP's residual"
        if descent is not None:
            details |= self.rank_report(chain, descent)
        images = observation.to_images(inputs.reshape(1, *observation.input_shape).to(torch.float32))
        loss = descent.residual if descent is not None else details["bias_attack"]["rank_one_residual"]
        return Reconstruction(images=images, labels=torch.tensor([label]), loss=loss, details=details)
