"""The Python API: ``run(task, attack, ...) -> Result``, the whole data flow for one (task, attack).

TaskSpec → Victim → Observation → Attack (trained by a Lightning Trainer) → Reconstruction →
evaluation against the private batch → Result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import os
import platform
import shutil
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric import Fabric
from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.warnings import PossibleUserWarning
from torch import Tensor

import benchmark
from benchmark.attacks import ATTACKS, code_module
from benchmark.attacks.base import Attack, Reconstruction
from benchmark.code import attack_code
from benchmark.data import Samples, load_samples, load_source, local_only
from benchmark.defenses import build_defense, defense_record
from benchmark.errors import (ATTACK_FAILURES, FileError, LeakBenchError, NotApplicableError, SettingError, SpecError,
                              at_least, attack_error, first_line)
from benchmark.isolation import Described, Isolation
from benchmark.loggers import log_config, log_result, make_logger
from benchmark.metrics import EvaluationSettings, Evaluator, MetricUnavailableError, definitions
from benchmark.metrics.perceptual import check_backbone_file
from benchmark.metrics.reid import resolve_backend
from benchmark.registry import did_you_mean
from benchmark.result import Result, TargetResult, in_matched_order, save_comparison, write_atomic
from benchmark.spec import DefenseSpec, TaskSpec, load_task, spec_hash
from benchmark.store import RunStore
from benchmark.victim import Observation, Victim

log = logging.getLogger(__name__)


def attack_config(attack_cls: type[Attack], overrides: dict[str, Any], max_steps_cap: int | None = None) -> Any:
    """The attack's config dataclass with paper defaults, updated by ``overrides`` (each of its default's
    kind: a number for a number, a list for a tuple; ``max_steps`` at least 1, and at most ``max_steps_cap``)."""
    fields = {f.name: f.default for f in dataclasses.fields(attack_cls.Config)}
    for key, value in overrides.items():
        if key not in fields:
            raise LeakBenchError(f"attack option '{key}' does not exist{did_you_mean(key, list(fields))}; "
                                 f"options: {', '.join(fields)}")
        if not _same_kind(value, fields[key]):
            raise SettingError(f"attack option '{key}' takes a value like its default {fields[key]!r} "
                               f"({type(fields[key]).__name__}), got {value!r}")
    config = attack_cls.Config(**overrides)
    at_least("max_steps", config.max_steps, 1)
    if max_steps_cap is not None and config.max_steps > max_steps_cap:
        config = dataclasses.replace(config, max_steps=max_steps_cap)
    return config


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` can stand where the config's ``default`` stands (None: any value)."""
    if default is None or default is dataclasses.MISSING:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_applies(attack: str, spec: TaskSpec, observation: Observation, attack_cls: type[Attack] | None = None) -> None:
    """A :class:`NotApplicableError` where ``attack`` (whose class is ``attack_cls``, default the
    registered one) cannot run on an observation of task ``spec``."""
    if (reason := (attack_cls or ATTACKS.get(attack)).unsupported(observation)) is not None:
        raise _not_applicable(attack, spec, reason)


def _not_applicable(attack: str, spec: TaskSpec, reason: object) -> NotApplicableError:
    return NotApplicableError(f"attack '{attack}' does not apply to task '{spec.name}': {reason}")


def check_accelerator(accelerator: str, devices: int = 1, num_nodes: int = 1) -> None:
    """Lightning's own check that ``accelerator`` and ``devices`` exist here, as a one-line error before any work."""
    try:
        Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes)
    except (MisconfigurationException, RuntimeError, ValueError, TypeError, ImportError) as err:
        reason = " ".join(str(err).split())[:200].rstrip(".!")
        raise SettingError(f"--accelerator {accelerator} with --devices {devices} cannot run here ({reason}); use "
                           f"--accelerator cpu, or gpu (or auto) with at most as many --devices as this machine "
                           f"has") from None
    if num_nodes > 1 and not _launched_externally():
        raise SettingError(f"--num-nodes {num_nodes} needs a launcher that starts the command on every node "
                           f"(torchrun or SLURM's srun, see docs/scaling.md); on one machine leave it at 1")


