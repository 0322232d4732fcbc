"""Trained victims: the task's global model trained with Lightning on its dataset's training split.

A spec names one with ``victim.state: trained@E``. The checkpoint lives in the cache under a name
fixed by what determines the weights (the data's preprocessing, the architecture, its init and seed,
the epochs), beside a record of its sha256, checked on every load, and of the accuracy it reached
on its training images and, where the dataset has a separate test split here, on that. Training uses fixed settings (SGD, lr 0.01, momentum 0.9, batches of 64 shuffled from the
victim's seed), so ``trained@E`` names one model.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from benchmark.core.errors import DataUnavailableError, at_least
from benchmark.core.files import read_json, write_atomic
from benchmark.data import Samples, load_samples, load_source
from benchmark.fl.observation import model_inputs
from benchmark.fl.updates import task_loss
from benchmark.pipeline.hardware import check_accelerator
from benchmark.protocol.spec import TaskSpec
from benchmark.victim.client import build_model
from benchmark.victim.trained import (
    BATCH_SIZE,
    LEARNING_RATE,
    MOMENTUM,
    _train_again,
    checkpoint_path,
    load_trained_state,
)

CHUNK = 1000  # images read at a time


@dataclass(frozen=True)
class TrainedVictim:
    path: Path
    sha256: str
    epochs: int
    test_accuracy: float | None  # None where no separate test split is here (see separate_test_split)
    train_images: int
    train_accuracy: float  # on the training images themselves


def separate_test_split(spec: TaskSpec) -> bool:
    """Whether the task's dataset has a test split apart from its training split (an image folder is
    one set of images whatever the split)."""
    return spec.data.path is None


class Classification(pl.LightningModule):
    """The victim's own loss (:func:`benchmark.fl.updates.task_loss`) minimised by SGD with momentum."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[Tensor, Tensor], batch_index: int) -> Tensor:
        images, labels = batch
        loss = task_loss(self.model(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)


def load_split(spec: TaskSpec, split: str) -> tuple[Samples, int]:
    """Every image of ``split`` of the task's dataset as model inputs (normalised), and the class count."""
    source = load_source(spec.data.model_copy(update={"split": split}))
    size = len(source)
    parts = [load_samples(source, list(range(start, min(start + CHUNK, size)))) for start in range(0, size, CHUNK)]
    images = model_inputs(spec, torch.cat([p.images for p in parts]))
    return Samples(images, torch.cat([p.labels for p in parts]), parts[0].origin), source.num_classes


def accuracy(model: nn.Module, samples: Samples) -> float:
    """Share of ``samples`` (model inputs) the model classifies right (one logit: positive above 0)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x in samples.images.split(256)])
    predictions = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
    return (predictions == samples.labels).double().mean().item()


def held_out_accuracy(spec: TaskSpec, model: nn.Module) -> float | None:
    """``model``'s accuracy on the whole test split of the task's dataset; None where the dataset has
    no separate test split or that split is not here."""
    if not separate_test_split(spec):
        return None
    try:
        return accuracy(model.cpu(), load_split(spec, "test")[0])
    except DataUnavailableError:
        return None


def train_victim(spec: TaskSpec, epochs: int, accelerator: str = "cpu", progress: bool = False) -> TrainedVictim:
    """Train ``spec``'s victim for ``epochs`` epochs on the training split and store it in the cache.

    Raises :class:`DataUnavailableError` where the training split is not here (saying how to get it).
    """
    at_least("epochs", epochs, 1)
    check_accelerator(accelerator)
    train, num_classes = load_split(spec, "train")
    model = build_model(spec, tuple(train.images.shape[1:]), num_classes, spec.victim.seed).train()
    loader = DataLoader(
        TensorDataset(train.images, train.labels),
        batch_size=BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(spec.victim.seed),
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    trainer.fit(Classification(model), loader)
    test_accuracy = held_out_accuracy(spec, model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    record = TrainedVictim(
        checkpoint_path(spec, epochs),
        hashlib.sha256(buffer.getvalue()).hexdigest(),
        epochs,
        test_accuracy,
        len(train.labels),
        accuracy(model.cpu(), train),
    )
    write_atomic(record.path, buffer.getvalue())
    write_atomic(
        record.path.with_suffix(".json"),
        json.dumps(
            {
                "sha256": record.sha256,
                "epochs": epochs,
                "test_accuracy": test_accuracy,
                "train_accuracy": record.train_accuracy,
                "train_images": record.train_images,
                "trained_for": spec.name,
            },
            indent=1,
        ),
    )
    return record


def trained_victim(spec: TaskSpec, epochs: int, accelerator: str = "cpu", progress: bool = False) -> TrainedVictim:
    """``spec``'s victim trained for ``epochs`` epochs: the stored one where its weights check out against
    their sha256, else trained now (:func:`train_victim`)."""
    try:
        load_trained_state(spec, epochs)
    except DataUnavailableError:
        return train_victim(spec, epochs, accelerator, progress)
    path = checkpoint_path(spec, epochs)
    record = read_json(path.with_suffix(".json"), "trained victim record", _train_again(spec, epochs))
    if not all(key in record for key in ("test_accuracy", "train_images", "train_accuracy")):
        return train_victim(
            spec, epochs, accelerator, progress
        )  # a record of an earlier version: its facts are not all there
    return TrainedVictim(
        path, record["sha256"], epochs, record["test_accuracy"], record["train_images"], record["train_accuracy"]
    )
