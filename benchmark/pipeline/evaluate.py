"""The run's third stage: each target's best try scored against its private batch (a target
without a finite try is a failed row, with its reason)."""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from benchmark.pipeline.attack import Attacked
from benchmark.pipeline.prepare import OpenRun
from benchmark.pipeline.result import TargetResult

log = logging.getLogger(__name__)


def score(run: OpenRun, attacked: list[Attacked]) -> list[tuple[TargetResult, Tensor | None]]:
    """(row, best images or None if failed) per target; the means logged as ``eval/*`` at its fit's step."""
    results = []
    for item in attacked:
        target = item.target
        row = TargetResult(
            target=target.number,
            indices=target.indices,
            labels=target.private.labels.tolist(),
            recovered_labels=[],
            metrics={},
            loss=math.nan,
            tries=run.plan.tries,
            seconds=item.seconds,
            group=item.group,
        )
        if target.global_model is not None:  # the model a malicious server sent is part of the target's round
            row.details = {"global_model": target.global_model}
        best = min(item.attempts, key=lambda r: r.loss) if item.attempts else None
        if best is None or not torch.isfinite(best.images).all():
            row.failed = (
                f"{type(item.error).__name__}: {item.error}"
                if best is None
                else "FloatingPointError: the reconstruction holds NaN or Inf values"
            )
            log.warning(
                "target %d failed: %s", target.number, row.failed, exc_info=item.error if best is None else None
            )
            results.append((row, None))
            continue
        metrics = run.evaluator(best.images, best.labels, target.private.images, target.private.labels)
        row.metrics = {name: values.tolist() for name, values in metrics.items()}
        row.recovered_labels, row.loss, row.details = best.labels.tolist(), best.loss, {**row.details, **best.details}
        if run.logger is not None:
            run.logger.log_metrics(
                {f"eval/{k}": v.mean().item() for k, v in metrics.items()} | {"target": target.number}, step=item.step
            )
        results.append((row, best.images.cpu()))
    return results