def hardware(accelerator: str, processes: int = 1) -> str:
    """The one label of the hardware a run used, in results, entries and perf reports: the GPU's name
    and how many a run used (``NVIDIA H200 (1 GPU)``), or the CPU's model and this machine's cores
    (``AMD EPYC (2 cores)``)."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({processes} GPU{'s' if processes > 1 else ''})"
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _environment(accelerator: str, processes: int = 1) -> dict[str, str]:
    return {"leakbench": benchmark.__version__, "torch": torch.__version__, "lightning": pl.__version__,
            "python": platform.python_version(), "device": hardware(accelerator, processes)} | (
                {"processes": str(processes)} if processes > 1 else {})


def problem_seed(seed: int, target: int, restart: int) -> int:
    """The seed of one problem: a function of (run seed, target, restart) alone."""
    return int(np.random.SeedSequence([seed, target, restart]).generate_state(1)[0])


@dataclass(frozen=True)
class FitOptions:
    """How fits run: Lightning accelerator, logger, progress bar, (for loggers that show images) the
    current reconstructions logged every ``images_every`` steps, extra callbacks, a checkpoint file
    written every ``checkpoint_every`` steps, from which an interrupted fit resumes, and the sandbox
    the fit runs in (``isolation``; then the logger and callbacks stay here and see none of its steps)."""

    accelerator: str = "cpu"
    logger: Logger | None = None
    progress: bool = False
    images_every: int | None = None
    devices: int | list[int] = 1  # Lightning's devices for one fit: 1, or [i] for device i
    callbacks: tuple[pl.Callback, ...] = ()
    checkpoint: Path | None = None
    checkpoint_every: int = 500
    isolation: Isolation | None = None


class _Checkpoint(pl.Callback):
    """Writes the fit's checkpoint every ``every`` steps, whole (written aside, then renamed), and the
    sha256 of what it wrote beside it (``<name>.sha256``), which a resumed fit checks."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every, self.saved_at = path, every, None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every or step == self.saved_at:
            return
        self.saved_at = step
        aside = self.path.with_name(f".{self.path.name}.partial")
        trainer.save_checkpoint(aside)
        write_atomic(_hash_file(self.path), hashlib.sha256(aside.read_bytes()).hexdigest())
        os.replace(aside, self.path)


def _hash_file(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".sha256")


