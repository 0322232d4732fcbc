"""One Lightning fit of an attack over K problems, with a checkpoint an interrupted fit resumes from."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from benchmark.attacks.base import Attack, Reconstruction
from benchmark.core.errors import first_line
from benchmark.core.files import write_atomic
from benchmark.fl.observation import Observation
from benchmark.pipeline.callbacks import ImageLogger
from benchmark.pipeline.isolation import Isolation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitOptions:
    """How fits run: Lightning accelerator, logger, progress bar, (for loggers that show images) the
    current reconstructions logged every ``images_every`` steps, extra callbacks, a checkpoint file
    written every ``checkpoint_every`` steps, from which an interrupted fit resumes, and the sandbox
    the fit runs in (``isolation``; then the logger and callbacks stay here and see none of its steps),
    and whether the attack's objective is compiled (``compile``)."""

    accelerator: str = "cpu"
    logger: Logger | None = None
    progress: bool = False
    images_every: int | None = None
    devices: int | list[int] = 1  # Lightning's devices for one fit: 1, or [i] for device i
    callbacks: tuple[pl.Callback, ...] = ()
    checkpoint: Path | None = None
    checkpoint_every: int = 500
    isolation: Isolation | None = None
    compile: bool = False  # the attack's objective compiled (OptimizationAttack.compile_objective)


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


def fit(
    attack_cls: type[Attack],
    observations: Sequence[Observation],
    config: Any,
    seeds: Sequence[int],
    options: FitOptions = FitOptions(),
    step_offset: int = 0,
) -> tuple[list[Reconstruction], int]:
    """Solve K problems (observation k from seed k) in one Lightning fit: (reconstructions, steps)."""
    if options.isolation is not None:
        return options.isolation.fit(attack_cls, observations, config, seeds, options, step_offset)
    pl.seed_everything(seeds[0] % 2**32, verbose=False)  # for attacks that also draw from the global RNG
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # not "GPU available" for every fit
    attack = attack_cls(observations, config, seeds)
    if options.compile:
        attack.compile_objective()
    attack.log_step_offset = step_offset
    callbacks, resume = list(options.callbacks), None
    if options.images_every and options.logger is not None:
        callbacks.append(ImageLogger(options.images_every))
    if options.checkpoint is not None:
        options.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(_Checkpoint(options.checkpoint, options.checkpoint_every))
        resume = options.checkpoint if _readable_checkpoint(options.checkpoint) else None
    trainer = pl.Trainer(
        max_steps=config.max_steps,
        max_epochs=1,
        accelerator=options.accelerator,
        devices=options.devices,
        logger=options.logger or False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=options.progress,
        callbacks=callbacks,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
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
