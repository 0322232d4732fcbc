"""The victim: builds the global model, holds the private batch, computes the shared update.

The private batch never leaves a :class:`Victim`. What leaves is an :class:`Observation`: exactly
what an honest-but-curious server sees of one client's round.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.data import Samples
from benchmark.errors import SpecError
from benchmark.models import MODELS
from benchmark.registry import Registry
from benchmark.spec import Normalization, TaskSpec


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy; ``targets`` are class indices (N,) or class probabilities (N, K).

    Victim and attacker both use this function, so the attacker's loss is the victim's loss.
    """
    return F.cross_entropy(logits, targets)


UpdateRule = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, ...]]
PROTOCOLS: Registry[UpdateRule] = Registry("FL protocol")


@PROTOCOLS.register("fedsgd")
def fedsgd_update(model: nn.Module, inputs: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
    """FedSGD: the gradient of the mean loss over the batch, one tensor per parameter."""
    loss = task_loss(model(inputs), labels)
    return tuple(g.detach() for g in torch.autograd.grad(loss, list(model.parameters())))


@dataclass(frozen=True)
class Observation:
    """What the server sees: the security boundary of the benchmark.

    Attributes:
        model: the server's copy of the global model the client trained (architecture, parameters,
            train/eval mode); attacks may run it but changing it changes nothing of the victim.
        update: the shared update, one tensor per ``model.parameters()`` entry (FedSGD: ∇θ L).
        protocol: the FL protocol name (``fedsgd``).
        batch_size: number of private samples behind the update.
        input_shape: (C, H, W) of one model input.
        num_classes: K.
        normalization: preprocessing from [0, 1] images to model inputs, known to the server.
        labels: the private labels (N,), only where the threat model gives them; else None.
    """

    model: nn.Module
    update: tuple[Tensor, ...]
    protocol: str
    batch_size: int
    input_shape: tuple[int, int, int]
    num_classes: int
    normalization: Normalization | None = None
    labels: Tensor | None = None

    def to_images(self, inputs: Tensor) -> Tensor:
        """Model inputs (N, C, H, W) → images in [0, 1] (de-normalised, clamped)."""
        images = inputs if self.normalization is None else self.normalization.invert(inputs)
        return images.clamp(0, 1)


def build_model(spec: TaskSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """The task's victim architecture, initialised from ``seed`` (global RNG state untouched)."""
    channels, size, _ = input_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS.get(spec.victim.model)(channels, size, num_classes)
        if spec.victim.init == "uniform":
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.uniform_(-spec.victim.init_scale, spec.victim.init_scale)
    return model.train(spec.victim.mode == "train")


class Victim:
    """One FL client holding one target's private batch.

    Args:
        spec: the task.
        target: target number (its model is initialised from ``spec.victim.seed + target``).
        samples: the private batch (images in [0, 1]).
        num_classes: K of the dataset.
    """

    def __init__(self, spec: TaskSpec, target: int, samples: Samples, num_classes: int) -> None:
        self.spec = spec
        self._private = samples
        self.input_shape: tuple[int, int, int] = tuple(samples.images.shape[1:])  # type: ignore[assignment]
        self.num_classes = num_classes
        self.model = build_model(spec, self.input_shape, num_classes, spec.victim.seed + target)

    def _model_inputs(self) -> Tensor:
        norm = self.spec.data.normalize
        return self._private.images if norm is None else norm.apply(self._private.images)

    def observe(self) -> Observation:
        """Compute the update on the private batch and return what the server sees."""
        try:
            update = PROTOCOLS.get(self.spec.fl.protocol)(self.model, self._model_inputs(), self._private.labels)
        except RuntimeError as err:  # torch's shape errors: the task's inputs do not fit its model
            raise SpecError(
                f"task '{self.spec.name}': model '{self.spec.victim.model}' cannot take inputs of shape "
                f"{self.input_shape} ({str(err).splitlines()[0]}); change data.image_size/channels or victim.model"
            ) from None
        return Observation(
            model=copy.deepcopy(self.model),
            update=update,
            protocol=self.spec.fl.protocol,
            batch_size=len(self._private.labels),
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            normalization=self.spec.data.normalize,
            labels=self._private.labels.clone() if self.spec.threat.labels == "known" else None,
        )
