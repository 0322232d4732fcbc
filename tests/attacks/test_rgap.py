from pathlib import Path

import pytest
import torch
from support import make_spec

from benchmark.attacks.rgap import RGAP
from benchmark.data import Samples
from benchmark.pipeline.fit import fit
from benchmark.pipeline.run import run
from benchmark.victim.client import Victim

CNN6 = {"model": "cnn6", "init": "default", "seed": 0, "mode": "eval"}
ANIMAL = {"binary": {"name": "animal", "positive": [2, 3, 4, 5, 6, 7]}}


def _cnn6_images(tmp_path: Path, start: int, count: int) -> Path:
    spec = tmp_path / "cnn6-images.yaml"
    spec.write_text(f"include: cifar10-cnn6-b1\nname: cnn6-images\ntargets: {{start: {start}, count: {count}}}\n")
    return spec


def test_recovers_a_cnn6_image_above_40_db(tmp_path):
    result = run(_cnn6_images(tmp_path, start=1, count=1), "rgap", logger=None)  # image 0: tests/analysis
    for row in result.targets:
        assert min(row.metrics["psnr"]) >= 40 and not row.details["rank_deficient"]
        assert row.details["label_source"] == "known" and row.recovered_labels == row.labels


@pytest.mark.slow
def test_recovers_all_20_cnn6_images_above_40_db():
    result = run("cifar10-cnn6-b1", "rgap", logger=None)
    assert len(result.targets) == 20
    assert min(min(row.metrics["psnr"]) for row in result.targets) >= 40


@pytest.mark.parametrize("labels", ["known", "unknown"])
def test_multiclass_head_with_known_or_row_norm_label(labels):
    spec = make_spec(victim=CNN6, threat={"labels": labels})
    private = Samples(torch.rand(1, 3, 16, 16), torch.tensor([7]), "t")
    observation = Victim(spec, 0, private, 10).observe()
    assert RGAP.unsupported(observation) is None
    (reconstruction,), _ = fit(RGAP, [observation], RGAP.Config(), [0])
    assert reconstruction.labels.tolist() == [7]
    assert reconstruction.details["label_source"] == ("known" if labels == "known" else "row norm")
    assert 10 * torch.log10(1 / ((reconstruction.images - private.images) ** 2).mean()) >= 40


@pytest.mark.parametrize(
    ("overrides", "classes", "reason"),
    [
        ({}, 10, "layers without bias"),  # LeNet-Zhu
        ({"victim": CNN6, "data": ANIMAL}, 2, "ssras obtains it with DLG"),  # a logistic head hides the label
        ({"victim": {**CNN6, "model": "convnet"}}, 10, "BatchNorm2d"),
    ],
)
def test_says_why_it_does_not_apply(overrides, classes, reason):
    observation = Victim(
        make_spec(**overrides), 0, Samples(torch.rand(1, 3, 16, 16), torch.tensor([1]), "t"), classes
    ).observe()
    assert reason in RGAP.unsupported(observation)
