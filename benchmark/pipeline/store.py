"""The run's last stage: each group's rows made durable in the run folder before the next group starts
(:func:`keep`), and once every group is done, the run's result written (:func:`finish`)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from benchmark.metrics import Evaluator, definitions
from benchmark.pipeline.loggers import log_result
from benchmark.pipeline.prepare import OpenRun
from benchmark.pipeline.result import Result, TargetResult, in_matched_order, save_comparison

log = logging.getLogger(__name__)


def keep(run: OpenRun, done: list[tuple[TargetResult, Tensor | None]]) -> None:
    """A group's rows and reconstructions stored (then its fit's checkpoint is spent), and counted finished."""
    if run.store is not None:
        run.store.append(done)
        first, last = done[0][0].target, done[-1][0].target  # the group's, in its order
        shutil.rmtree(run.store.checkpoint(first, last).parent, ignore_errors=True)
    count = run.plan.count
    for row, images in done:
        run.finished[row.target] = (row, images)
        log.info(
            "target %d (%d of %d finished): %s",
            row.target,
            sum(t in run.finished for t in range(count)),
            count,
            row.failed or f"psnr {row.row().get('psnr') or float('nan'):.2f} dB, labels {row.recovered_labels}",
        )


def finish(run: OpenRun, barrier: Callable[[], None] | None = None) -> Result:
    """Once every process's groups are stored (``barrier``), the run's result: its rows in target order, the
    evaluation's facts, ``results.json`` and ``reconstructions.png`` (process 0), the logger's summary."""
    if barrier is not None:  # every process's targets are stored: read them all back
        barrier()
        run.finished = run.store.finished(run.shape)
    shown = collect(
        run.result,
        [run.finished[target] for target in range(run.plan.count)],
        run.evaluator,
        run.samples.images,
        run.plan.spec.fl.batch_size,
        run.plan.out if run.writer else None,
    )
    log_result(run.logger, run.result, run.samples.images, shown)
    if run.logger is not None:
        run.logger.finalize("success")
    return run.result


def collect(
    result: Result,
    finished: list[tuple[TargetResult, Tensor | None]],
    evaluator: Evaluator,
    truth: Tensor,
    batch: int,
    out: Path | None,
) -> Tensor:
    """Put the rows of targets 0..N-1 into ``result`` with the evaluation's facts and each metric's
    definition; with ``out``, write ``results.json`` and ``reconstructions.png`` there. Returns the
    reconstructions (N·B, C, H, W) in matched order, grey for failed targets."""
    pictures = []
    for row, images in finished:
        result.targets.append(row)
        pictures.append(images if images is not None else torch.full_like(truth[:batch], 0.5))
    result.evaluation = evaluator.summary()
    result.metric_definitions = definitions({name for row in result.targets for name in row.metrics})
    shown, labels = in_matched_order(truth, torch.cat(pictures), [row.recovered_labels for row in result.targets])
    if out is not None:
        result.write(out)
        save_comparison(truth, shown, out / "reconstructions.png", labels=labels)
    return shown
