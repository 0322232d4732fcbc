"""Evaluation: one-to-one matching of reconstructions to the private batch, then per-image metrics.

Every metric sees images in [0, 1] and returns one value per image, (N,) float64, or several such
series by name (face re-identification returns its rates and their ceiling and chance). A metric
is a function of the :class:`MatchedBatch`, or a class built once per run from the
:class:`EvaluationSettings` (for models and galleries); one whose model or data is absent raises
:class:`MetricUnavailableError` and is reported as unavailable (null, with the reason), never guessed.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from benchmark.errors import LeakBenchError
from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.data import ImageSource

log = logging.getLogger(__name__)


class MetricUnavailableError(LeakBenchError):
    """A metric whose model weights, package or reference data are absent here; the message says how
    to provide them."""


@dataclass(frozen=True)
class MatchedBatch:
    """Reconstructions reordered so that row i is matched to ground-truth row i."""

    images: Tensor  # (N, C, H, W) in [0, 1]
    labels: Tensor  # (N,)
    truth_images: Tensor  # (N, C, H, W) in [0, 1]
    truth_labels: Tensor  # (N,)


@dataclass(frozen=True)
class EvaluationSettings:
    """What stateful metrics are built from: the task's data source (a face gallery), the LPIPS
    backbone weights a user gives, and the face re-identification backend."""

    source: ImageSource | None = None
    lpips_weights: Path | None = None
    reid_backend: str = "auto"


Values = Tensor | dict[str, Tensor]
Metric = Callable[[MatchedBatch], Values]


def _discover() -> None:
    for module in ("image", "perceptual", "reid"):
        importlib.import_module(f"benchmark.metrics.{module}")


METRICS: Registry[Metric | type] = Registry("metric", discover=_discover)
ALWAYS = ("lpips",)  # computed for every task's images besides the metrics its spec lists


class Evaluator:
    """The metrics of one run, built once: ``evaluator(images, labels, truth_images, truth_labels)``
    matches and scores one target; ``facts`` holds what the summary reports besides means (the
    re-identification backend, and each unavailable metric's reason)."""

    def __init__(self, names: tuple[str, ...], settings: EvaluationSettings = EvaluationSettings()) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.settings = settings
        self.facts: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}
        self._metrics: dict[str, Metric] = {}
        for name in self.names:
            entry = METRICS.get(name)
            try:
                self._metrics[name] = entry(settings) if isinstance(entry, type) else entry
            except MetricUnavailableError as err:
                self._unavailable(name, str(err))
            else:
                self.facts.update(getattr(self._metrics[name], "facts", {}))

    @classmethod
    def for_task(cls, metrics: tuple[str, ...], settings: EvaluationSettings) -> Evaluator:
        """A run's evaluator: the spec's metrics and those computed for every task (:data:`ALWAYS`)."""
        return cls((*metrics, *ALWAYS), settings)

    def _unavailable(self, name: str, reason: str) -> None:
        if name not in self.unavailable:
            log.debug("metric %s is unavailable: %s", name, reason)
        self.unavailable[name] = reason

    def __call__(self, images: Tensor, labels: Tensor, truth_images: Tensor, truth_labels: Tensor) -> dict[str, Tensor]:
        """Match reconstructions to ground truth (Hungarian, on MSE), then compute each metric."""
        from benchmark.metrics.matching import match

        images = images.detach().to(torch.float64).clamp(0, 1).cpu()
        truth_images = truth_images.to(torch.float64).cpu()
        order = match(images, truth_images)
        batch = MatchedBatch(images[order], labels.cpu()[order], truth_images, truth_labels.cpu())
        values: dict[str, Tensor] = {}
        for name, metric in self._metrics.items():
            if name in self.unavailable:
                continue
            try:
                result = metric(batch)
            except MetricUnavailableError as err:
                self._unavailable(name, str(err))
                continue
            values.update(result if isinstance(result, dict) else {name: result})
        return values

    def summary(self) -> dict[str, object]:
        """Keys for ``results.json``'s summary: the facts, null for each unavailable metric, and the
        reasons (``unavailable``)."""
        nulls = {name: None for name in self.unavailable}
        return {**self.facts, **nulls, **({"unavailable": dict(self.unavailable)} if self.unavailable else {})}


def evaluate(images: Tensor, labels: Tensor, truth_images: Tensor, truth_labels: Tensor,
             metrics: tuple[str, ...]) -> dict[str, Tensor]:
    """One-off evaluation with default settings (see :class:`Evaluator`)."""
    return Evaluator(metrics)(images, labels, truth_images, truth_labels)
