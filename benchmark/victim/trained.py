"""The stored weights of a trained victim (``victim.state: trained@E``): where they are kept and
how they are read, checked against their sha256 (training them: :mod:`benchmark.apps.training`)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from torch import Tensor

from benchmark.core.downloads import cache_dir
from benchmark.core.errors import DataUnavailableError, FileError, first_line
from benchmark.core.files import read_json
from benchmark.protocol.spec import TaskSpec

BATCH_SIZE, LEARNING_RATE, MOMENTUM = 64, 0.01, 0.9


def checkpoint_path(spec: TaskSpec, epochs: int) -> Path:
    """Where the victim of ``spec`` trained for ``epochs`` epochs is kept: one file per weights-defining
    setting, shared by tasks that differ only in targets, batch size or threat model."""
    data = spec.data.model_dump(mode="json", exclude={"split"})
    victim = spec.victim.model_dump(mode="json", include={"model", "init", "init_scale", "seed"})
    setting = json.dumps(
        {"data": data, "victim": victim, "training": [BATCH_SIZE, LEARNING_RATE, MOMENTUM]}, sort_keys=True
    )
    digest = hashlib.sha256(setting.encode()).hexdigest()[:16]
    return cache_dir() / "victims" / f"{spec.victim.model}-{digest}@{epochs}.pt"


def _train_again(spec: TaskSpec, epochs: int) -> str:
    return f"train it again with `leakbench victim train --task {spec.name} --epochs {epochs}`"


def load_trained_state(spec: TaskSpec, epochs: int) -> dict[str, Tensor]:
    """The stored weights of ``spec``'s victim trained for ``epochs`` epochs, checked against their sha256."""
    path = checkpoint_path(spec, epochs)
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise DataUnavailableError(
            f"task '{spec.name}' needs its victim trained for {epochs} epochs, which is not in {path.parent}: run "
            f"`leakbench victim train --task {spec.name} --epochs {epochs}` (it needs the {spec.data.dataset} "
            f"training split)"
        )
    again = _train_again(spec, epochs)
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != read_json(path.with_suffix(".json"), "trained victim record", again).get(
        "sha256"
    ):
        raise DataUnavailableError(
            f"{path}: its sha256 differs from the one recorded when it was trained (a changed or torn file); {again}"
        )
    try:
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as err:  # the recorded hash matches: a file written by another version, whatever torch says
        raise FileError(
            f"{path}: unreadable trained weights ({type(err).__name__}: {first_line(err, 100)}); {again}"
        ) from None
