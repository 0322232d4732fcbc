from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import make_spec

from benchmark.apps.training import train_victim, trained_victim
from benchmark.cli import main
from benchmark.core.errors import DataUnavailableError, FileError
from benchmark.data import Samples
from benchmark.pipeline.tasks import load_task
from benchmark.victim.client import Victim
from benchmark.victim.trained import checkpoint_path


@pytest.fixture
def two_colours(tmp_path: Path) -> Path:
    """An ImageFolder of 8x8 images: reddish ones are class 0, bluish ones class 1."""
    rng = np.random.default_rng(0)
    for label, channel in (("0-red", 0), ("1-blue", 2)):
        (tmp_path / label).mkdir()
        for k in range(16):
            pixels = rng.integers(0, 90, (8, 8, 3), dtype=np.uint8)
            pixels[..., channel] += 160
            Image.fromarray(pixels).save(tmp_path / label / f"{k}.png")
    return tmp_path


def _spec(folder: Path, **victim):
    return make_spec(
        data={"dataset": "folder", "path": str(folder), "image_size": 8},
        victim={"model": "mlp", "init": "default", "seed": 3, **victim},
    )


def test_a_trained_victim_is_stored_with_its_hash_and_loaded_by_trained_at_e(two_colours):
    trained = train_victim(_spec(two_colours), epochs=3)
    assert trained.path == checkpoint_path(_spec(two_colours), 3) and trained.path.is_file()
    assert trained.train_images == 32 and trained.train_accuracy > 0.9
    assert trained.test_accuracy is None  # an image folder has no test split apart from its training images
    state = torch.load(trained.path, weights_only=True)
    private = Samples(torch.rand(1, 3, 8, 8), torch.tensor([1]), "t")
    model = Victim(_spec(two_colours, state="trained@3"), 5, private, 2).model
    for name, parameter in model.state_dict().items():
        assert torch.equal(parameter, state[name]), name
    untrained = Victim(_spec(two_colours), 5, private, 2).model
    assert not torch.equal(untrained.state_dict()[name], state[name])


def test_a_missing_or_changed_trained_victim_says_how_to_train_it(two_colours):
    private = Samples(torch.rand(1, 3, 8, 8), torch.tensor([1]), "t")
    with pytest.raises(DataUnavailableError, match="leakbench victim train --task tiny --epochs 2"):
        Victim(_spec(two_colours, state="trained@2"), 0, private, 2)
    trained = train_victim(_spec(two_colours), epochs=1)
    trained.path.write_bytes(trained.path.read_bytes()[:-5] + b"xxxxx")
    with pytest.raises(DataUnavailableError, match="sha256 differs"):
        Victim(_spec(two_colours, state="trained@1"), 0, private, 2)


def test_a_damaged_record_of_a_trained_victim_is_one_line(two_colours):
    trained = train_victim(_spec(two_colours), epochs=1)
    trained.path.with_suffix(".json").write_text('{"sha256": ')
    with pytest.raises(
        FileError,
        match=r"trained victim record .* is not valid JSON \(.*\); train it again with "
        r"`leakbench victim train --task tiny --epochs 1`",
    ):
        Victim(_spec(two_colours, state="trained@1"), 0, Samples(torch.rand(1, 3, 8, 8), torch.tensor([1]), "t"), 2)


def test_victim_state_is_validated():
    with pytest.raises(Exception, match="victim.state"):
        make_spec(victim={"state": "trained@0"})


def test_training_without_the_training_split_says_how_to_get_it(capsys):
    assert main(["victim", "train", "--task", "cifar10-lenetzhu-b1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cifar10 train images (the whole split) are not available" in err and "internet" in err


def test_the_digits_victim_trains_offline_and_a_stored_one_is_reused(monkeypatch):
    spec = load_task("digits-mlp-b1")
    trained = trained_victim(spec, 1)
    assert trained.train_images == 1437 and trained.test_accuracy > 0.5  # one epoch; chance is 0.1
    trainings = []
    monkeypatch.setattr("benchmark.apps.training.train_victim", lambda *args: trainings.append(args) or trained)
    assert trained_victim(spec, 1) == trained and not trainings  # read back from the cache, its weights checked
    trained.path.write_bytes(trained.path.read_bytes()[:-5] + b"xxxxx")
    trained_victim(spec, 1)
    assert len(trainings) == 1  # a changed file is trained again, not reused


def test_victim_train_on_an_image_folder_names_its_accuracy_a_training_accuracy(two_colours, tmp_path, capsys):
    spec = tmp_path / "folder.yaml"
    spec.write_text(
        f"name: folder\nversion: 1\ndata: {{dataset: folder, path: {two_colours}, image_size: 8}}\n"
        "victim: {model: mlp}\n"
    )
    assert main(["victim", "train", "--task", str(spec), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "; training accuracy 0." in out or "; training accuracy 1." in out
    assert "test accuracy not measured (an image folder holds no separate test split)" in out
