"""Lightning loggers by name: ``csv`` (default), ``tensorboard``, ``wandb``."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from benchmark.errors import LeakBenchError
from benchmark.registry import Registry

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
        return cls(save_dir=str(out), name="logs")  # a new version folder per invocation: resumes keep old logs
    except ModuleNotFoundError as err:
        raise LeakBenchError(f"the {name} logger needs the '{err.name}' package: pip install {err.name}") from None


