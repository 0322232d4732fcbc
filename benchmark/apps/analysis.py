"""Analyses of victim architectures that need no attack run: R-GAP's rank analysis of a registered
model (the maths: :mod:`benchmark.attacks.components.rank`)."""

from __future__ import annotations

import torch

from benchmark.attacks.components.rank import LayerRank, analyze
from benchmark.core.errors import SettingError, at_least, first_line
from benchmark.models import MODELS


def analyze_model(name: str, input_shape: tuple[int, int, int], num_classes: int, *, seed: int = 0) -> list[LayerRank]:
    """Rank analysis of a registered model, built with PyTorch's default init from ``seed`` (global RNG
    untouched); ``num_classes`` at least 2, and a shape the model cannot take is a one-line error."""
    at_least("num_classes", num_classes, 2)
    cls = MODELS.get(name)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(input_shape[0], input_shape[1], num_classes)
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as err:  # torch's shape errors
        raise SettingError(
            f"model '{name}' cannot take inputs of shape {','.join(map(str, input_shape))} "
            f"({first_line(err, 120)}); give another --input-shape"
        ) from None
    return analyze(model, input_shape, seed=seed)
