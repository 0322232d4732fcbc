"""LFW through scikit-learn's loader, offline: a small data home in scikit-learn's on-disk format
(``lfw_home/lfw_funneled/<Person>/<Person>_NNNN.jpg`` and the pairs lists) built from the real LFW
faces scikit-image ships, each person's images one face under small changes of light and pose."""

import json
import shutil
import tarfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.core.errors import DataUnavailableError, FileError, SpecError
from benchmark.data import lfw, load_samples, load_source
from benchmark.metrics.reid import WEIGHTS
from benchmark.protocol.spec import DataSpec, TargetsSpec

# In scikit-learn's order of names ("_" read as a space: Ann_Lee before Ann-Marie_Cole, which a plain sort of
# the folder names reverses); Alan_Reed has one image, so the per-identity protocol skips him.
PEOPLE = {"Ada_Moss": 2, "Alan_Reed": 1, "Ann_Lee": 3, "Ann-Marie_Cole": 2}
PAIRS = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")


def write_lfw(folder: Path) -> None:
    """LFW's funneled layout under ``folder``: 250×250 colour JPEGs; person k's image j is scikit-image's
    face k, mirrored for even j and a little darker with each j."""
    from skimage.data import lfw_subset

    faces = lfw_subset()
    for k, (person, count) in enumerate(PEOPLE.items()):
        (folder / person).mkdir(parents=True)
        for j in range(1, count + 1):
            face = faces[k][:, ::-1] if j % 2 == 0 else faces[k]
            rgb = np.stack([face, 0.85 * face, 0.7 * face], axis=-1) * (1 - 0.05 * (j - 1))
            picture = Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((250, 250), Image.BICUBIC)
            picture.save(folder / person / f"{person}_{j:04d}.jpg", quality=95)


def write_pairs(folder: Path) -> None:
    """The three pairs lists scikit-learn's loader downloads beside the images (one matched pair each)."""
    for name in PAIRS:
        (folder / name).write_text("1\t1\nAda_Moss\t1\t2\n")


@pytest.fixture
def small_lfw(monkeypatch: pytest.MonkeyPatch) -> None:
    """This small LFW stands for the real one (LFW's counts are checked: a partial copy is refused)."""
    monkeypatch.setattr(lfw, "PEOPLE", len(PEOPLE))
    monkeypatch.setattr(lfw, "IMAGES", sum(PEOPLE.values()))


