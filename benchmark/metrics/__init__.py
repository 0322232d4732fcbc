"""Evaluation: one-to-one matching of reconstructions to the private batch, then per-image metrics.

Every metric sees images in [0, 1] and returns one value per image, (N,) float64, or several such
series by name (face re-identification returns its rates and their ceiling and chance). A metric
is a function of the :class:`MatchedBatch`, or a class built once per run from the
:class:`EvaluationSettings` (for models and galleries); one whose model or data is absent raises
:class:`MetricUnavailableError` and is reported as unavailable (null, with the reason), never guessed.

Each reported value has one :class:`MetricInfo`, registered beside the code that computes it: its
definition (library, version, parameters; written into ``results.json``, entries and boards), its
direction, display name and format, and the tolerance ``leakbench verify`` allows it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from benchmark.core.errors import LeakBenchError
from benchmark.core.registry import Registry
from benchmark.metrics.matching import match

log = logging.getLogger(__name__)


class MetricUnavailableError(LeakBenchError):
    """A metric whose model weights, package or reference data are absent here; the message says how
    to provide them."""


class Gallery(Protocol):
    """What the metrics need of a task's data source (a :class:`benchmark.data.ImageSource`): the
    gallery a face re-identification ranks people in."""

    def gallery(self) -> tuple[Tensor, Tensor]:
        """The gallery's images (M, C, H, W) in [0, 1] and their people (M,)."""
        ...


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

    source: Gallery | None = None
    lpips_weights: Path | None = None
    reid_backend: str = "auto"


@dataclass(frozen=True)
class Tolerance:
    """How far a re-run may move a value: max(abs, rel · |recorded|)."""

    rel: float
    abs: float

    def allowed(self, recorded: float) -> float:
        return max(self.abs, self.rel * abs(recorded))


@dataclass(frozen=True)
class MetricInfo:
    """What one reported value means and how it is shown.

    ``definition`` names the library and every parameter that changes the value; the installed
    versions of ``packages`` are recorded beside it (:func:`definitions`). ``higher_is_better`` is
    None for values with no direction (a ceiling, a count); ``board`` False keeps a value off the
    boards' columns (it stays in every row and in ``results.json``).
    """

    title: str
    definition: dict[str, Any]
    packages: tuple[str, ...] = ()
    higher_is_better: bool | None = None
    format: str = "{:.4g}"
    percent: bool = False  # a fraction shown as a percentage
    tolerance: Tolerance = Tolerance(rel=0.05, abs=0.01)
    board: bool = True

    def show(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{100 * value:.1f} %" if self.percent else self.format.format(value)

    def record(self) -> dict[str, Any]:
        """The definition with the installed versions of its packages, as results and entries keep it."""
        return {**self.definition, "versions": {name: _version(name) for name in self.packages}}

    def defines(self, recorded: dict[str, Any] | None) -> bool:
        """Whether a recorded definition is this one (the packages' versions may differ)."""
        return recorded is not None and {k: v for k, v in recorded.items() if k != "versions"} == json.loads(
            json.dumps(self.definition)
        )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


INFO: dict[str, MetricInfo] = {}


def describe(name: str, info: MetricInfo) -> None:
    """Register what the reported value ``name`` means (once per name)."""
    if name in INFO:
        raise ValueError(f"metric value '{name}' is already described")
    INFO[name] = info


def metric_info(name: str) -> MetricInfo:
    """The registered meaning of ``name``; a value nobody described (a plugin's) gets a plain one."""
    METRICS.names()  # the built-in metric modules describe their values when discovered
    return INFO.get(name) or MetricInfo(title=name, definition={"note": "not described by leakbench"})


def definitions(names: Any) -> dict[str, dict[str, Any]]:
    """``{name: recorded definition}`` of the given reported values, for ``results.json`` and entries."""
    return {name: metric_info(name).record() for name in sorted(names)}


Values = Tensor | dict[str, Tensor]
Metric = Callable[[MatchedBatch], Values]


def _discover() -> None:
    for module in ("image", "perceptual", "reid"):
        importlib.import_module(f"benchmark.metrics.{module}")


METRICS: Registry[Metric | type] = Registry("metric", discover=_discover)
# computed for every task's images besides the metrics its spec lists: LPIPS, and the SSIM variant of
# the FedKL success criterion (so every run can be judged by it, see benchmark.apps.study)
ALWAYS = ("lpips", "ssim_skimage7")


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


def evaluate(
    images: Tensor, labels: Tensor, truth_images: Tensor, truth_labels: Tensor, metrics: tuple[str, ...]
) -> dict[str, Tensor]:
    """One-off evaluation with default settings (see :class:`Evaluator`)."""
    return Evaluator(metrics)(images, labels, truth_images, truth_labels)
