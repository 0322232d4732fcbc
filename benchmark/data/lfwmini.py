"""``lfwmini``: the 100 Labeled Faces in the Wild images that scikit-image ships
(``skimage.data.lfw_subset()``: 25×25 grey crops, no names), an offline face set.

Without names the protocol is instance-level: the label of face i is i (100 classes), and the face
re-identification gallery holds the 100 original faces, so re-identifying a reconstruction means
finding the face it was rebuilt from among all 100.
"""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmark.core.downloads import package_path
from benchmark.core.errors import DataUnavailableError, SpecError
from benchmark.data import DATASETS, ImageSource

FACES = 100  # lfw_subset() holds 100 faces, then 100 non-face patches


@DATASETS.register("lfwmini")
class LFWMini(ImageSource):
    num_classes, channels, image_size = FACES, 1, 25

    @classmethod
    def package_files(cls) -> list[Path]:
        faces = package_path("skimage", "data", "lfw_subset.npy")
        return [faces] if faces is not None else []

    @cached_property
    def _faces(self) -> np.ndarray:
        if self.spec.split != "test":
            raise SpecError("dataset 'lfwmini' has one split, 'test' (its 100 faces); set data.split: test")
        try:
            from skimage.data import lfw_subset
        except ImportError:
            raise DataUnavailableError(
                "dataset 'lfwmini' comes with scikit-image, which is not installed: "
                "pip install scikit-image (or leakbench[faces])"
            ) from None
        return (lfw_subset()[:FACES] * 255).round().astype(np.uint8)

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        if max(indices) >= FACES:
            raise DataUnavailableError(
                f"lfwmini holds {FACES} faces; index {max(indices)} does not exist: lower "
                f"targets.start/count or the batch size"
            )
        images = torch.from_numpy(self._faces[indices])[:, None]
        return (
            images,
            torch.tensor(indices),
            (f"scikit-image {version('scikit-image')} package data: its {FACES} LFW faces (skimage.data.lfw_subset)"),
        )

    def __len__(self) -> int:
        return FACES

    def gallery(self) -> tuple[Tensor, Tensor]:
        """The 100 original faces, each its own identity (instance-level re-identification)."""
        return torch.from_numpy(self._faces)[:, None], torch.arange(FACES)
