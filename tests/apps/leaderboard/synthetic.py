"""Entries made from synthetic results of the quick suite's tasks: no attack runs, so tests are fast."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from torchvision.utils import save_image

from benchmark.apps.leaderboard.protocol import suite_protocols
from benchmark.apps.leaderboard.provenance import NO_GIT
from benchmark.apps.leaderboard.schema import Entry, Verification
from benchmark.apps.leaderboard.submit import entry_from_result
from benchmark.metrics import definitions
from benchmark.pipeline.result import TargetResult
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.loading import spec_hash

ENVIRONMENT = {"leakbench": "0.1.0", "torch": "2.5.0", "lightning": "2.4.0", "python": "3.11.7", "device": "cpu"}


def fake_result(
    task: str = "mnist-lenetzhu-b1",
    attack: str = "dlg",
    psnr: Sequence[float | None] = (20.0, 30.0, 40.0),
    max_steps: int = 300,
) -> dict[str, Any]:
    """A ``results.json`` mapping with one row per PSNR value (None: a failed target)."""
    spec = load_task(task)
    rows = []
    for target, value in enumerate(psnr):
        metrics = (
            {}
            if value is None
            else {"psnr": [value], "ssim": [value / 100], "mse": [10 ** (-value / 10)], "label_accuracy": [1.0]}
        )
        rows.append(
            TargetResult(
                target=target,
                indices=spec.target_indices(target),
                labels=[target],
                recovered_labels=[target] if value is not None else [],
                metrics=metrics,
                loss=1e-3,
                tries=1,
                seconds=2.0,
                failed="FloatingPointError: NaN" if value is None else None,
            ).row()
        )
    return {
        "task": task,
        "task_version": spec.version,
        "spec_hash": spec_hash(spec),
        "attack": attack,
        "config": {"attack": {"max_steps": max_steps}, "seed": 0, "targets": len(rows), "restarts": 1},
        "data_origin": "test",
        "metric_definitions": definitions(["psnr", "ssim", "mse", "label_accuracy"]),
        "environment": ENVIRONMENT,
        "summary": {},
        "targets": rows,
    }


def fake_entry(
    task: str = "mnist-lenetzhu-b1",
    attack: str = "dlg",
    psnr: Sequence[float | None] = (20.0, 30.0, 40.0),
    picture: bool = True,
    suite: str = "quick",
) -> Entry:
    protocol = suite_protocols(suite, [task])[0]
    return entry_from_result(fake_result(task, attack, psnr), protocol, source="test", git=NO_GIT, picture=picture)


def traced(entry: Entry, commit: str) -> Entry:
    """The entry as ``submit`` writes it from the clean ``commit`` and ``verify --record`` marks it."""
    environment = entry.environment.model_copy(update={"git_commit": commit, "git_dirty": False})
    verification = Verification(
        date=entry.date, environment=environment, code_changes=[], attack_package=entry.attack_package
    )
    return entry.model_copy(update={"environment": environment, "verified": True, "verification": verification})


def png() -> bytes:
    buffer = io.BytesIO()
    save_image(torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)), buffer, format="png")
    return buffer.getvalue()
