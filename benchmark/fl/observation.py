"""What the server sees of one client's round (:class:`Observation`: the benchmark's security
boundary), and what a malicious server knows before it (:class:`ServerKnowledge`) when it modifies
the global model it sends (:class:`ModifiedModel`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from benchmark.fl.batchnorm import BatchStatistics
from benchmark.protocol.spec import DataStatistics, FLSpec, Normalization, TaskSpec


@dataclass(frozen=True)
class Observation:
    """What the server sees: the security boundary of the benchmark.

    Attributes:
        model: the server's copy of the global model the client trained (architecture, parameters,
            train/eval mode); attacks may run it but changing it changes nothing of the victim.
        update: the shared update, one tensor per ``model.parameters()`` entry (FedSGD: ∇θ L), after the
            client's defence if the task has one (the attack is not told which).
        fl: the FL setting (protocol, and FedAvg's local epochs, mini-batch size and learning rate).
        batch_size: number of private samples behind the update.
        input_shape: (C, H, W) of one model input.
        num_classes: K.
        normalization: preprocessing from [0, 1] images to model inputs, known to the server.
        labels: the private labels (N,), only where the threat model gives them; else None.
        bn_statistics: the private batch's (mean, variance) at every BatchNorm layer, only where the
            threat model gives them (``threat.bn_statistics``: batch or known); else None.
    """

    model: nn.Module
    update: tuple[Tensor, ...]
    fl: FLSpec
    batch_size: int
    input_shape: tuple[int, int, int]
    num_classes: int
    normalization: Normalization | None = None
    labels: Tensor | None = None
    bn_statistics: BatchStatistics | None = None

    def to_images(self, inputs: Tensor) -> Tensor:
        """Model inputs (N, C, H, W) → images in [0, 1] (de-normalised, clamped)."""
        images = inputs if self.normalization is None else self.normalization.invert(inputs)
        return images.clamp(0, 1)


def model_inputs(spec: TaskSpec, images: Tensor) -> Tensor:
    """[0, 1] images (N, C, H, W) → the task's model inputs (normalised where the spec says so)."""
    norm = spec.data.normalize
    return images if norm is None else norm.apply(images)


@dataclass(frozen=True)
class ServerKnowledge:
    """What the server knows before a round, when a malicious one (``threat.server: malicious``) shapes
    the global model it sends: the task's public setting and the data statistics the threat model
    grants; nothing of any client's private batch.

    Attributes:
        input_shape: (C, H, W) of one model input.
        num_classes: K.
        batch_size: the clients' batch size B.
        fl: the FL setting.
        normalization: preprocessing from [0, 1] images to model inputs.
        data_statistics: ``threat.data_statistics`` (the brightness distribution of an image), or None.
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    batch_size: int
    fl: FLSpec
    normalization: Normalization | None = None
    data_statistics: DataStatistics | None = None


@dataclass(frozen=True)
class ModifiedModel:
    """The global model a malicious server sends instead of the task's, and what it changed (JSON-ready,
    kept in every target row of the run: ``details["global_model"]``)."""

    model: nn.Module
    description: dict[str, Any] = field(default_factory=dict)
