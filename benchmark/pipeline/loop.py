"""The run loop of one process: its groups of targets through the stages, in order, each group's
rows stored before the next group starts (prepare → attack → evaluate → store)."""

from __future__ import annotations

from collections.abc import Callable

from benchmark.pipeline.attack import attack_group
from benchmark.pipeline.evaluate import score
from benchmark.pipeline.plan import RunPlan
from benchmark.pipeline.prepare import open_run, prepare_targets
from benchmark.pipeline.result import Result
from benchmark.pipeline.store import finish, keep


def run_targets(
    plan: RunPlan, rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None, device: int | list[int] = 1
) -> Result:
    """Attack the pending targets dealt to process ``rank`` of ``world``, then (process 0) write the results."""
    run = open_run(plan, rank, world, device)
    for group in run.groups:
        targets = prepare_targets(run, group)
        attacked = attack_group(run, targets)
        rows = score(run, attacked)
        keep(run, rows)
    return finish(run, barrier)
