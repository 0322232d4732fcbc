"""The analytic bias attack (Phong et al., 2017; the proposition of Geiping et al., NeurIPS 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import Tensor, nn

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import ClosedFormAttack, Reconstruction
from benchmark.attacks.components.equations import invert_biased_linear, single_gradient_problem
from benchmark.attacks.components.layers import first_layer
from benchmark.attacks.labels.single import label_from_update
from benchmark.core.errors import NotApplicableError
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class BiasConfig:
    max_steps: int = 1  # closed form: one solve


def biased_linear_inputs(observation: Observation) -> dict[str, tuple[Tensor, dict[str, float]]]:
    """The input of every fully connected layer with a bias, read from one sample's update.

    Works for the first layer (the flattened model input) and for hidden layers (their input
    feature), whatever the rest of the architecture. Returns name → (input (D,) float64, facts of
    :func:`invert_biased_linear`), in module order.
    """
    index = {id(p): i for i, p in enumerate(observation.model.parameters())}
    return {
        name: invert_biased_linear(observation.update[index[id(m.weight)]], observation.update[index[id(m.bias)]])
        for name, m in observation.model.named_modules()
        if isinstance(m, nn.Linear) and m.bias is not None
    }


@ATTACKS.register("bias")
class BiasAttack(ClosedFormAttack):
    """Bias attack: a fully connected first layer y = W x + b with a bias reveals its input x.

    For one sample, ∂L/∂W_i = (∂L/∂b_i)·xᵀ for every row i, so x = ∂L/∂W_i / ∂L/∂b_i wherever
    ∂L/∂b_i ≠ 0, exactly up to floating point. Over all rows, the least-squares estimate

        x̂ = Σ_i ∂L/∂b_i·∂L/∂W_i / Σ_i (∂L/∂b_i)²

    weights each row's ratio by (∂L/∂b_i)² (rows with a zero or tiny bias gradient, e.g. dead ReLUs,
    count nothing or little). The image is x̂ reshaped to (1, C, H, W); the label is the threat
    model's, or read from the update (bias-sign or row-norm rule). ``details`` reports, for every
    fully connected layer with a bias (hidden ones recover their input feature the same way), the
    rows used and the relative residual of the rank-one fit ∂L/∂W ≈ ∂L/∂b·x̂ᵀ.
    """

    Config = BiasConfig

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if (problem := single_gradient_problem(observation)) is not None:
            return problem
        try:
            name, module = first_layer(observation.model, observation.input_shape)
        except NotApplicableError as err:
            return str(err)
        if (
            not isinstance(module, nn.Linear)
            or module.bias is None
            or module.in_features != prod(observation.input_shape)
        ):
            return (
                f"the first layer ('{name}', {type(module).__name__}) is not fully connected with a bias on the "
                "flattened input; the bias attack reads the image from such a layer"
            )
        if label_from_update(observation) is None:
            return "the label is neither known nor readable from the head's gradient"
        return None

    def solve(self, observation: Observation) -> Reconstruction:
        name, _ = first_layer(observation.model, observation.input_shape)
        inputs = biased_linear_inputs(observation)
        image, facts = inputs[name]
        label, source = label_from_update(observation)  # type: ignore[misc]
        images = observation.to_images(image.reshape(1, *observation.input_shape).to(torch.float32))
        details = {
            "label_source": source,
            "biased_layers": [{"layer": layer, **layer_facts} for layer, (_, layer_facts) in inputs.items()],
        }
        return Reconstruction(
            images=images, labels=label.reshape(1).long().clone(), loss=facts["rank_one_residual"], details=details
        )
