"""The Python API: ``run(task, attack, ...) -> Result``, the whole data flow for one (task, attack).

TaskSpec → Victim → Observation → Attack (trained by a Lightning Trainer) → Reconstruction →
evaluation against the private batch → Result; :func:`run` checks the settings and makes the plan,
:mod:`benchmark.pipeline.loop` runs it through the stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.core.errors import FileError, SettingError, at_least, first_line
from benchmark.defenses import build_defense
from benchmark.metrics import EvaluationSettings, MetricUnavailableError
from benchmark.metrics.perceptual import check_backbone_file
from benchmark.pipeline.config import attack_config, modifies_model
from benchmark.pipeline.distribute import run_distributed
from benchmark.pipeline.hardware import check_accelerator, launched_externally
from benchmark.pipeline.loop import run_targets
from benchmark.pipeline.plan import RunOptions, RunPlan
from benchmark.pipeline.result import Result
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.spec import TaskSpec


def _check_weights(path: Path) -> None:
    """A weights file the user gives is torchvision's AlexNet file, or a one-line error before any work
    (where LPIPS would otherwise be unavailable for the whole run)."""
    try:
        check_backbone_file(path)
    except MetricUnavailableError as err:
        raise FileError(f"--lpips-weights: {first_line(err).removeprefix('LPIPS: ')}") from None


def run(task: str | Path | TaskSpec, attack: str, options: RunOptions | None = None, **fields: Any) -> Result:
    """Attack the first ``targets`` targets of ``task`` and evaluate the reconstructions.

    The settings are the fields of :class:`~benchmark.pipeline.plan.RunOptions`, given as ``options``,
    as keywords (``run(task, attack, targets=2)``), or both (the keywords replace the options' fields).

    With ``out``, every finished target is made durable before the next starts, and running the
    same call again resumes: finished targets are read back, not recomputed.

    Args:
        task: a task name, a YAML path, or a loaded spec.
        attack: a registered attack name.
        targets: number of targets (default: the spec's ``targets.count``).
        seed: attack seed; target t, restart r is seeded from (seed, t, r) alone.
        max_steps: optimisation budget (default: the spec's budget, else the attack's paper default).
        restarts: independent problems per target, the lowest final loss kept (default: the spec's budget).
        out: the run folder (see :mod:`benchmark.pipeline.folder`); nothing is written if None.
        logger: ``csv``, ``tensorboard``, ``wandb`` or None (needs ``out``).
        accelerator: a Lightning accelerator name (``cpu``, ``gpu``, ``auto``).
        progress: show Lightning's progress bar.
        attack_options: overrides of the attack's config fields.
        fresh: discard what ``out`` holds instead of resuming it.
        problems: how many problems (targets × restarts) one fit solves together: the targets are
            grouped by number, target t in the fit of targets ⌊t/G⌋·G .. ⌊t/G⌋·G + G - 1 (those below
            ``extent``), G = ⌊problems / restarts⌋ (at least 1); each row records its group. Batched
            kernels round differently from unbatched ones, so the grouping is part of the run: a
            target's row is the same bit for bit whichever run computed it, as long as its group is.
            1 attacks the targets one after another.
        max_steps_cap: an upper bound on the steps, whatever the budget says (a suite's cap).
        images_every: log the current reconstructions every N steps (TensorBoard, W&B).
        devices, num_nodes: processes per node and nodes. With more than one process in all (or
            under torchrun / SLURM), the pending targets are dealt round-robin to the processes, each
            attacks its share on its own device, and process 0 writes the results once all are
            done; the shares meet in the run folder, so ``out`` is required (shared by all nodes).
        lpips_weights: a torchvision AlexNet weights file for LPIPS (default: torchvision's cache).
        reid: the face re-identification encoder of tasks that list ``reid``: ``facenet``, ``dlib``,
            or ``auto`` (facenet where its weights are present, else dlib).
        defense: the client's defence, replacing the spec's ``defense`` (an ad-hoc run: the spec's
            hash, recorded in the run, changes with it).
        retry_failed: recompute the targets ``out`` holds as failed (and the pending ones); the
            finished ones are kept.
        isolation: run the attack's fits in a sandbox with these limits (:mod:`benchmark.pipeline.isolation`,
            docs/trust.md): it sees its observations and nothing of the private batch, the network or
            this machine's files but the Python installation, leakbench and its own package. A
            plugin's attack is then never imported here: a sandbox builds its config and a fit's
            sandbox asks its ``unsupported()``.
        extent: the number of targets the groups are laid over (default ``targets``). A run of the
            first ``targets`` of an ``extent``-target protocol computes the whole groups that hold them
            (and keeps every row it computed), so each of its targets is computed in the company it has
            in the full run: ``submit --targets 1``, the full ``submit`` that resumes it, and ``verify``
            give a target the same row.
        compile: compile each fit's objective with ``torch.compile`` (an optimisation attack, not
            isolated): faster steps after a one-off compilation, rounded otherwise than the eager
            run's, so recorded in the run's definition: a run folder is compiled or not.

    Every count is checked first (at least 1; ``seed`` at least 0; None, not 0, means the default),
    then the accelerator and the sandbox, all before any work: a bad setting raises a one-line
    :class:`~benchmark.core.errors.SettingError` and writes nothing.
    """
    o = dataclasses.replace(options or RunOptions(), **fields)
    for name in (
        "targets",
        "max_steps",
        "restarts",
        "problems",
        "max_steps_cap",
        "images_every",
        "devices",
        "num_nodes",
        "extent",
    ):
        if (value := getattr(o, name)) is not None:
            at_least(name, value, 1)
    at_least("seed", o.seed, 0)
    if o.fresh and o.retry_failed:
        raise SettingError(
            "--fresh discards every row of the run folder and --retry-failed keeps the finished ones: give one of them"
        )
    check_accelerator(o.accelerator, o.devices, o.num_nodes)
    if o.isolation is not None:
        if o.compile:
            raise SettingError(
                "--compile needs a C++ compiler and a cache folder, which the sandbox of --isolated does not "
                "give: run without one of them"
            )
        o.isolation.check(o.accelerator)
    if o.lpips_weights is not None:
        _check_weights(Path(o.lpips_weights))
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if o.defense is not None:
        build_defense(o.defense)  # a bad name or parameter fails before any work
        spec = spec.model_copy(update={"defense": o.defense})
    # isolated, the attack is found without loading any plugin (a built-in's class, or a plugin's entry point)
    attack, found = ATTACKS.locate(attack) if o.isolation is not None else (ATTACKS.canonical(attack), None)
    overrides = {**spec.budget.options.get(attack, {}), **(o.attack_options or {})}
    if (steps := o.max_steps if o.max_steps is not None else spec.budget.max_steps) is not None:
        overrides["max_steps"] = steps
    if o.isolation is not None and not isinstance(found, type):
        if spec.threat.server == "malicious":
            raise SettingError(
                f"task '{spec.name}' has a malicious server (threat.server: malicious), whose step before the "
                f"round (the attack's prepare_model) an isolated plugin cannot take here; run it without --isolated"
            )
        found, config = o.isolation.describe(found, overrides, o.max_steps_cap)
    else:
        attack_cls = found or ATTACKS.get(attack)
        config = attack_config(attack_cls, overrides, o.max_steps_cap)
        modifies_model(attack, spec, attack_cls)  # an honest task refuses it before any work
        if o.compile and not issubclass(attack_cls, OptimizationAttack):
            raise SettingError(
                f"--compile compiles an optimisation attack's objective; '{attack}' is solved in closed form: run it without"
            )
    count = o.targets if o.targets is not None else spec.targets.count
    plan = RunPlan(
        spec=spec,
        attack=attack,
        config=config,
        count=count,
        extent=max(count, o.extent or count),
        tries=o.restarts if o.restarts is not None else spec.budget.restarts,
        seed=o.seed,
        out=Path(o.out) if o.out is not None else None,
        logger=o.logger,
        accelerator=o.accelerator,
        progress=o.progress,
        fresh=o.fresh,
        problems=o.problems,
        images_every=o.images_every,
        evaluation=EvaluationSettings(
            lpips_weights=Path(o.lpips_weights) if o.lpips_weights else None, reid_backend=o.reid
        ),
        retry_failed=o.retry_failed,
        isolation=o.isolation,
        attack_cls=found,
        compile=o.compile,
    )
    if (o.devices * o.num_nodes == 1 and not launched_externally()) or plan.nothing_pending():
        return run_targets(plan)
    return run_distributed(plan, o.devices, o.num_nodes)
