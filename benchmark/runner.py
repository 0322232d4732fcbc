"""The Python API: ``run(task, attack, ...) -> Result``, the whole data flow for one (task, attack).

TaskSpec → Victim → Observation → Attack (trained by a Lightning Trainer) → Reconstruction →
evaluation against the private batch → Result.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.warnings import PossibleUserWarning
from torch import Tensor

import benchmark
from benchmark.attacks import ATTACKS
from benchmark.attacks.base import Attack, Reconstruction
from benchmark.data import Samples, load_samples, load_source
from benchmark.errors import LeakBenchError, NotApplicableError
from benchmark.loggers import make_logger
from benchmark.metrics import evaluate
from benchmark.registry import did_you_mean
from benchmark.result import Result, TargetResult, save_comparison
from benchmark.spec import TaskSpec, load_task, spec_hash
from benchmark.store import RunStore
from benchmark.victim import Observation, Victim

log = logging.getLogger(__name__)

def attack_config(attack_cls: type[Attack], overrides: dict[str, Any]) -> Any:
    """The attack's config dataclass with paper defaults, updated by ``overrides``."""
    fields = [f.name for f in dataclasses.fields(attack_cls.Config)]
    for key in overrides:
        if key not in fields:
            raise LeakBenchError(f"attack option '{key}' does not exist{did_you_mean(key, fields)}; options: {', '.join(fields)}")
    return attack_cls.Config(**overrides)


def _environment(accelerator: str) -> dict[str, str]:
    device = torch.cuda.get_device_name() if accelerator != "cpu" and torch.cuda.is_available() else platform.processor() or "cpu"
    return {"leakbench": benchmark.__version__, "torch": torch.__version__, "lightning": pl.__version__,
            "python": platform.python_version(), "device": device}


