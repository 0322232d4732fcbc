"""MNIST, CIFAR-10 and CIFAR-100 through torchvision, with the offline copy of the first test images.

Order of sources: a local torchvision copy under the cache; the 20 first *test* images that the
``foolbox`` package ships as PNG files (pixel- and label-identical to the test sets, so a protocol
on test indices 0..19 is the same protocol offline); a torchvision download. Anything else is an
error that says how to get the data. (LFW, which torchvision no longer downloads: :mod:`benchmark.data.lfw`.)
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor

from benchmark.core.downloads import attempt_download, cache_dir, package_path
from benchmark.core.errors import DataUnavailableError
from benchmark.data import DATASETS, ImageSource

OFFLINE_COUNT = 20


class TorchvisionSource(ImageSource):
    dataset_class: type
    offline_prefix: str  # the name of foolbox's offline copy

    def _torchvision(self, download: bool):
        root = cache_dir() / "data"
        return self.dataset_class(root=str(root), train=self.spec.split == "train", download=download)

    @classmethod
    def package_files(cls) -> list[Path]:
        folder = package_path("foolbox", "data") if cls.offline_prefix else None
        return [folder] if folder is not None else []

    def _local(self):
        """torchvision's dataset from the local copy, or None."""
        try:
            return self._torchvision(download=False)
        except RuntimeError:  # torchvision: "Dataset not found"
            return None

    def _download(self, wanted: str):
        """torchvision's dataset, downloaded where allowed; else an error saying how to get ``wanted``."""
        dataset, reason = attempt_download(lambda: self._torchvision(download=True))
        if dataset is not None:
            return dataset
        raise DataUnavailableError(
            f"{self.spec.dataset} {self.spec.split} {wanted} are not available: no copy in {cache_dir() / 'data'}, "
            f"the offline copy holds test images 0..{OFFLINE_COUNT - 1} only, and {reason}. Run once with internet "
            f"access (the data is cached), or set LEAKBENCH_CACHE to a folder holding torchvision's "
            f"'{self.dataset_class.__name__}' files, or use fewer targets (--targets)"
        )

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        local = self._local()
        if local is not None:
            return self._from_torchvision(local, indices, "local copy")
        folder = package_path("foolbox", "data") if self.offline_prefix else None
        if self.spec.split == "test" and max(indices) < OFFLINE_COUNT and folder is not None:
            return self._from_offline(folder, indices)
        return self._from_torchvision(self._download(f"images {min(indices)}..{max(indices)}"), indices, "downloaded")

    def __len__(self) -> int:
        local = self._local()
        return len(local if local is not None else self._download("images (the whole split)"))

    def _from_torchvision(self, dataset, indices: list[int], how: str) -> tuple[Tensor, Tensor, str]:
        if max(indices) >= len(dataset):
            raise DataUnavailableError(
                f"{self.spec.dataset} {self.spec.split} has {len(dataset)} images; index {max(indices)} does not "
                f"exist: lower targets.start/count or the batch size"
            )
        pairs = [dataset[i] for i in indices]
        images = torch.stack([torchvision.transforms.functional.pil_to_tensor(image) for image, _ in pairs])
        origin = f"torchvision {torchvision.__version__} {self.dataset_class.__name__} {self.spec.split} split ({how})"
        return images, torch.tensor([label for _, label in pairs]), origin

    def _from_offline(self, folder: Path, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        images, labels = [], []
        for index in indices:
            (path,) = folder.glob(f"{self.offline_prefix}_{index:02d}_*.png")
            images.append(torch.from_numpy(np.array(Image.open(path))))
            labels.append(int(path.stem.rsplit("_", 1)[1]))
        stacked = torch.stack(images)
        stacked = stacked[:, None] if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
        origin = f"foolbox {version('foolbox')} package data: the first {OFFLINE_COUNT} {self.spec.dataset} test images"
        return stacked.contiguous(), torch.tensor(labels), origin


@DATASETS.register("mnist")
class MNIST(TorchvisionSource):
    dataset_class = torchvision.datasets.MNIST
    offline_prefix = "mnist"
    num_classes, channels, image_size = 10, 1, 28


@DATASETS.register("cifar10")
class CIFAR10(TorchvisionSource):
    dataset_class = torchvision.datasets.CIFAR10
    offline_prefix = "cifar10"
    num_classes, channels, image_size = 10, 3, 32


@DATASETS.register("cifar100")
class CIFAR100(TorchvisionSource):
    dataset_class = torchvision.datasets.CIFAR100
    offline_prefix = "cifar100"
    num_classes, channels, image_size = 100, 3, 32