@pytest.fixture
def data_home() -> Path:
    """scikit-learn's data home inside the test's empty LeakBench cache."""
    home = lfw.data_home()
    shutil.rmtree(home, ignore_errors=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def scikit_learn_home(home: Path) -> Path:
    write_lfw(home / "lfw_home" / "lfw_funneled")
    write_pairs(home / "lfw_home")
    return home / "lfw_home" / "lfw_funneled"


def per_identity(size: int = 250):
    return load_source(DataSpec(dataset="lfw", image_size=size), TargetsSpec(select="per_identity"))


def test_per_identity_targets_are_each_persons_first_image_and_the_gallery_their_others(data_home, small_lfw):
    folder = scikit_learn_home(data_home)
    source = per_identity()
    samples = load_samples(source, [0, 1, 2])
    assert samples.labels.tolist() == [0, 2, 3]  # Ada, Ann, Ann-Marie
    assert source.dataset_indices([0, 1, 2]) == [0, 3, 6]
    first = np.array(Image.open(folder / "Ann_Lee" / "Ann_Lee_0001.jpg"))
    assert torch.equal((samples.images[1] * 255).round().to(torch.uint8), torch.from_numpy(first).permute(2, 0, 1))
    assert samples.origin == (
        f"LFW funneled, 8 images of 4 people (scikit-learn {version('scikit-learn')} "
        f"fetch_lfw_people), one image per person"
    )
    gallery, people = source.gallery()
    assert people.tolist() == [0, 2, 2, 3] and gallery.shape == (4, 3, 250, 250) and gallery.dtype == torch.uint8
    squashed = load_samples(per_identity(32), [0])
    assert squashed.images.shape == (1, 3, 32, 32) and 0 <= squashed.images.min() and squashed.images.max() <= 1
    with pytest.raises(DataUnavailableError, match="3 people with at least two images"):
        load_samples(source, [3])


def test_a_copy_in_torchvisions_layout_serves_the_same_protocol(data_home, small_lfw):
    scikit_learn_home(data_home)
    expected = load_samples(per_identity(), [0, 1, 2])
    shutil.move(data_home / "lfw_home", data_home / "lfw-py")
    samples = load_samples(per_identity(), [0, 1, 2])
    assert torch.equal(samples.images, expected.images) and torch.equal(samples.labels, expected.labels)
    assert samples.origin == "LFW funneled, 8 images of 4 people (torchvision's LFWPeople layout), one image per person"


def test_scikit_learns_loader_downloads_and_unpacks_lfw_into_the_cache(data_home, small_lfw, tmp_path, monkeypatch):
    import sklearn.datasets._lfw as sklearn_lfw

    mirror = tmp_path / "mirror"  # what the figshare mirror serves: the archive and the pairs lists
    write_lfw(mirror / "lfw_funneled")
    write_pairs(mirror)
    with tarfile.open(mirror / "lfw-funneled.tgz", "w:gz") as archive:
        archive.add(mirror / "lfw_funneled", arcname="lfw_funneled")
    fetched = []

    def fetch_remote(remote, dirname=None, n_retries=3, delay=1):  # the network boundary, nothing else replaced
        fetched.append(remote.filename)
        return shutil.copy(mirror / remote.filename, Path(dirname) / remote.filename)

    monkeypatch.setattr(sklearn_lfw, "_fetch_remote", fetch_remote)
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    samples = load_samples(per_identity(), [0, 1, 2])
    assert sorted(fetched) == sorted([*PAIRS, "lfw-funneled.tgz"])
    assert samples.labels.tolist() == [0, 2, 3] and "fetch_lfw_people" in samples.origin
    assert (data_home / "lfw_home" / "lfw_funneled" / "Ann_Lee" / "Ann_Lee_0003.jpg").is_file()
    assert not (data_home / "lfw_home" / "lfw-funneled.tgz").exists()  # unpacked and removed by scikit-learn
    # The labels are scikit-learn's own: its people in the same order, with the same number of images each.
    bunch = sklearn_lfw.fetch_lfw_people(
        data_home=data_home, resize=None, slice_=(slice(0, 1), slice(0, 1)), download_if_missing=False
    )
    assert list(bunch.target_names) == [name.replace("_", " ") for name in PEOPLE]
    assert (
        np.bincount(bunch.target).tolist() == np.bincount(per_identity().source.identities()).tolist() == [2, 1, 3, 2]
    )


def test_missing_lfw_says_how_to_get_it_and_substitutes_nothing(data_home, tmp_path, monkeypatch):
    import sklearn.datasets._lfw as sklearn_lfw

    source = load_source(DataSpec(dataset="lfw", image_size=32))
    assert source.num_classes == 5749 and source.input_shape() == (3, 32, 32)
    with pytest.raises(
        DataUnavailableError,
        match=r"^lfw images are not available: no copy in .* downloads are "
        r"disabled by LEAKBENCH_OFFLINE\. Run once with internet access "
        r"\(scikit-learn's fetch_lfw_people .*lfw_home .*lfw-py",
    ):
        load_samples(source, [0])

    def unreachable(remote, dirname=None, n_retries=3, delay=1):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(sklearn_lfw, "_fetch_remote", unreachable)
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    with pytest.raises(DataUnavailableError, match=r"the download failed \(OSError: Network is unreachable\)"):
        load_samples(load_source(DataSpec(dataset="lfw", image_size=32)), [0])


def test_a_copy_that_is_not_all_of_lfw_is_refused(data_home):
    scikit_learn_home(data_home)
    with pytest.raises(
        DataUnavailableError,
        match=r"holds 8 images of 4 people, not LFW's 13233 of 5749 \(an "
        r"unpacking that did not finish\?\); delete .*lfw_home and run again",
    ):
        per_identity()


def test_lfw_has_one_split_and_an_unreadable_or_resized_image_names_the_file(data_home, small_lfw):
    folder = scikit_learn_home(data_home)
    with pytest.raises(SpecError, match="dataset 'lfw' has one split, 'test'"):
        load_source(DataSpec(dataset="lfw", split="train", image_size=32), TargetsSpec(select="per_identity"))
    (folder / "Ann_Lee" / "Ann_Lee_0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FileError, match=r"Ann_Lee_0001.jpg is not a readable image \(UnidentifiedImageError"):
        load_samples(per_identity(), [1])
    Image.new("RGB", (125, 125)).save(folder / "Ann_Lee" / "Ann_Lee_0001.jpg")
    with pytest.raises(
        FileError,
        match=r"Ann_Lee_0001.jpg is 125×125, not one of LFW's 250×250 funneled images; "
        r"delete .*lfw_home and run again to download LFW afresh$",
    ):
        load_samples(per_identity(), [1])


def test_leakbench_run_reidentifies_lfw_faces_end_to_end(data_home, small_lfw, tmp_path, capsys):
    """The path a user with the data takes: a real run of an lfw task, an attack and the re-id metric."""
    scikit_learn_home(data_home)
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "lfw-lenet5-b1",
                "--attack",
                "grnn",
                "--targets",
                "2",
                "--max-steps",
                "2",
                "--reid",
                "dlib",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (
        "face re-identification, lfw-lenet5-b1 / grnn: dlib encoder, gallery of 4 images of 3 people"
        in capsys.readouterr().out
    )
    result = json.loads((out / "results.json").read_text())
    summary = result["summary"]
    assert summary["reid_backend"] == "dlib" and summary["reid_weights_sha256"] == WEIGHTS["dlib"].sha256
    assert summary["reid_top1_ceiling"] == 1.0  # each original face is nearest to its person's other images
    assert 0 <= summary["reid_top1"] <= summary["reid_top5"] <= 1 and summary["lpips"] is None
    assert [row["labels"] for row in result["targets"]] == [[0], [2]]
    assert result["data_origin"].startswith("LFW funneled, 8 images of 4 people (scikit-learn")
    assert (
        f"dlib_face_recognition_resnet_model_v1.dat sha256 {WEIGHTS['dlib'].sha256}"
        in result["metric_definitions"]["reid_top1"]["encoders"]
    )
