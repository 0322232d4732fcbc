from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import make_spec

from benchmark.apps.utility import UtilitySetting, measure_utility
from benchmark.core.errors import DataUnavailableError, SettingError
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.spec import DataSpec, DefenseSpec

SETTING = UtilitySetting(steps=60, batch_size=8, lr=0.05, train_images=24, test_images=12)


def _folder(root: Path, count: int, seed: int) -> Path:
    """An ImageFolder of dark and bright 8×8 images, ``count`` per class: trivially separable."""
    rng = np.random.default_rng(seed)
    for name, low in (("bright", 170), ("dark", 0)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(low, low + 80, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def splits(tmp_path: Path) -> dict[str, DataSpec]:
    return {
        split: DataSpec(
            dataset="folder", path=str(_folder(tmp_path / split, 12 if split == "train" else 6, seed)), image_size=8
        )
        for split, seed in (("train", 0), ("test", 1))
    }


def _spec(splits, defense=None):
    return make_spec(
        data=splits["test"].model_dump(),
        victim={"model": "mlp", "init": "default", "seed": 0},
        **({"defense": defense} if defense else {}),
    )


def test_utility_is_the_test_accuracy_after_training_and_a_strong_defence_costs_it(splits):
    plain = measure_utility(_spec(splits), SETTING, train=splits["train"], test=splits["test"])
    again = measure_utility(_spec(splits), SETTING, train=splits["train"], test=splits["test"])
    noisy = measure_utility(
        _spec(splits, {"name": "gaussian", "params": {"sigma": 30.0}}),
        SETTING,
        train=splits["train"],
        test=splits["test"],
    )
    assert plain.accuracy == again.accuracy == 1.0  # separable data, learnt; the run is seeded
    assert noisy.accuracy < plain.accuracy
    assert plain.setting["steps"] == 60 and plain.privacy is None


def test_dpsgd_reports_its_guarantee_over_the_training_run(splits):
    dp = measure_utility(
        _spec(splits, {"name": "dpsgd", "params": {"noise_multiplier": 1.0}}),
        SETTING,
        train=splits["train"],
        test=splits["test"],
    )
    from benchmark.defenses.dpsgd import DPSGD

    assert dp.privacy == DPSGD(noise_multiplier=1.0).privacy(steps=60, sample_rate=8 / 24)
    assert 0 <= dp.accuracy <= 1


def test_missing_training_data_is_unavailable_with_how_to_get_it():
    with pytest.raises(DataUnavailableError, match="cifar10 train images .* are not available.*LEAKBENCH_CACHE"):
        measure_utility(make_spec())


def test_utility_on_the_offline_digits_uses_each_small_split_whole():
    """scikit-learn's digits ship both splits: utility is measured offline, on 1 437 and 360 images."""
    spec = load_task("digits-mlp-b1")
    setting = UtilitySetting(steps=100)  # asks for 5 000 training and 1 000 test images
    plain = measure_utility(spec, setting)
    noisy = measure_utility(
        spec.model_copy(update={"defense": DefenseSpec(name="gaussian", params={"sigma": 1.0})}), setting
    )
    assert (plain.setting["train_images"], plain.setting["test_images"]) == (1437, 360)
    assert (
        plain.accuracy > 0.7 and noisy.accuracy < plain.accuracy - 0.1
    )  # learnt in 100 steps (10 classes); noise costs


def test_one_folder_for_both_splits_is_refused(splits):
    with pytest.raises(DataUnavailableError, match="one image folder"):
        measure_utility(_spec(splits), SETTING)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "steps must be a whole number >= 1, got 0"),
        ("test_images", -1, "test_images must be a whole number >= 1"),
        ("lr", float("nan"), r"lr must be a finite number in \[0, inf\]"),
    ],
)
def test_a_training_run_out_of_range_is_refused(field, value, message):
    with pytest.raises(SettingError, match=message):
        UtilitySetting(**{field: value})
