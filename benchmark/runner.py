"""The Python API: ``run(task, attack, ...) -> Result``, the whole data flow for one (task, attack).

TaskSpec → Victim → Observation → Attack (trained by a Lightning Trainer) → Reconstruction →
evaluation against the private batch → Result.
"""

from __future__ import annotations

import dataclasses
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities.warnings import PossibleUserWarning

import benchmark
from benchmark.attacks import ATTACKS
from benchmark.attacks.base import Attack, Reconstruction
from benchmark.data import Samples, load_samples, load_source
from benchmark.errors import LeakBenchError, NotApplicableError
from benchmark.metrics import evaluate
from benchmark.registry import Registry, did_you_mean
from benchmark.result import Result, TargetResult, save_comparison
from benchmark.spec import TaskSpec, load_task, spec_hash
from benchmark.victim import Observation, Victim

LOGGERS: Registry[type[Logger]] = Registry("logger", base=Logger)
LOGGERS.add("csv", CSVLogger)
LOGGERS.add("tensorboard", TensorBoardLogger)
LOGGERS.add("wandb", WandbLogger)


def make_logger(name: str, out: Path, run_name: str) -> Logger:
    """A Lightning logger writing under ``out`` (W&B: offline unless WANDB_MODE says otherwise)."""
    cls = LOGGERS.get(name)
    if cls is WandbLogger:
        return WandbLogger(name=run_name, save_dir=str(out), project="leakbench")
    try:
        return cls(save_dir=str(out), name="logs", version="")
    except ModuleNotFoundError as err:
        raise LeakBenchError(f"the {name} logger needs the '{err.name}' package: pip install {err.name}") from None


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


def run(task: str | Path | TaskSpec, attack: str, *, targets: int | None = None, seed: int = 0,
        max_steps: int | None = None, restarts: int | None = None, out: str | Path | None = None,
        logger: str | None = "csv", accelerator: str = "cpu", progress: bool = False,
        attack_options: dict[str, Any] | None = None) -> Result:
    """Attack the first ``targets`` targets of ``task`` and evaluate the reconstructions.

    Args:
        task: a task name, a YAML path, or a loaded spec.
        attack: a registered attack name.
        targets: number of targets (default: the spec's ``targets.count``).
        seed: attack seed; target t, attempt r is seeded from (seed + t, r), so a target's result does
            not depend on the other targets of the run.
        max_steps: optimisation budget (default: the spec's budget, else the attack's paper default).
        restarts: attempts per target, best final loss kept (default: the spec's budget).
        out: folder for ``results.json``, ``reconstructions.png`` and logs; nothing is written if None.
        logger: ``csv``, ``tensorboard``, ``wandb`` or None (needs ``out``).
        accelerator: a Lightning accelerator name (``cpu``, ``gpu``, ``auto``).
        progress: show Lightning's progress bar.
        attack_options: overrides of the attack's config fields.
    """
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    attack_cls = ATTACKS.get(attack)
    overrides = dict(attack_options or {})
    if max_steps or spec.budget.max_steps:
        overrides["max_steps"] = max_steps or spec.budget.max_steps
    config = attack_config(attack_cls, overrides)
    count = targets or spec.targets.count
    source = load_source(spec.data)
    batch = spec.fl.batch_size
    samples = load_samples(source, [i for t in range(count) for i in spec.target_indices(t)])
    out_dir = Path(out) if out is not None else None
    run_logger = make_logger(logger, out_dir, f"{spec.name}/{attack}") if logger and out_dir else None

    result = Result(task=spec.name, task_version=spec.version, spec_hash=spec_hash(spec), attack=attack,
                    config={"attack": dataclasses.asdict(config), "seed": seed, "targets": count,
                            "restarts": restarts or spec.budget.restarts},
                    data_origin=samples.origin, environment=_environment(accelerator))
    reconstructions = []
    steps = 0
    for target in range(count):
        part = slice(target * batch, (target + 1) * batch)
        private = Samples(samples.images[part], samples.labels[part], samples.origin)
        observation = Victim(spec, target, private, source.num_classes).observe()
        if (reason := attack_cls.unsupported(observation)) is not None:
            raise NotApplicableError(f"attack '{attack}' does not apply to task '{spec.name}': {reason}")
        start = time.perf_counter()
        best, tries, used = attack_target(attack_cls, observation, config, seed=seed + target,
                                          tries=restarts or spec.budget.restarts, accelerator=accelerator,
                                          logger=run_logger, progress=progress, step_offset=steps)
        seconds = time.perf_counter() - start
        steps += used
        metrics = evaluate(best.images, best.labels, private.images, private.labels, spec.metrics)
        result.targets.append(TargetResult(
            target=target, indices=spec.target_indices(target), labels=private.labels.tolist(),
            recovered_labels=best.labels.tolist(), metrics={k: v.tolist() for k, v in metrics.items()},
            loss=best.loss, tries=tries, seconds=seconds, details=best.details))
        if run_logger is not None:
            run_logger.log_metrics({f"eval/{k}": v.mean().item() for k, v in metrics.items()} | {"target": target}, step=steps)
        reconstructions.append(best.images.cpu())
    if out_dir is not None:
        result.write(out_dir)
        save_comparison(samples.images, torch.cat(reconstructions), out_dir / "reconstructions.png")
    if run_logger is not None:
        run_logger.finalize("success")
    return result
