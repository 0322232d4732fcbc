import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from benchmark.core.downloads import downloads_allowed, local_only, package_path
from benchmark.core.errors import DataUnavailableError, SpecError
from benchmark.data import load_samples, load_source
from benchmark.data.torchvision_sources import TorchvisionSource
from benchmark.protocol.spec import DataSpec

# The first test labels of each set, as published with the datasets.
FIRST_TEST_LABELS = {"mnist": [7, 2, 1, 0, 4], "cifar10": [3, 8, 8, 0, 6], "cifar100": [49, 33, 72, 51, 71]}


@pytest.mark.parametrize("dataset", sorted(FIRST_TEST_LABELS))
def test_offline_copy_serves_the_first_test_images(dataset):
    source = load_source(DataSpec(dataset=dataset))
    samples = load_samples(source, [0, 1, 2, 3, 4])
    assert samples.labels.tolist() == FIRST_TEST_LABELS[dataset]
    assert samples.images.shape == (5, *source.input_shape())
    assert 0 <= samples.images.min() and samples.images.max() <= 1
    assert samples.origin == f"foolbox {version('foolbox')} package data: the first 20 {dataset} test images"


def test_origins_name_the_package_and_the_split_never_a_local_path(tmp_path: Path, monkeypatch):
    class LocalCopy(list):  # a torchvision dataset found under the cache
        root = str(tmp_path / "cache" / "data")

    image = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    monkeypatch.setattr(TorchvisionSource, "_torchvision", lambda self, download: LocalCopy([(image, 3)]))
    local = load_samples(load_source(DataSpec(dataset="cifar10")), [0]).origin
    assert local == f"torchvision {torchvision.__version__} CIFAR10 test split (local copy)"
    (tmp_path / "faces" / "ada").mkdir(parents=True)
    image.save(tmp_path / "faces" / "ada" / "0.png")
    folder = load_samples(
        load_source(DataSpec(dataset="folder", path=str(tmp_path / "faces"), image_size=32)), [0]
    ).origin
    assert folder == "image folder 'faces' (1 images in 1 classes)"
    faces = load_samples(load_source(DataSpec(dataset="lfwmini")), [0]).origin
    assert faces == f"scikit-image {version('scikit-image')} package data: its 100 LFW faces (skimage.data.lfw_subset)"
    assert str(tmp_path) not in local + folder


def test_offline_pixels_are_the_png_pixels():
    samples = load_samples(load_source(DataSpec(dataset="cifar10")), [7])
    (path,) = package_path("foolbox", "data").glob("cifar10_07_*.png")
    expected = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    assert torch.equal(samples.images[0], expected)


def test_more_targets_than_the_offline_copy_is_a_clear_error():
    with pytest.raises(
        DataUnavailableError, match=r"cifar10 test images 0..20 are not available.*offline copy holds test images 0..19"
    ):
        load_samples(load_source(DataSpec(dataset="cifar10")), list(range(21)))


def test_local_only_asks_what_is_here_without_downloading(monkeypatch):
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    downloads = []

    def no_local_copy(self, download: bool):
        downloads.append(download)
        raise RuntimeError("Dataset not found")

    monkeypatch.setattr(TorchvisionSource, "_torchvision", no_local_copy)
    with local_only(), pytest.raises(DataUnavailableError, match="cifar10 test images 0..20"):
        load_samples(load_source(DataSpec(dataset="cifar10")), list(range(21)))
    assert downloads == [False]  # the local copy was looked for; nothing was downloaded
    assert downloads_allowed()


def test_train_split_is_never_served_from_the_test_copy():
    with pytest.raises(DataUnavailableError, match="cifar10 train images"):
        load_samples(load_source(DataSpec(dataset="cifar10", split="train")), [0])


def test_channel_and_size_conversion():
    samples = load_samples(load_source(DataSpec(dataset="mnist", channels=3, image_size=32)), [0])
    assert samples.images.shape == (1, 3, 32, 32)
    assert torch.equal(samples.images[0, 0], samples.images[0, 2])


def test_image_folder(tmp_path: Path):
    for cls, value in [("cat", 10), ("dog", 200)]:
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6, 3), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    source = load_source(DataSpec(dataset="folder", path=str(tmp_path), image_size=6))
    samples = load_samples(source, [1, 2])
    assert source.num_classes == 2
    assert samples.labels.tolist() == [0, 1]
    assert samples.images[0].mul(255).round().unique().tolist() == [11.0]
    with pytest.raises(DataUnavailableError, match="holds 4 images"):
        load_samples(source, [4])


