"""What the server sees of one client's round: the benchmark's security boundary."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from benchmark.fl.batchnorm import BatchStatistics
from benchmark.protocol.spec import FLSpec, Normalization, TaskSpec


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
