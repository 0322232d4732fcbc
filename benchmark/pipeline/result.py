"""Results of a run: per-target rows and a summary, written atomically as ``results.json``."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid, save_image

from benchmark.core.files import write_atomic
from benchmark.metrics.matching import match

SUMMARY_METRICS = ("psnr", "ssim", "mse", "label_accuracy", "lpips")


@dataclass
class TargetResult:
    """One target: its private indices and labels, what was recovered, per-image metrics."""

    target: int
    indices: list[int]
    labels: list[int]
    recovered_labels: list[int]
    metrics: dict[str, list[float]]  # metric -> one value per image of the target's batch
    loss: float
    tries: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)  # attack-specific facts (e.g. a rank analysis)
    failed: str | None = None  # why the attack failed on this target (divergence, solver error); no metrics then
    group: list[int] | None = None  # the targets solved in the same fit (None: a row from before it was recorded)

    def row(self) -> dict[str, Any]:
        """JSON-ready: the fields, with non-finite numbers as null, plus each metric's mean over the batch."""
        means = {name: _mean(values) for name, values in self.metrics.items()}
        return finite_or_null({**asdict(self), **means})

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TargetResult:
        """Inverse of :meth:`row`; raises TypeError on a row that is not one (a missing field, a wrong type)."""
        if not isinstance(row, dict):
            raise TypeError(f"a target row is a JSON object, got {type(row).__name__}")
        for name, valid in _ROW_FIELDS.items():
            if name in row and not valid(row[name]):
                raise TypeError(f"field '{name}' of a target row has the wrong type or range: {repr(row[name])[:60]}")
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """A JSON number or null (a row writes a non-finite number as null)."""
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def _wholes(value: Any) -> bool:
    return isinstance(value, list) and all(map(_whole, value))


_ROW_FIELDS: dict[str, Callable[[Any], bool]] = {
    "target": lambda v: _whole(v) and v >= 0,
    "indices": _wholes,
    "labels": _wholes,
    "recovered_labels": _wholes,
    "metrics": lambda v: isinstance(v, dict) and all(isinstance(m, list) and all(map(_number, m)) for m in v.values()),
    "loss": _number,
    "tries": lambda v: _whole(v) and v >= 0,
    "seconds": lambda v: _number(v) and v is not None and v >= 0,
    "details": lambda v: isinstance(v, dict),
    "failed": lambda v: v is None or isinstance(v, str),
    "group": lambda v: v is None or _wholes(v),
}