def fit(attack_cls: type[Attack], observations: Sequence[Observation], config: Any, seeds: Sequence[int],
        options: FitOptions = FitOptions(), step_offset: int = 0) -> tuple[list[Reconstruction], int]:
    """Solve K problems (observation k from seed k) in one Lightning fit: (reconstructions, steps)."""
    if options.isolation is not None:
        return options.isolation.fit(attack_cls, observations, config, seeds, options, step_offset)
    pl.seed_everything(seeds[0] % 2**32, verbose=False)  # for attacks that also draw from the global RNG
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # not "GPU available" for every fit
    attack = attack_cls(observations, config, seeds)
    attack.log_step_offset, attack.images_every = step_offset, options.images_every
    callbacks, resume = list(options.callbacks), None
    if options.checkpoint is not None:
        options.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(_Checkpoint(options.checkpoint, options.checkpoint_every))
        resume = options.checkpoint if _readable_checkpoint(options.checkpoint) else None
    trainer = pl.Trainer(
        max_steps=config.max_steps, max_epochs=1, accelerator=options.accelerator, devices=options.devices,
        logger=options.logger or False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=options.progress, callbacks=callbacks,
        log_every_n_steps=10, num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own use of a torch API
        warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")  # it holds step N's state
        warnings.filterwarnings("ignore", message=".*configure_optimizers.* returned .None.*")  # closed form
        trainer.fit(attack, ckpt_path=resume, weights_only=True)
    return attack.reconstructions(), trainer.global_step


def _readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a complete checkpoint of this fit: the file whose sha256 the fit recorded
    beside it, a Lightning checkpoint of tensors and plain values (read with ``weights_only=True``, so
    a file that would run code when loaded is refused, not run). Any other file (torn by a kill,
    foreign, changed) is removed, with its hash."""
    if not path.is_file():
        return False
    recorded = _hash_file(path)
    problem = "does not match the sha256 its fit recorded" if recorded.is_file() else "has no sha256 recorded beside it"
    try:
        content = path.read_bytes() if stat.S_ISREG(path.lstat().st_mode) else b""
        if recorded.is_file() and recorded.read_text() == hashlib.sha256(content).hexdigest():
            problem = "is not a Lightning checkpoint of tensors and plain values"
            checkpoint = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
            if isinstance(checkpoint, dict) and {"state_dict", "loops", "global_step"} <= checkpoint.keys():
                return True
    except Exception as err:  # any unreadable file means the same: start the fit afresh
        problem += f" ({type(err).__name__}: {first_line(err, 100)})"
    log.warning("checkpoint %s %s; it is removed and the fit starts afresh", path, problem)
    path.unlink()
    recorded.unlink(missing_ok=True)
    return False


@dataclass
class _Target:
    """One target of a run while it is attacked: its private batch stays here, in the runner."""

    number: int
    indices: list[int]  # the dataset's own indices of its images
    private: Samples
    observation: Observation


def attack_targets(attack_cls: type[Attack], config: Any, chunk: list[_Target], *, seed: int, tries: int,
                   options: FitOptions, evaluator: Evaluator, step_offset: int = 0
                   ) -> tuple[list[tuple[TargetResult, Tensor | None]], int]:
    """Attack a chunk of targets, ``tries`` problems each, in one fit; score each target's best with ``evaluator``.

    Returns ((row, images or None if failed) per target, steps taken). A divergence or solver error
    marks a target failed with its reason (a failing chunk is retried target by target, so one
    target's failure is not its neighbours'); user errors propagate.
    """
    start = time.perf_counter()
    try:
        reconstructions, steps = fit(
            attack_cls, [t.observation for t in chunk for _ in range(tries)], config,
            [problem_seed(seed, t.number, r) for t in chunk for r in range(tries)], options, step_offset)
    except LeakBenchError:
        raise
    except ATTACK_FAILURES as err:  # the attack's mathematics failed: a result of the benchmark, not a crash
        if len(chunk) > 1:
            results, steps, alone = [], 0, dataclasses.replace(options, checkpoint=None)
            for target in chunk:
                done, used = attack_targets(attack_cls, config, [target], seed=seed, tries=tries,
                                            options=alone, evaluator=evaluator, step_offset=step_offset + steps)
                results += done
                steps += used
            return results, steps
        reconstructions, steps, error = [], 0, err
    except torch.cuda.OutOfMemoryError:
        raise SettingError(f"{len(chunk) * tries} problems in one fit do not fit in the memory of the "
                           f"{options.accelerator} device; lower --problems") from None
    except Exception as err:  # anything else is a bug or a setting: it stops the run and writes no row
        log.error("attack %s raised %s, which is not a failure of its mathematics:", attack_cls.__name__,
                  type(err).__name__, exc_info=err)
        raise attack_error(attack_cls.__name__, type(err).__name__, first_line(err)) from None
    seconds = (time.perf_counter() - start) / len(chunk)  # the chunk's wall time, shared by its targets
    results, group = [], [t.number for t in chunk]
    for index, target in enumerate(chunk):
        row = TargetResult(target=target.number, indices=target.indices,
                           labels=target.private.labels.tolist(), recovered_labels=[], metrics={}, loss=math.nan,
                           tries=tries, seconds=seconds, group=group)
        attempts = reconstructions[index * tries:(index + 1) * tries]
        best = min(attempts, key=lambda r: r.loss) if attempts else None
        if best is None or not torch.isfinite(best.images).all():
            row.failed = (f"{type(error).__name__}: {error}" if best is None
                          else "FloatingPointError: the reconstruction holds NaN or Inf values")
            log.warning("target %d failed: %s", target.number, row.failed, exc_info=error if best is None else None)
            results.append((row, None))
            continue
        metrics = evaluator(best.images, best.labels, target.private.images, target.private.labels)
        row.metrics = {name: values.tolist() for name, values in metrics.items()}
        row.recovered_labels, row.loss, row.details = best.labels.tolist(), best.loss, best.details
        if options.logger is not None:
            options.logger.log_metrics({f"eval/{k}": v.mean().item() for k, v in metrics.items()}
                                       | {"target": target.number}, step=step_offset + steps)
        results.append((row, best.images.cpu()))
    return results, steps


def _check_weights(path: Path) -> None:
    """A weights file the user gives is torchvision's AlexNet file, or a one-line error before any work
    (where LPIPS would otherwise be unavailable for the whole run)."""
    try:
        check_backbone_file(path)
    except MetricUnavailableError as err:
        raise FileError(f"--lpips-weights: {first_line(err).removeprefix('LPIPS: ')}") from None


def run(task: str | Path | TaskSpec, attack: str, *, targets: int | None = None, seed: int = 0,
        max_steps: int | None = None, restarts: int | None = None, out: str | Path | None = None,
        logger: str | None = "csv", accelerator: str = "cpu", progress: bool = False,
        attack_options: dict[str, Any] | None = None, fresh: bool = False, problems: int = 32,
        max_steps_cap: int | None = None, images_every: int | None = None, devices: int = 1,
        num_nodes: int = 1, lpips_weights: str | Path | None = None, reid: str = "auto",
        defense: DefenseSpec | None = None, retry_failed: bool = False, extent: int | None = None,
        isolation: Isolation | None = None) -> Result:
    """Attack the first ``targets`` targets of ``task`` and evaluate the reconstructions.

    With ``out``, every finished target is made durable before the next starts, and running the
    same call again resumes: finished targets are read back, not recomputed.

    Args:
        task: a task name, a YAML path, or a loaded spec.
        attack: a registered attack name.
        targets: number of targets (default: the spec's ``targets.count``).
        seed: attack seed; target t, restart r is seeded from (seed, t, r) alone.
        max_steps: optimisation budget (default: the spec's budget, else the attack's paper default).
        restarts: independent problems per target, the lowest final loss kept (default: the spec's budget).
        out: the run folder (see :mod:`benchmark.store`); nothing is written if None.
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
        isolation: run the attack's fits in a sandbox with these limits (:mod:`benchmark.isolation`,
            docs/trust.md): it sees its observations and nothing of the private batch, the network or
            this machine's files but the Python installation, leakbench and its own package. A
            plugin's attack is then never imported here: a sandbox builds its config and a fit's
            sandbox asks its ``unsupported()``.
        extent: the number of targets the groups are laid over (default ``targets``). A run of the
            first ``targets`` of an ``extent``-target protocol computes the whole groups that hold them
            (and keeps every row it computed), so each of its targets is computed in the company it has
            in the full run: ``submit --targets 1``, the full ``submit`` that resumes it, and ``verify``
            give a target the same row.

    Every count is checked first (at least 1; ``seed`` at least 0; None, not 0, means the default),
    then the accelerator and the sandbox, all before any work: a bad setting raises a one-line
    :class:`~benchmark.errors.SettingError` and writes nothing.
    """
    for name, value in {"targets": targets, "max_steps": max_steps, "restarts": restarts, "problems": problems,
                        "max_steps_cap": max_steps_cap, "images_every": images_every, "devices": devices,
                        "num_nodes": num_nodes, "extent": extent}.items():
        if value is not None:
            at_least(name, value, 1)
    at_least("seed", seed, 0)
    if fresh and retry_failed:
        raise SettingError("--fresh discards every row of the run folder and --retry-failed keeps the finished "
                           "ones: give one of them")
    check_accelerator(accelerator, devices, num_nodes)
    if isolation is not None:
        isolation.check(accelerator)
    if lpips_weights is not None:
        _check_weights(Path(lpips_weights))
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if defense is not None:
        build_defense(defense)  # a bad name or parameter fails before any work
        spec = spec.model_copy(update={"defense": defense})
    # isolated, the attack is found without loading any plugin (a built-in's class, or a plugin's entry point)
    attack, found = ATTACKS.locate(attack) if isolation is not None else (ATTACKS.canonical(attack), None)
    overrides = {**spec.budget.options.get(attack, {}), **(attack_options or {})}
    if (steps := max_steps if max_steps is not None else spec.budget.max_steps) is not None:
        overrides["max_steps"] = steps
    if isolation is not None and not isinstance(found, type):
        found, config = isolation.describe(found, overrides, max_steps_cap)
    else:
        config = attack_config(found or ATTACKS.get(attack), overrides, max_steps_cap)
    count = targets if targets is not None else spec.targets.count
    plan = _RunPlan(spec=spec, attack=attack, config=config, count=count, extent=max(count, extent or count),
                    tries=restarts if restarts is not None else spec.budget.restarts, seed=seed,
                    out=Path(out) if out is not None else None, logger=logger, accelerator=accelerator,
                    progress=progress, fresh=fresh, problems=problems, images_every=images_every,
                    evaluation=EvaluationSettings(lpips_weights=Path(lpips_weights) if lpips_weights else None,
                                                  reid_backend=reid), retry_failed=retry_failed,
                    isolation=isolation, attack_cls=found)
    if (devices * num_nodes == 1 and not _launched_externally()) or _nothing_pending(plan):
        return _attack_and_evaluate(plan)
    if plan.out is None:
        raise SpecError("a run over several processes needs an output folder (--out): the processes' results "
                        "meet there (on a file system every node sees)")
    strategy = "ddp" if _launched_externally() else "ddp_spawn"
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
    return fabric.launch(_AttackShare(plan))


def collect(result: Result, finished: list[tuple[TargetResult, Tensor | None]], evaluator: Evaluator,
            truth: Tensor, batch: int, out: Path | None) -> Tensor:
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


def data_available(spec: TaskSpec) -> bool:
    """Whether every target image of ``spec`` can be read here without a download."""
    try:
        with local_only():
            source = load_source(spec.data, spec.targets)
            load_samples(source, spec.target_indices(0) + spec.target_indices(spec.targets.count - 1))
        return True
    except LeakBenchError:
        return False


def _nothing_pending(plan: _RunPlan) -> bool:
    """Whether the run folder already holds every target, none of them failed where failed ones are
    retried (a finished cell: no process to start)."""
    if plan.out is None or plan.fresh or not (plan.out / "run.json").exists():
        return False
    finished = RunStore(plan.out, plan.definition).finished()
    return not plan.groups({target for target, (row, _) in finished.items()
                            if not (plan.retry_failed and row.failed is not None)})


def _launched_externally() -> bool:
    """Whether torchrun or SLURM started this process as one of several (Lightning's own detection)."""
    if TorchElasticEnvironment.detect():
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    return SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1


@dataclass(frozen=True)
class _RunPlan:
    """What every process of a run needs to attack its targets (picklable, for spawned processes)."""

    spec: TaskSpec
    attack: str
    config: Any
    count: int
    extent: int  # the targets the groups are laid over (at least count)
    tries: int
    seed: int
    out: Path | None
    logger: str | None
    accelerator: str
    progress: bool
    fresh: bool
    problems: int
    images_every: int | None
    evaluation: EvaluationSettings
    retry_failed: bool = False
    isolation: Isolation | None = None
    attack_cls: type[Attack] | Described | None = None  # None: the registered class of ``attack``

    @property
    def per_fit(self) -> int:
        """Targets per fit, G: target t shares its fit with the other targets of block ⌊t/G⌋."""
        return max(1, self.problems // self.tries)

    @property
    def reach(self) -> int:
        """The targets the groups of the first ``count`` targets hold: those below this number."""
        return min(self.extent, -(-self.count // self.per_fit) * self.per_fit)

    def groups(self, finished: set[int]) -> list[list[int]]:
        """The fits still to run: each block of G targets below ``extent`` that holds an unfinished
        target of the first ``count``, as its unfinished targets."""
        blocks = [range(first, min(first + self.per_fit, self.reach)) for first in range(0, self.count, self.per_fit)]
        return [[t for t in block if t not in finished] for block in blocks
                if any(t not in finished for t in block if t < self.count)]

    @property
    def definition(self) -> dict[str, Any]:
        defense = {} if self.spec.defense is None else {"defense": self.spec.defense.model_dump(mode="json")}
        # the face encoder scores every target: a resumed run must not change it
        reid = {"reid_backend": resolve_backend(self.evaluation.reid_backend)} if "reid" in self.spec.metrics else {}
        return {"task": self.spec.name, "task_version": self.spec.version, "spec_hash": spec_hash(self.spec),
                "attack": self.attack, "attack_config": dataclasses.asdict(self.config),
                "attack_code": attack_code(code_module(self.attack)), "seed": self.seed,
                "restarts": self.tries, "targets_per_fit": self.per_fit, **defense, **reid}


class _AttackShare:
    """What each process of a multi-process run executes: its share of the targets on its own device.

    A plain callable object holding the plan: Lightning's launcher walks a function's arguments and
    cannot rebuild the frozen dataclasses a plan holds.
    """

    def __init__(self, plan: _RunPlan) -> None:
        self.plan = plan

    def __call__(self, fabric: Fabric) -> Result:
        plan = self.plan
        if fabric.global_rank == 0:  # checks (or clears, or drops its failed rows from) the folder once
            RunStore(plan.out, plan.definition, fresh=plan.fresh, retry_failed=plan.retry_failed)
        fabric.barrier()
        device = [fabric.local_rank] if fabric.device.type != "cpu" else 1
        return _attack_and_evaluate(dataclasses.replace(plan, fresh=False, retry_failed=False), rank=fabric.global_rank,
                                    world=fabric.world_size, barrier=fabric.barrier, device=device)


def _attack_and_evaluate(plan: _RunPlan, rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None,
                         device: int | list[int] = 1) -> Result:
    """Attack the pending targets dealt to process ``rank`` of ``world``, then (process 0) write the results."""
    spec, attack, count, tries = plan.spec, plan.attack, plan.count, plan.tries
    attack_cls = plan.attack_cls or ATTACKS.get(attack)
    definition, out_dir = plan.definition, plan.out
    store = RunStore(out_dir, definition, fresh=plan.fresh, retry_failed=plan.retry_failed,
                     rank=rank if world > 1 else None) if out_dir else None
    source = load_source(spec.data, spec.targets)
    batch = spec.fl.batch_size
    samples = load_samples(source, [i for t in range(plan.reach) for i in spec.target_indices(t)])
    shape = (batch, *samples.images.shape[1:])  # of every target's reconstruction
    finished = store.finished(shape) if store is not None else {}
    evaluator = Evaluator.for_task(spec.metrics, dataclasses.replace(plan.evaluation, source=source))
    writer = rank == 0
    run_logger = make_logger(plan.logger, out_dir, f"{spec.name}/{attack}") if plan.logger and out_dir and writer else None

    defense = {} if spec.defense is None else {"defense": defense_record(spec.defense)}
    result = Result(task=spec.name, task_version=spec.version, spec_hash=definition["spec_hash"], attack=attack,
                    config={"attack": definition["attack_config"], "attack_code": definition["attack_code"],
                            "seed": plan.seed, "targets": count, "restarts": tries, **defense},
                    data_origin=samples.origin, environment=_environment(plan.accelerator, world))
    log_config(run_logger, {**definition, "targets": count, "environment": result.environment})
    options = FitOptions(accelerator=plan.accelerator, devices=device, logger=run_logger, progress=plan.progress and writer,
                         images_every=plan.images_every, isolation=plan.isolation)
    if writer and (resumed := sum(target in finished for target in range(count))):
        log.info("resuming %s: %d of %d targets already finished", out_dir, resumed, count)
    groups = plan.groups(set(finished))
    if writer and 0 < len(groups) < world:  # the groups are the run's, whatever the processes: some idle
        log.warning("%d group(s) of at most %d targets to share among %d processes, so %d of them have nothing to "
                    "do: give --problems %d (or fewer) to solve fewer targets per fit", len(groups), plan.per_fit,
                    world, world - len(groups), max(1, plan.tries * (sum(map(len, groups)) // world)))
    steps = 0
    for group in groups[rank::world]:
        chunk = []
        for number in group:
            part = slice(number * batch, (number + 1) * batch)
            private = Samples(samples.images[part], samples.labels[part], samples.origin)
            observation = Victim(spec, number, private, source.num_classes).observe()
            if not isinstance(attack_cls, Described):  # a described plugin's fit asks it in its sandbox
                check_applies(attack, spec, observation, attack_cls)
            chunk.append(_Target(number, source.dataset_indices(spec.target_indices(number)), private, observation))
        checkpoint = store.checkpoint(chunk[0].number, chunk[-1].number) if store is not None else None
        try:
            done, used = attack_targets(attack_cls, plan.config, chunk, seed=plan.seed, tries=tries, evaluator=evaluator,
                                        step_offset=steps, options=dataclasses.replace(options, checkpoint=checkpoint))
        except NotApplicableError as err:  # from a described plugin's sandbox: the reason its unsupported() gave
            if not isinstance(attack_cls, Described):
                raise
            raise _not_applicable(attack, spec, err) from None
        steps += used
        if store is not None:
            store.append(done)
        if checkpoint is not None:  # the chunk's results are stored: its checkpoint is spent
            shutil.rmtree(checkpoint.parent, ignore_errors=True)
        for row, images in done:
            finished[row.target] = (row, images)
            log.info("target %d (%d of %d finished): %s", row.target, sum(t in finished for t in range(count)), count,
                     row.failed or f"psnr {row.row().get('psnr') or float('nan'):.2f} dB, labels {row.recovered_labels}")
    if barrier is not None:  # every process's targets are stored: read them all back
        barrier()
        finished = store.finished(shape)
    shown = collect(result, [finished[target] for target in range(count)], evaluator, samples.images, batch,
                    out_dir if writer else None)
    log_result(run_logger, result, samples.images, shown)
    if run_logger is not None:
        run_logger.finalize("success")
    return result
