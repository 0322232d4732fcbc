"""Results of a run: per-target rows and a summary, written atomically as ``results.json``."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

SUMMARY_METRICS = ("psnr", "ssim", "mse", "label_accuracy")


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

    def row(self) -> dict[str, Any]:
        means = {name: _mean(values) for name, values in self.metrics.items()}
        return {**asdict(self), **means}


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

    @property
    def summary(self) -> dict[str, Any]:
        """Mean of each metric over all images; total attack seconds (restarts included)."""
        names = {name for t in self.targets for name in t.metrics}
        summary: dict[str, Any] = {
            name: _mean([v for t in self.targets for v in t.metrics.get(name, [])]) for name in sorted(names)
        }
        for name in SUMMARY_METRICS:
            summary.setdefault(name, None)
        seconds = sum(t.seconds for t in self.targets)
        summary.update(targets=len(self.targets), seconds=seconds,
                       seconds_per_target=seconds / len(self.targets) if self.targets else None)
        return summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "task_version": self.task_version, "spec_hash": self.spec_hash,
            "attack": self.attack, "config": self.config, "data_origin": self.data_origin,
            "environment": self.environment, "summary": self.summary,
            "targets": [t.row() for t in self.targets],
        }

    def write(self, folder: Path) -> Path:
        """Write ``folder/results.json`` atomically (temporary file, fsync, rename)."""
        return write_atomic(Path(folder) / "results.json", json.dumps(self.to_dict(), indent=2, allow_nan=False))


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def write_atomic(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
    return path


def save_comparison(truth: Tensor, reconstructions: Tensor, path: Path, scale: int = 2) -> Path:
    """PNG with ground truth (top row) over reconstructions (bottom row); images (N, C, H, W) in [0, 1]."""
    pair = torch.cat([truth, reconstructions]).float().cpu()
    pair = torch.nn.functional.interpolate(pair, scale_factor=scale, mode="nearest")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(pair, nrow=len(truth), padding=2, pad_value=1.0), path)
    return path
