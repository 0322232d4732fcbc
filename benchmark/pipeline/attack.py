"""The run's second stage: a group's targets attacked in one fit, ``tries`` problems each (a failing
group retried target by target, so one target's failure is not its neighbours')."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.attacks.base import Attack, Reconstruction
from benchmark.core.errors import (
    ATTACK_FAILURES,
    LeakBenchError,
    NotApplicableError,
    SettingError,
    attack_error,
    first_line,
)
from benchmark.core.seeding import problem_seed
from benchmark.pipeline.config import not_applicable
from benchmark.pipeline.fit import FitOptions, fit
from benchmark.pipeline.isolation import Described
from benchmark.pipeline.prepare import OpenRun, Target

log = logging.getLogger(__name__)


@dataclass
class Attacked:
    """One target after its fit: its tries' reconstructions (none where the fit failed, with ``error``)."""

    target: Target
    attempts: list[Reconstruction]
    error: BaseException | None
    seconds: float  # its fit's wall time, shared by the fit's targets
    group: list[int]  # the targets of its fit
    step: int  # the run's step at the end of its fit (the logger's axis)


def attack_group(run: OpenRun, chunk: list[Target]) -> list[Attacked]:
    """The stage as the run loop calls it: ``chunk`` attacked with the run's config and seed, its
    checkpoint in the run folder, the run's steps advanced."""
    plan = run.plan
    checkpoint = run.store.checkpoint(chunk[0].number, chunk[-1].number) if run.store is not None else None
    try:
        attacked, used = attack_targets(
            run.attack_cls,
            plan.config,
            chunk,
            seed=plan.seed,
            tries=plan.tries,
            step_offset=run.steps,
            options=dataclasses.replace(run.options, checkpoint=checkpoint),
        )
    except NotApplicableError as err:  # from a described plugin's sandbox: the reason its unsupported() gave
        if not isinstance(run.attack_cls, Described):
            raise
        raise not_applicable(plan.attack, plan.spec, err) from None
    run.steps += used
    return attacked


def attack_targets(
    attack_cls: type[Attack] | Described,
    config: Any,
    chunk: list[Target],
    *,
    seed: int,
    tries: int,
    options: FitOptions,
    step_offset: int = 0,
) -> tuple[list[Attacked], int]:
    """Attack a chunk of targets, ``tries`` problems each, in one fit: (each target's tries, steps taken).

    A divergence or solver error leaves a target without tries and with its error (a failing chunk
    is retried target by target); user errors propagate, and anything else stops the run as a bug.
    """
    start = time.perf_counter()
    error = None
    try:
        reconstructions, steps = fit(
            attack_cls,
            [t.observation for t in chunk for _ in range(tries)],
            config,
            [problem_seed(seed, t.number, r) for t in chunk for r in range(tries)],
            options,
            step_offset,
        )
    except LeakBenchError:
        raise
    except ATTACK_FAILURES as err:  # the attack's mathematics failed: a result of the benchmark, not a crash
        if len(chunk) > 1:
            attacked, steps, alone = [], 0, dataclasses.replace(options, checkpoint=None)
            for target in chunk:
                done, used = attack_targets(
                    attack_cls, config, [target], seed=seed, tries=tries, options=alone, step_offset=step_offset + steps
                )
                attacked += done
                steps += used
            return attacked, steps
        reconstructions, steps, error = [], 0, err
    except torch.cuda.OutOfMemoryError:
        raise SettingError(
            f"{len(chunk) * tries} problems in one fit do not fit in the memory of the "
            f"{options.accelerator} device; lower --problems"
        ) from None
    except Exception as err:  # anything else is a bug or a setting: it stops the run and writes no row
        log.error(
            "attack %s raised %s, which is not a failure of its mathematics:",
            attack_cls.__name__,
            type(err).__name__,
            exc_info=err,
        )
        raise attack_error(attack_cls.__name__, type(err).__name__, first_line(err)) from None
    seconds = (time.perf_counter() - start) / len(chunk)
    group = [t.number for t in chunk]
    return [
        Attacked(target, reconstructions[k * tries : (k + 1) * tries], error, seconds, group, step_offset + steps)
        for k, target in enumerate(chunk)
    ], steps
