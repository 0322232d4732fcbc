"""What the label rules read: the head's gradients, and the server's model run on dummy inputs."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from benchmark.fl.observation import Observation


def head_layer(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear``: the classification head the rules read."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to read a label from")
    return linears[-1]


def last_linear_gradients(observation: Observation) -> tuple[Tensor, Tensor | None]:
    """The update's tensors for the weight (K, D) and bias (K,) (None if absent) of the last ``nn.Linear``."""
    head = head_layer(observation.model)
    index = {id(p): i for i, p in enumerate(observation.model.parameters())}
    bias = None if head.bias is None else observation.update[index[id(head.bias)]]
    return observation.update[index[id(head.weight)]], bias


def dummy_inputs(observation: Observation, count: int, seed: int = 0) -> Tensor:
    """``count`` model inputs drawn from N(0, 1) (the dummy data of Geng et al. and Wainakh et al.'s
    white-box rule), from their own stream, so a rule gives one answer per observation."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, *observation.input_shape, generator=generator)


def features_and_logits(model: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """The head's inputs (N, D) and the model's logits (N, K) on ``inputs``, from a copy of ``model``
    (so that a model in train mode keeps its BatchNorm statistics)."""
    model = copy.deepcopy(model)
    seen: list[Tensor] = []
    hook = head_layer(model).register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            logits = model(inputs)
    finally:
        hook.remove()
    return seen[-1].flatten(1), logits.detach()


def negative_features(observation: Observation) -> str | None:
    """Why the head's inputs are not non-negative (probed on 8 dummy inputs), or None where they are.

    The sign arguments of iDLG, Yin et al., Wainakh et al. and Geng et al. need them ≥ 0 (a ReLU or a
    sigmoid before the head): then row j of ∂L/∂W sums to (p_j − y_j)·‖a‖₁.
    """
    features, _ = features_and_logits(observation.model, dummy_inputs(observation, 8))
    if float(features.min()) < 0:
        return (
            f"the head's inputs take negative values (min {float(features.min()):.3g} on dummy inputs); "
            "the rule needs a ReLU or a sigmoid before the last layer"
        )
    return None


def counts_to_labels(counts: Tensor) -> Tensor:
    """Per-class counts (K,) → the sorted label multiset (Σ counts,) int64."""
    return torch.repeat_interleave(torch.arange(len(counts)), counts.to(torch.int64))


def round_counts(estimates: Tensor, total: int) -> Tensor:
    """Real-valued class counts (K,) → non-negative integers summing to ``total``: the estimates
    clipped at 0, floored, and the remainder given to the largest fractional parts (largest remainder)."""
    clipped = estimates.to(torch.float64).clamp(min=0)
    scale = total / float(clipped.sum()) if float(clipped.sum()) > total else 1.0
    clipped = clipped * scale  # never more than total before the remainder is shared
    counts = clipped.floor().to(torch.int64)
    missing = total - int(counts.sum())
    if missing > 0:
        counts[torch.argsort(clipped - counts, descending=True, stable=True)[:missing]] += 1
    return counts


def one_per_class(classes: Tensor, num_classes: int) -> Tensor:
    """Counts (K,) int64 with one label for each of ``classes`` (distinct class indices)."""
    counts = torch.zeros(num_classes, dtype=torch.int64)
    counts[classes] = 1
    return counts


def distinct_labels_fit(observation: Observation) -> str | None:
    """Why a batch cannot have distinct labels (more samples than classes), or None."""
    if observation.batch_size > observation.num_classes:
        return (
            f"it assumes distinct labels, impossible for {observation.batch_size} samples "
            f"of {observation.num_classes} classes"
        )
    return None
