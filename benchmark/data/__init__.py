"""Dataset sources: real loading code (torchvision, image folders) with an offline fallback.

:func:`load_samples` returns the exact images a protocol names, or raises
:class:`~benchmark.core.errors.DataUnavailableError` saying how to get them; it never substitutes others.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms import functional as TF

from benchmark.core.downloads import local_only
from benchmark.core.errors import DataUnavailableError, LeakBenchError, NotApplicableError, SpecError
from benchmark.core.registry import Registry
from benchmark.protocol.spec import BinaryLabels, DataSpec, TargetsSpec, TaskSpec


@dataclass(frozen=True)
class Samples:
    """Private images and labels of some dataset indices."""

    images: Tensor  # (N, C, H, W) float in [0, 1]
    labels: Tensor  # (N,) int64
    origin: str  # where the pixels came from, recorded in results


class ImageSource:
    """A dataset: native shape and class count, and :meth:`fetch` of raw images by index."""

    num_classes: int
    channels: int
    image_size: int | None  # None: not fixed by the source (a folder); the spec must give one

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        """Images (N, C, H, W), uint8 in 0..255 or float in [0, 1]; labels (N,); origin."""
        raise NotImplementedError

    @classmethod
    def package_files(cls) -> list[Path]:
        """The files of installed packages that hold this dataset's images (an isolated attack's sandbox
        covers them: docs/trust.md)."""
        return []

    def __len__(self) -> int:
        """The number of images (positions) of the split; may need the whole dataset."""
        raise NotImplementedError

    def dataset_indices(self, positions: list[int]) -> list[int]:
        """The dataset's own indices of the images at ``positions`` (the same but where a selection orders them)."""
        return list(positions)

    def identities(self) -> list[int]:
        """The label of every image, in index order (for targets chosen per identity)."""
        raise SpecError(
            f"dataset '{self.spec.dataset}' cannot list its labels: targets.select: per_identity needs lfw or folder"
        )

    def gallery(self) -> tuple[Tensor, Tensor]:
        """Reference faces of the people the targets show, uint8 (M, C, H, W), and their identities (M,),
        for face re-identification; never the target images themselves unless the protocol says so."""
        raise NotApplicableError(
            f"dataset '{self.spec.dataset}' holds no identities to re-identify: face "
            f"re-identification applies to lfw (targets.select: per_identity) and lfwmini"
        )

    def input_shape(self) -> tuple[int, int, int]:
        """(C, S, S) after the spec's conversions."""
        size = self.spec.image_size or self.image_size
        if size is None:
            raise SpecError(
                f"dataset '{self.spec.dataset}' needs data.image_size in the spec (the square size to resize to)"
            )
        return (self.spec.channels or self.channels, size, size)


def _discover() -> None:
    importlib.import_module("benchmark.data.torchvision_sources")
    importlib.import_module("benchmark.data.lfw")
    importlib.import_module("benchmark.data.folder")
    importlib.import_module("benchmark.data.lfwmini")
    importlib.import_module("benchmark.data.digits")


DATASETS: Registry[type[ImageSource]] = Registry("dataset", base=ImageSource, discover=_discover)


class BinaryTask(ImageSource):
    """A dataset seen through a binary task (``data.binary``): its labels mapped to {0, 1}, K = 2."""

    num_classes = 2

    def __init__(self, source: ImageSource, binary: BinaryLabels) -> None:
        super().__init__(source.spec)
        if max(binary.positive) >= source.num_classes or min(binary.positive) < 0:
            raise SpecError(
                f"data.binary.positive {list(binary.positive)}: dataset '{source.spec.dataset}' has "
                f"classes 0..{source.num_classes - 1}; fix the class list"
            )
        self.source, self.binary = source, binary
        self.channels, self.image_size = source.channels, source.image_size

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        images, labels, origin = self.source.fetch(indices)
        return images, self.binary.apply(labels), origin

    def __len__(self) -> int:
        return len(self.source)


class PerIdentity(ImageSource):
    """Targets one per person (``targets.select: per_identity``): position p is the first image of
    the p-th person, by label, with at least two images; the gallery holds those people's other images."""

    def __init__(self, source: ImageSource) -> None:
        super().__init__(source.spec)
        self.source = source
        self.num_classes, self.channels, self.image_size = source.num_classes, source.channels, source.image_size
        by_person: dict[int, list[int]] = {}
        for index, person in enumerate(source.identities()):
            by_person.setdefault(person, []).append(index)
        self.people = [indices for _, indices in sorted(by_person.items()) if len(indices) >= 2]

    def dataset_indices(self, positions: list[int]) -> list[int]:
        if max(positions) >= len(self.people):
            raise DataUnavailableError(
                f"{self.spec.dataset} {self.spec.split} has {len(self.people)} people with at least two images; "
                f"position {max(positions)} does not exist: lower targets.start/count or the batch size"
            )
        return [self.people[p][0] for p in positions]

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        images, labels, origin = self.source.fetch(self.dataset_indices(indices))
        return images, labels, f"{origin}, one image per person"

    def __len__(self) -> int:
        return len(self.people)

    def gallery(self) -> tuple[Tensor, Tensor]:
        images, labels, _ = self.source.fetch([i for indices in self.people for i in indices[1:]])
        return images, labels


def load_source(spec: DataSpec, targets: TargetsSpec | None = None) -> ImageSource:
    """The spec's dataset, seen through its binary task and its target selection, if any."""
    source = DATASETS.get(spec.dataset)(spec)
    if spec.binary is not None:
        source = BinaryTask(source, spec.binary)
    return PerIdentity(source) if targets is not None and targets.select == "per_identity" else source


def load_samples(source: ImageSource, indices: list[int]) -> Samples:
    """The images at ``indices``, converted to the spec's channels and size, in [0, 1]."""
    raw, labels, origin = source.fetch(indices)
    channels, size, _ = source.input_shape()
    images = raw.float() / 255 if raw.dtype == torch.uint8 else raw.float()
    if images.shape[1] != channels:
        images = images.repeat(1, 3, 1, 1) if channels == 3 else TF.rgb_to_grayscale(images)
    if images.shape[-2:] != (size, size):
        images = TF.resize(images, [size, size], antialias=True).clamp(0, 1)  # squashed, as GRNN does
    return Samples(images=images.contiguous(), labels=labels.to(torch.int64), origin=origin)


def data_available(spec: TaskSpec) -> bool:
    """Whether ``spec``'s target images can be read here without a download (read: the first and the
    last target's, which bound the range the targets span)."""
    try:
        with local_only():
            source = load_source(spec.data, spec.targets)
            load_samples(source, spec.target_indices(0) + spec.target_indices(spec.targets.count - 1))
        return True
    except LeakBenchError:
        return False