def test_folder_needs_a_path_and_a_size(tmp_path: Path):
    with pytest.raises(SpecError, match="needs data.path"):
        load_samples(load_source(DataSpec(dataset="folder", image_size=8)), [0])
    with pytest.raises(DataUnavailableError):
        load_samples(load_source(DataSpec(dataset="folder", path=str(tmp_path / "none"), image_size=8)), [0])


def test_lfwmini_serves_the_hundred_scikit_image_faces():
    from skimage.data import lfw_subset

    source = load_source(DataSpec(dataset="lfwmini"))
    samples = load_samples(source, [0, 99])
    assert samples.labels.tolist() == [0, 99] and samples.images.shape == (2, 1, 25, 25)
    torch.testing.assert_close(
        samples.images[1, 0].double(), torch.from_numpy(lfw_subset()[99]), atol=0.5 / 255, rtol=0
    )
    images, people = source.gallery()
    assert images.shape == (100, 1, 25, 25) and people.tolist() == list(range(100))
    with pytest.raises(DataUnavailableError, match="100 faces"):
        load_samples(source, [100])
    with pytest.raises(SpecError, match="one split"):
        load_samples(load_source(DataSpec(dataset="lfwmini", split="train")), [0])


def test_per_identity_targets_take_each_persons_first_image_and_leave_the_rest_to_the_gallery(tmp_path: Path):
    from benchmark.protocol.spec import TargetsSpec

    for person, count in (("ada", 3), ("bob", 1), ("cy", 2)):
        (tmp_path / person).mkdir()
        for k in range(count):
            Image.fromarray(np.full((4, 4, 3), 40 * k + {"ada": 1, "bob": 2, "cy": 3}[person], np.uint8)).save(
                tmp_path / person / f"{k}.png"
            )
    source = load_source(
        DataSpec(dataset="folder", path=str(tmp_path), image_size=4), TargetsSpec(select="per_identity")
    )
    samples = load_samples(source, [0, 1])
    assert samples.labels.tolist() == [0, 2]  # ada and cy; bob has one image
    assert source.dataset_indices([0, 1]) == [0, 4]  # the folder's own indices of their first images
    assert (samples.images[:, 0, 0, 0] * 255).round().tolist() == [1, 3]  # their first images
    gallery, people = source.gallery()
    assert people.tolist() == [0, 0, 2] and gallery[:, 0, 0, 0].tolist() == [41, 81, 43]
    with pytest.raises(DataUnavailableError, match="2 people with at least two images"):
        load_samples(source, [2])


def test_digits_split_is_fixed_and_its_pixels_are_value_over_16():
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, test = (load_source(DataSpec(dataset="digits", split=split)) for split in ("train", "test"))
    assert (len(train), len(test)) == (1437, 360) and train.input_shape() == (1, 8, 8)
    whole_test, whole_train = (load_samples(s, list(range(len(s)))) for s in (test, train))
    # The protocol's own numbers, not re-derived from scikit-learn: a reordered or changed copy fails here.
    assert whole_test.labels[:10].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 9]
    assert (
        round(16 * whole_test.images.sum().item()) == 112346 and round(16 * whole_train.images.sum().item()) == 449372
    )
    assert torch.equal(whole_test.images[:, 0], torch.from_numpy(digits.images[1437:] / 16).float())
    assert torch.equal(whole_train.labels, torch.from_numpy(digits.target[:1437]))
    assert torch.equal(whole_test.images * 16, (whole_test.images * 16).round()) and whole_test.images.max() == 1
    for samples, counts in ((whole_train, range(141, 147)), (whole_test, range(33, 38))):  # every class in both
        assert set(torch.bincount(samples.labels).tolist()) <= set(counts)
    with pytest.raises(DataUnavailableError, match="digits test holds 360 images; index 360"):
        load_samples(test, [360])


def test_digits_resize_to_grnns_three_channel_32x32():
    samples = load_samples(load_source(DataSpec(dataset="digits", image_size=32, channels=3)), [0])
    assert samples.images.shape == (1, 3, 32, 32) and 0 <= samples.images.min() and samples.images.max() <= 1
    assert torch.equal(samples.images[0, 0], samples.images[0, 2])


def test_digits_without_scikit_learn_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(DataUnavailableError, match="pip install scikit-learn"):
        load_samples(load_source(DataSpec(dataset="digits")), [0])