@dataclass
class Result:
    task: str
    task_version: int
    spec_hash: str
    attack: str
    config: dict[str, Any]
    data_origin: str
    environment: dict[str, str]
    targets: list[TargetResult] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)  # facts of the evaluation (see Evaluator.summary)
    metric_definitions: dict[str, Any] = field(default_factory=dict)  # name -> library, version, parameters

    @property
    def summary(self) -> dict[str, Any]:
        """Mean of each metric over the images of targets that did not fail (null, with the reason, for
        one measured on only some of them); failures counted apart, and where there are some, which
        targets failed for each reason (``failures``); the evaluation's facts (null and the reason
        for an unavailable metric); total attack seconds (restarts included)."""
        done = [t for t in self.targets if t.failed is None]
        names = {name for t in done for name in t.metrics}
        summary: dict[str, Any] = {**self.evaluation}
        for name in sorted(names):
            measured = [t for t in done if name in t.metrics]
            if len(measured) == len(done):
                summary[name] = _mean([v for t in measured for v in t.metrics[name]])
            else:  # no mean of a subset passed off as the run's
                summary[name] = None
                summary["unavailable"] = {
                    **summary.get("unavailable", {}),
                    name: (
                        f"measured on {len(measured)} of {len(done)} targets (it became available or unavailable "
                        f"between sessions of a resumed run); re-run with --fresh to measure every target"
                    ),
                }
        for name in SUMMARY_METRICS:
            summary.setdefault(name, None)
        if failed := [t for t in self.targets if t.failed is not None]:
            summary["failures"] = {
                reason: [t.target for t in failed if t.failed == reason]
                for reason in dict.fromkeys(t.failed for t in failed)
            }
        seconds = sum(t.seconds for t in self.targets)
        summary.update(
            targets=len(self.targets),
            failed=len(self.targets) - len(done),
            seconds=seconds,
            seconds_per_target=seconds / len(self.targets) if self.targets else None,
        )
        return summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "task_version": self.task_version,
            "spec_hash": self.spec_hash,
            "attack": self.attack,
            "config": self.config,
            "data_origin": self.data_origin,
            "environment": self.environment,
            "summary": self.summary,
            "metric_definitions": self.metric_definitions,
            "targets": [t.row() for t in self.targets],
        }

    def write(self, folder: Path) -> Path:
        """Write ``folder/results.json`` atomically (temporary file, fsync, rename)."""
        return write_atomic(
            Path(folder) / "results.json", json.dumps(finite_or_null(self.to_dict()), indent=2, allow_nan=False)
        )


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def in_matched_order(
    truth: Tensor, reconstructions: Tensor, recovered_labels: Sequence[Sequence[int]]
) -> tuple[Tensor, list[int | None]]:
    """Each target's reconstructions and recovered labels reordered so that column i is the one matched
    to ground-truth image i, as the metrics pair them (:func:`~benchmark.metrics.matching.match` on
    [0, 1] images); for display only, the inputs are left as they are.

    Args:
        truth, reconstructions: (T·B, C, H, W), target after target, the attack's own order within one.
        recovered_labels: per target, its B recovered labels in the attack's order; empty for a failed
            target (its columns keep their order and get no label).
    Returns:
        The reordered reconstructions (T·B, C, H, W) and labels (T·B), None where a target failed.
    """
    batch = len(truth) // max(len(recovered_labels), 1)
    order, labels = [], []
    for target, recovered in enumerate(recovered_labels):
        first = target * batch
        part = slice(first, first + batch)
        if recovered:
            matched = match(reconstructions[part].detach().double().clamp(0, 1).cpu(), truth[part].double().cpu())
            order += (first + matched).tolist()
            labels += [recovered[i] for i in matched.tolist()]
        else:
            order += range(first, first + batch)
            labels += [None] * batch
    return reconstructions[order], labels


def save_comparison(
    truth: Tensor, reconstructions: Tensor, path: Path, scale: int = 2, labels: Sequence[int | None] | None = None
) -> Path:
    """PNG with ground truth (top row) over reconstructions (bottom row), images (N, C, H, W) in [0, 1],
    column i pairing truth[i] with reconstructions[i]; with ``labels``, a row of text under the
    reconstructions gives each one's (None: no text)."""
    pair = torch.cat([truth, reconstructions]).float().cpu()
    pair = torch.nn.functional.interpolate(pair, scale_factor=scale, mode="nearest")
    padding, width = 2, pair.shape[-1]
    buffer = io.BytesIO()
    save_image(make_grid(pair, nrow=len(truth), padding=padding, pad_value=1.0), buffer, format="png")
    if labels is not None:
        grid, font = Image.open(buffer), ImageFont.load_default()
        height = ImageDraw.Draw(grid).textbbox((0, 0), "0123456789", font=font)[3] + padding
        canvas = Image.new("RGB", (grid.width, grid.height + height), "white")
        canvas.paste(grid)
        draw = ImageDraw.Draw(canvas)
        for column, label in enumerate(labels):
            if label is not None:  # centred under its column
                text_width = draw.textlength(str(label), font=font)
                left = padding + column * (width + padding) + (width - text_width) / 2
                draw.text((left, grid.height), str(label), fill="black", font=font)
        buffer = io.BytesIO()
        canvas.save(buffer, format="png")
    return write_atomic(path, buffer.getvalue())
