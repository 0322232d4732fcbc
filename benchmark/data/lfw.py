"""Labeled Faces in the Wild (Huang et al., 2007): the funneled 250×250 colour images, 13 233 of
5 749 people; the label of an image is its person.

scikit-learn's ``fetch_lfw_people`` downloads LFW (``lfw-funneled.tgz`` and the pairs lists, each
checked against its sha256) and unpacks it into the data home ``<cache>/data``, as
``lfw_home/lfw_funneled/<Person>/<Person>_NNNN.jpg``. A copy in torchvision's ``LFWPeople`` layout
(``<cache>/data/lfw-py/lfw_funneled``, the same archive unpacked) is read the same way. There is no
offline copy: scikit-image's 100 faces carry no names (they are ``lfwmini``).

The protocol reads the images by LFW's own names, not in scikit-learn's shuffled array order: people
sorted by name as scikit-learn sorts them (``target_names``: the folder names with ``_`` read as a
space; label *k* is its ``target`` *k*), each person's images in file order. LFW is an evaluation
set and scikit-learn's download carries no development split lists, so there is one split,
``test``: all 13 233 images.
"""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from benchmark.core.downloads import attempt_download, cache_dir
from benchmark.core.errors import DataUnavailableError, FileError, SpecError, first_line
from benchmark.data import DATASETS, ImageSource

PEOPLE, IMAGES = 5749, 13233  # LFW's published size; a folder holding other counts is refused
SIZE = 250  # every funneled image is 250×250
IMAGES_FOLDER = "lfw_funneled"
LAYOUTS = {"lfw_home": "scikit-learn's data home", "lfw-py": "torchvision's LFWPeople layout"}


def data_home() -> Path:
    """scikit-learn's data home for LFW (and the folder torchvision's ``lfw-py`` is looked for in)."""
    return cache_dir() / "data"


@DATASETS.register("lfw")
class LFW(ImageSource):
    num_classes, channels, image_size = PEOPLE, 3, SIZE

    @cached_property
    def _copy(self) -> tuple[Path, str]:
        """The unpacked images folder and which layout holds it; downloaded by scikit-learn where absent."""
        if self.spec.split != "test":
            raise SpecError(f"dataset 'lfw' has one split, 'test' (all {IMAGES} images); set data.split: test")
        for folder, layout in LAYOUTS.items():
            if (data_home() / folder / IMAGES_FOLDER).is_dir():
                return data_home() / folder / IMAGES_FOLDER, layout
        _, reason = attempt_download(self._download)
        if reason:
            raise DataUnavailableError(
                f"lfw images are not available: no copy in {data_home()} and {reason}. Run once with internet "
                f"access (scikit-learn's fetch_lfw_people downloads about 230 MB into lfw_home there), or set "
                f"LEAKBENCH_CACHE to a folder whose data/ holds lfw_home (scikit-learn's) or lfw-py (torchvision's) "
                f"with {IMAGES_FOLDER} inside"
            )
        return data_home() / "lfw_home" / IMAGES_FOLDER, LAYOUTS["lfw_home"]

    @staticmethod
    def _download() -> None:
        from sklearn.datasets import fetch_lfw_people

        # The download, its checksums and the unpacking are scikit-learn's; its one-time decoding of every
        # image into an array is kept cheap with a one-pixel slice (the protocol reads the files it names).
        fetch_lfw_people(
            data_home=data_home(),
            funneled=True,
            color=True,
            resize=None,
            slice_=(slice(0, 1), slice(0, 1)),
            download_if_missing=True,
        )

    @cached_property
    def _files(self) -> list[tuple[int, Path]]:
        """(label, path) of every image, by person (scikit-learn's order of names), then by file name."""
        folder, _ = self._copy
        people = sorted((entry for entry in folder.iterdir() if entry.is_dir()), key=lambda d: d.name.replace("_", " "))
        files = [(label, path) for label, person in enumerate(people) for path in sorted(person.glob("*.jpg"))]
        if (len(people), len(files)) != (PEOPLE, IMAGES):
            raise DataUnavailableError(
                f"lfw: {folder} holds {len(files)} images of {len(people)} people, not LFW's {IMAGES} of {PEOPLE} "
                f"(an unpacking that did not finish?); delete {folder.parent} and run again to download it afresh"
            )
        return files

    def __len__(self) -> int:
        return len(self._files)

    def identities(self) -> list[int]:
        return [label for label, _ in self._files]

    def fetch(self, indices: list[int]) -> tuple[Tensor, Tensor, str]:
        files = self._files
        if max(indices) >= len(files):
            raise DataUnavailableError(
                f"lfw holds {len(files)} images; index {max(indices)} does not exist: lower "
                f"targets.start/count or the batch size"
            )
        first = self._read(files[indices[0]][1])
        images = first.new_empty((len(indices), *first.shape))  # filled in place: a gallery holds thousands
        images[0] = first
        for n, i in enumerate(indices[1:], 1):
            images[n] = self._read(files[i][1])
        _, layout = self._copy
        how = f"scikit-learn {version('scikit-learn')} fetch_lfw_people" if layout == LAYOUTS["lfw_home"] else layout
        return (
            images,
            torch.tensor([files[i][0] for i in indices]),
            f"LFW funneled, {IMAGES} images of {PEOPLE} people ({how})",
        )

    @staticmethod
    def _read(path: Path) -> Tensor:
        """One image, uint8 (3, H, W)."""
        again = f"delete {path.parent.parent.parent} and run again to download LFW afresh"
        try:
            with Image.open(path) as image:
                pixels = np.array(image.convert("RGB"))
        except Exception as err:  # PIL's decoders raise many kinds (OSError, SyntaxError, ...)
            raise FileError(
                f"lfw: {path} is not a readable image ({type(err).__name__}: {first_line(err, 100)}); {again}"
            ) from None
        if pixels.shape[:2] != (SIZE, SIZE):
            raise FileError(
                f"lfw: {path} is {pixels.shape[1]}×{pixels.shape[0]}, not one of LFW's {SIZE}×{SIZE} "
                f"funneled images; {again}"
            )
        return torch.from_numpy(pixels).permute(2, 0, 1)