def attack_target(attack_cls: type[Attack], observation: Observation, config: Any, *, seed: int, tries: int,
                  accelerator: str = "cpu", logger: Logger | None = None, progress: bool = False,
                  step_offset: int = 0) -> tuple[Reconstruction, int, int]:
    """Run up to ``tries`` independently seeded attacks; keep the lowest final loss.

    Stops early when an attempt has converged. Returns (best, attempts made, steps taken).
    """
    best: Reconstruction | None = None
    steps = 0
    for attempt in range(tries):
        pl.seed_everything(seed * 1_000 + attempt, verbose=False)
        attack = attack_cls(observation, config)
        attack.log_step_offset = step_offset + steps
        trainer = pl.Trainer(
            max_steps=config.max_steps, max_epochs=1, accelerator=accelerator, devices=1, logger=logger or False,
            enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
            log_every_n_steps=10, num_sanity_val_steps=0,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own use of a torch API
            trainer.fit(attack)
        steps += trainer.global_step
        candidate = attack.reconstruction()
        if best is None or candidate.loss < best.loss:
            best = candidate
        if attack.converged():
            break
    assert best is not None
    return best, attempt + 1, steps


def attack_one(spec: TaskSpec, attack_cls: type[Attack], config: Any, target: int, private: Samples,
               num_classes: int, *, seed: int, tries: int, accelerator: str = "cpu", logger: Logger | None = None,
               progress: bool = False, step_offset: int = 0) -> tuple[TargetResult, Tensor | None, int]:
    """Attack one target and evaluate it: (row, reconstructed images or None if failed, steps taken).

    A divergence or solver error marks the target failed with its reason; user errors propagate.
    """
    observation = Victim(spec, target, private, num_classes).observe()
    if (reason := attack_cls.unsupported(observation)) is not None:
        raise NotApplicableError(f"attack '{attack_cls.__name__}' does not apply to task '{spec.name}': {reason}")
    row = TargetResult(target=target, indices=spec.target_indices(target), labels=private.labels.tolist(),
                       recovered_labels=[], metrics={}, loss=math.nan, tries=0, seconds=0.0)
    start = time.perf_counter()
    try:
        best, row.tries, steps = attack_target(attack_cls, observation, config, seed=seed + target, tries=tries,
                                               accelerator=accelerator, logger=logger, progress=progress,
                                               step_offset=step_offset)
        if not torch.isfinite(best.images).all():
            raise FloatingPointError("the reconstruction holds NaN or Inf values")
    except LeakBenchError:
        raise
    except Exception as err:  # a diverged or failed attack is a result of the benchmark, not a crash
        row.failed, row.seconds = f"{type(err).__name__}: {err}", time.perf_counter() - start
        log.warning("target %d failed: %s", target, row.failed)
        return row, None, 0
    row.seconds = time.perf_counter() - start
    metrics = evaluate(best.images, best.labels, private.images, private.labels, spec.metrics)
    row.metrics = {name: values.tolist() for name, values in metrics.items()}
    row.recovered_labels, row.loss, row.details = best.labels.tolist(), best.loss, best.details
    if logger is not None:
        logger.log_metrics({f"eval/{k}": v.mean().item() for k, v in metrics.items()} | {"target": target},
                           step=step_offset + steps)
    return row, best.images.cpu(), steps


def run(task: str | Path | TaskSpec, attack: str, *, targets: int | None = None, seed: int = 0,
        max_steps: int | None = None, restarts: int | None = None, out: str | Path | None = None,
        logger: str | None = "csv", accelerator: str = "cpu", progress: bool = False,
        attack_options: dict[str, Any] | None = None, fresh: bool = False) -> Result:
    """Attack the first ``targets`` targets of ``task`` and evaluate the reconstructions.

    With ``out``, every finished target is made durable before the next starts, and running the
    same call again resumes: finished targets are read back, not recomputed.

    Args:
        task: a task name, a YAML path, or a loaded spec.
        attack: a registered attack name.
        targets: number of targets (default: the spec's ``targets.count``).
        seed: attack seed; target t, attempt r is seeded from (seed + t, r), so a target's result does
            not depend on the other targets of the run.
        max_steps: optimisation budget (default: the spec's budget, else the attack's paper default).
        restarts: attempts per target, best final loss kept (default: the spec's budget).
        out: the run folder (see :mod:`benchmark.store`); nothing is written if None.
        logger: ``csv``, ``tensorboard``, ``wandb`` or None (needs ``out``).
        accelerator: a Lightning accelerator name (``cpu``, ``gpu``, ``auto``).
        progress: show Lightning's progress bar.
        attack_options: overrides of the attack's config fields.
        fresh: discard what ``out`` holds instead of resuming it.
    """
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    attack_cls = ATTACKS.get(attack)
    overrides = dict(attack_options or {})
    if max_steps or spec.budget.max_steps:
        overrides["max_steps"] = max_steps or spec.budget.max_steps
    config = attack_config(attack_cls, overrides)
    count, tries = targets or spec.targets.count, restarts or spec.budget.restarts
    definition = {"task": spec.name, "task_version": spec.version, "spec_hash": spec_hash(spec), "attack": attack,
                  "attack_config": dataclasses.asdict(config), "seed": seed, "restarts": tries}
    out_dir = Path(out) if out is not None else None
    store = RunStore(out_dir, definition, fresh=fresh) if out_dir is not None else None
    finished = store.finished() if store is not None else {}
    source = load_source(spec.data)
    batch = spec.fl.batch_size
    samples = load_samples(source, [i for t in range(count) for i in spec.target_indices(t)])
    run_logger = make_logger(logger, out_dir, f"{spec.name}/{attack}") if logger and out_dir else None

    result = Result(task=spec.name, task_version=spec.version, spec_hash=definition["spec_hash"], attack=attack,
                    config={"attack": definition["attack_config"], "seed": seed, "targets": count, "restarts": tries},
                    data_origin=samples.origin, environment=_environment(accelerator))
    if resumed := sum(target in finished for target in range(count)):
        log.info("resuming %s: %d of %d targets already finished", out_dir, resumed, count)
    pictures = []
    steps = 0
    for target in range(count):
        part = slice(target * batch, (target + 1) * batch)
        private = Samples(samples.images[part], samples.labels[part], samples.origin)
        if target in finished:
            row, images = finished[target]
        else:
            row, images, used = attack_one(spec, attack_cls, config, target, private, source.num_classes, seed=seed,
                                           tries=tries, accelerator=accelerator, logger=run_logger,
                                           progress=progress, step_offset=steps)
            steps += used
            if store is not None:
                store.append(row, images)
        result.targets.append(row)
        pictures.append(images if images is not None else torch.full_like(private.images, 0.5))
        log.info("target %d/%d: %s", target + 1, count, row.failed or
                 f"psnr {row.row().get('psnr') or float('nan'):.2f} dB, labels {row.recovered_labels}, {row.seconds:.1f} s")
    if out_dir is not None:
        result.write(out_dir)
        save_comparison(samples.images, torch.cat(pictures), out_dir / "reconstructions.png")
    if run_logger is not None:
        run_logger.finalize("success")
    return result
