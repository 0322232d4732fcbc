"""Utility of a defended client: the victim architecture's test accuracy after a short training run.

A defence's price is what it costs the model. :func:`measure_utility` trains the task's victim
architecture (its init and seed) from scratch for a fixed number of FedSGD rounds on the training
split of the task's dataset, each round's update (the gradient of a random mini-batch) transformed
by the task's defence before the SGD step θ ← θ − η·g̃, and reports the accuracy on the first images
of the test split (as many as the setting asks, or the whole split where it is smaller). Missing
training data raises :class:`~benchmark.core.errors.DataUnavailableError` (with how to get it); no other
data is substituted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from benchmark.apps.training import accuracy
from benchmark.core.errors import DataUnavailableError, at_least, finite
from benchmark.data import Samples, load_samples, load_source
from benchmark.defenses import ClientRound, build_defense, client_generator
from benchmark.fl.observation import model_inputs
from benchmark.fl.updates import fedsgd_update
from benchmark.protocol.spec import DataSpec, TaskSpec
from benchmark.victim.client import build_model


@dataclass(frozen=True)
class UtilitySetting:
    """The fixed training run: ``steps`` SGD steps of ``batch_size`` images drawn (seeded) from the first
    ``train_images`` training images, learning rate ``lr``; accuracy on the first ``test_images`` test images.
    A split with fewer images is used whole."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 0.1
    train_images: int = 5000
    test_images: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "train_images", "test_images"):
            at_least(name, getattr(self, name), 1)
        at_least("seed", self.seed, 0)
        finite("lr", self.lr, low=0)


@dataclass(frozen=True)
class Utility:
    accuracy: float  # on the test images, in [0, 1]
    setting: dict[str, Any]  # the run as made: image counts capped at the splits' sizes
    privacy: dict[str, float] | None = None  # the defence's guarantee for the whole training run, if any


def measure_utility(
    spec: TaskSpec,
    setting: UtilitySetting = UtilitySetting(),
    *,
    train: DataSpec | None = None,
    test: DataSpec | None = None,
) -> Utility:
    """Train the task's victim with its defence on every update; its test accuracy.

    Args:
        spec: the task (architecture, init, seed, FL setting, defence, preprocessing).
        setting: the training run.
        train, test: the data (default: the task's dataset on its ``train`` and ``test`` splits).
    """
    train = train or spec.data.model_copy(update={"split": "train"})
    test = test or spec.data.model_copy(update={"split": "test"})
    if train.path is not None and train.path == test.path:
        raise DataUnavailableError(
            f"the task's data is one image folder ({train.path}) whatever the split; utility "
            "needs separate training and test images: pass train= and test= folders"
        )
    source, test_source = load_source(train), load_source(test)
    setting = replace(
        setting,
        train_images=min(setting.train_images, len(source)),
        test_images=min(setting.test_images, len(test_source)),
    )
    data = load_samples(source, list(range(setting.train_images)))
    held_out = load_samples(test_source, list(range(setting.test_images)))
    model = build_model(spec, tuple(data.images.shape[1:]), source.num_classes, spec.victim.seed)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    defense = build_defense(spec.defense) if spec.defense is not None else None
    batches = torch.Generator().manual_seed(setting.seed)
    noise = client_generator(spec.defense, 0) if spec.defense is not None else None
    for _ in range(setting.steps):
        chosen = torch.randint(len(data.labels), (setting.batch_size,), generator=batches)
        inputs, targets = model_inputs(spec, data.images[chosen]), data.labels[chosen]
        update = fedsgd_update(model, params, buffers, inputs, targets, spec.fl)
        if defense is not None:
            update = defense.apply(
                update,
                ClientRound(
                    model=model,
                    params=params,
                    buffers=buffers,
                    inputs=inputs,
                    targets=targets,
                    fl=spec.fl,
                    generator=noise,
                ),
            )
        params = {name: params[name] - setting.lr * update[name] for name in params}
    model.load_state_dict({**params, **buffers})
    test_accuracy = accuracy(model, Samples(model_inputs(spec, held_out.images), held_out.labels, held_out.origin))
    privacy = defense.privacy(setting.steps, setting.batch_size / setting.train_images) if defense else None
    return Utility(accuracy=test_accuracy, setting=asdict(setting), privacy=privacy)
