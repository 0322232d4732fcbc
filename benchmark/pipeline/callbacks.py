"""Lightning callbacks of a run's fits."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from benchmark.attacks.base import OptimizationAttack
from benchmark.pipeline.loggers import log_images


class ImageLogger(pl.Callback):
    """Shows an optimisation attack's current reconstructions (its first 16 images) every ``every``
    steps, on the run's axis of steps (``log_step_offset`` + the fit's step), where the logger shows images."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_batch_end(self, trainer: pl.Trainer, attack: pl.LightningModule, *args: Any) -> None:
        if isinstance(attack, OptimizationAttack) and attack.global_step % self.every == 0:
            log_images(
                trainer.logger,
                "attack/reconstructions",
                attack.current()["images"].flatten(0, 1)[:16],
                attack.log_step_offset + attack.global_step,
            )
