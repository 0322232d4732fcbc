"""Bring-your-own images: a folder in torchvision's ImageFolder layout (one sub-folder per class)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from benchmark.core.errors import DataUnavailableError, FileError, SpecError
from benchmark.data import DATASETS, ImageSource


@DATASETS.register("folder")
class ImageFolderSource(ImageSource):
    """Indices are positions in ImageFolder's order (classes sorted, then file names sorted)."""

    channels = 3
    image_size = None

    @cached_property
    def _folder(self) -> torchvision.datasets.ImageFolder:
        if not self.spec.path:
            raise SpecError("dataset 'folder' needs data.path: a folder with one sub-folder of images per class")
        try:
            return torchvision.datasets.ImageFolder(self.spec.path)
        except (FileNotFoundError, OSError) as err:
            raise DataUnavailableError(
                f"image folder {self.spec.path}: {err}; give data.path an ImageFolder tree"
            ) from None

    def _item(self, folder: torchvision.datasets.ImageFolder, index: int):
        try:
            return folder[index]
        except Exception as err:  # PIL's decoders raise many kinds (OSError, SyntaxError, zlib.error, ...)
            raise FileError(
                f"image folder {self.spec.path}: {folder.samples[index][0]} is not a readable image "
                f"({type(err).__name__}: {' '.join(str(err).split())[:100]}); replace or remove it"
            ) from None

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return len(self._folder.classes)

    def __len__(self) -> int:
        return len(self._folder)

    def identities(self) -> list[int]:
        return list(self._folder.targets)

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        folder = self._folder
        if max(indices) >= len(folder):
            raise DataUnavailableError(
                f"image folder {self.spec.path} holds {len(folder)} images; index {max(indices)} does not exist: "
                f"lower targets.start/count or add images"
            )
        pairs = [self._item(folder, i) for i in indices]
        images = [torchvision.transforms.functional.pil_to_tensor(image) for image, _ in pairs]
        shapes = {tuple(image.shape[-2:]) for image in images}
        if len(shapes) > 1:  # resize each to the spec's size before stacking
            size = self.input_shape()[1]
            images = [torchvision.transforms.functional.resize(image, [size, size], antialias=True) for image in images]
        origin = f"image folder '{Path(self.spec.path).name}' ({len(folder)} images in {self.num_classes} classes)"
        return torch.stack(images), torch.tensor([label for _, label in pairs]), origin
