"""``digits``: the 1 797 handwritten digits scikit-learn ships (``sklearn.datasets.load_digits``, the
UCI optdigits test set: 8×8 grey, pixel values 0..16, 10 classes), an offline dataset with both splits.

The split is fixed, in ``load_digits`` order: the first 1 437 images are ``train``, the last 360
(20 %, 33 to 37 per class) ``test``, so test index *i* is digit 1 437 + *i*. Pixels are value / 16,
exactly, in [0, 1].
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmark.core.downloads import package_path
from benchmark.core.errors import DataUnavailableError
from benchmark.data import DATASETS, ImageSource

TRAIN = 1437  # digits 0..1436 train, 1437..1796 test
MAX_VALUE = 16  # load_digits pixels are integers 0..16


@DATASETS.register("digits")
class Digits(ImageSource):
    num_classes, channels, image_size = 10, 1, 8

    @classmethod
    def package_files(cls) -> list[Path]:
        data = package_path("sklearn", "datasets", "data", "digits.csv.gz")
        return [data] if data is not None else []

    @cached_property
    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataUnavailableError(
                "dataset 'digits' comes with scikit-learn, which is not installed: pip install scikit-learn"
            ) from None
        digits = load_digits()
        part = slice(None, TRAIN) if self.spec.split == "train" else slice(TRAIN, None)
        return digits.images[part], digits.target[part]

    def __len__(self) -> int:
        return len(self._split[1])

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        images, labels = self._split
        if max(indices) >= len(labels):
            raise DataUnavailableError(
                f"digits {self.spec.split} holds {len(labels)} images; index {max(indices)} "
                f"does not exist: lower targets.start/count or the batch size"
            )
        pixels = torch.from_numpy(images[indices] / MAX_VALUE).float()[:, None]
        return pixels, torch.from_numpy(labels[indices]), "scikit-learn's handwritten digits (load_digits)"
