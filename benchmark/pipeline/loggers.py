"""Lightning loggers by name: ``csv`` (default), ``tensorboard``, ``wandb``.

Besides Lightning's per-step metrics, a run gives every logger its resolved config
(:func:`log_config`) and, at the end, its result with the reconstructions against ground truth
(:func:`log_result`). How a logger shows images is looked up by its class, so a logger that cannot
show them (CSV) simply skips them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from torch import Tensor
from torchvision.utils import make_grid

from benchmark.core.errors import LeakBenchError
from benchmark.core.registry import Registry
from benchmark.pipeline.result import Result

WANDB_RESULT_KEY = "leakbench/result"  # the W&B summary key holding a run's results.json content


class OfflineAwareWandbLogger(WandbLogger):
    """W&B, online where credentials are configured, else offline (runs kept for ``wandb sync``).

    ``WANDB_MODE`` (``online``, ``offline``, ``disabled``), where set, decides instead. Credentials are
    looked up as ``wandb.init`` would (``WANDB_API_KEY``, the netrc entry ``wandb login`` writes),
    without prompting.
    """

    def __init__(self, save_dir: str, name: str) -> None:
        import wandb

        mode = os.environ.get("WANDB_MODE") or (None if wandb.login(prompt=False, verify=False) else "offline")
        # the mode goes to wandb.init itself: wandb's process-wide settings read the environment once,
        # at its first use, so a WANDB_MODE set later (what WandbLogger's offline flag does, or a
        # caller's change) would otherwise go unseen
        super().__init__(name=name, save_dir=save_dir, project="leakbench", **({"mode": mode} if mode else {}))


LOGGERS: Registry[type[Logger]] = Registry("logger", base=Logger)
LOGGERS.add("csv", CSVLogger)
LOGGERS.add("tensorboard", TensorBoardLogger)
LOGGERS.add("wandb", OfflineAwareWandbLogger)


def make_logger(name: str, out: Path, run_name: str) -> Logger:
    """A Lightning logger writing under ``out``; CSV and TensorBoard start a new version folder per
    invocation (a resumed run keeps its old logs), W&B names the run ``run_name``."""
    cls = LOGGERS.get(name)
    try:
        return cls(save_dir=str(out), name=run_name if cls is OfflineAwareWandbLogger else "logs")
    except ModuleNotFoundError as err:
        raise LeakBenchError(f"the {name} logger needs the '{err.name}' package: pip install {err.name}") from None


def log_config(logger: Logger | None, config: dict[str, Any]) -> None:
    """Record the resolved run config (task, spec hash, attack config, seed, ...) with the logger."""
    if logger is not None:
        logger.log_hyperparams(config)


def _tensorboard_result(logger: TensorBoardLogger, result: Result, truth: Tensor, reconstructions: Tensor) -> None:
    pairs = [image for pair in zip(truth, reconstructions) for image in pair]
    grid = make_grid(pairs, nrow=2, padding=2, pad_value=1.0)  # one row per image: truth | reconstruction
    logger.experiment.add_image("eval/reconstructions", grid)


def _wandb_result(logger: WandbLogger, result: Result, truth: Tensor, reconstructions: Tensor) -> None:
    import wandb

    metrics = sorted({name for row in result.targets for name in row.metrics})
    batch = len(truth) // max(len(result.targets), 1)
    data = []
    for number, (real, fake) in enumerate(zip(truth, reconstructions)):
        row = result.targets[number // batch]
        values = [row.metrics[name][number % batch] if name in row.metrics else None for name in metrics]
        data.append([row.target, wandb.Image(real.float().cpu()), wandb.Image(fake.float().cpu()), *values])
    logger.log_table("eval/reconstructions", columns=["target", "truth", "reconstruction", *metrics], data=data)
    run = logger.experiment
    run.summary[WANDB_RESULT_KEY] = result.to_dict()
    run.finish()  # a later run in this process starts its own W&B run instead of appending to this one


_RESULT_WRITERS: dict[type[Logger], Callable[[Any, Result, Tensor, Tensor], None]] = {
    TensorBoardLogger: _tensorboard_result,
    WandbLogger: _wandb_result,
}


def _tensorboard_images(logger: TensorBoardLogger, key: str, images: Tensor, step: int) -> None:
    logger.experiment.add_image(key, make_grid(images, padding=2, pad_value=1.0), global_step=step)


def _wandb_images(logger: WandbLogger, key: str, images: Tensor, step: int) -> None:
    logger.log_image(key, [make_grid(images, padding=2, pad_value=1.0)], step=step)


_IMAGE_WRITERS: dict[type[Logger], Callable[[Any, str, Tensor, int], None]] = {
    TensorBoardLogger: _tensorboard_images,
    WandbLogger: _wandb_images,
}


def log_images(logger: Logger | None, key: str, images: Tensor, step: int) -> None:
    """Show images (N, C, H, W) in [0, 1] as one grid at ``step``, where the logger shows images."""
    writer = (
        None
        if logger is None
        else next((_IMAGE_WRITERS[cls] for cls in type(logger).__mro__ if cls in _IMAGE_WRITERS), None)
    )
    if writer is not None:
        writer(logger, key, images.detach().float().cpu(), step)


def log_result(logger: Logger | None, result: Result, truth: Tensor, reconstructions: Tensor) -> None:
    """Record the final result: summary metrics as ``summary/*``, and, where the logger shows images,
    the reconstructions next to ground truth (both (N, C, H, W) in [0, 1], in target order; within a
    target, reconstruction i is the one matched to truth i, as the metrics are)."""
    if logger is None:
        return
    summary = {f"summary/{k}": v for k, v in result.summary.items() if isinstance(v, (int, float))}
    logger.log_metrics(summary)
    writer = next((_RESULT_WRITERS[cls] for cls in type(logger).__mro__ if cls in _RESULT_WRITERS), None)
    if writer is not None:
        writer(logger, result, truth, reconstructions)
