"""Evaluation: one-to-one matching of reconstructions to the private batch, then per-image metrics.

Every metric sees images in [0, 1] and returns one value per image, (N,) float64. Registered
metrics are looked up by the names a task spec lists.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from benchmark.registry import Registry


@dataclass(frozen=True)
class MatchedBatch:
    """Reconstructions reordered so that row i is matched to ground-truth row i."""

    images: Tensor  # (N, C, H, W) in [0, 1]
    labels: Tensor  # (N,)
    truth_images: Tensor  # (N, C, H, W) in [0, 1]
    truth_labels: Tensor  # (N,)


Metric = Callable[[MatchedBatch], Tensor]


def _discover() -> None:
    importlib.import_module("benchmark.metrics.image")


METRICS: Registry[Metric] = Registry("metric", discover=_discover)


def evaluate(images: Tensor, labels: Tensor, truth_images: Tensor, truth_labels: Tensor,
             metrics: tuple[str, ...]) -> dict[str, Tensor]:
    """Match reconstructions to ground truth (Hungarian, on MSE), then compute each named metric."""
    from benchmark.metrics.matching import match

    images = images.detach().to(torch.float64).clamp(0, 1).cpu()
    truth_images = truth_images.to(torch.float64).cpu()
    order = match(images, truth_images)
    batch = MatchedBatch(images[order], labels.cpu()[order], truth_images, truth_labels.cpu())
    return {name: METRICS.get(name)(batch) for name in metrics}
