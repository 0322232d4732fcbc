import pytest
import torch

from benchmark.apps.analysis import analyze_model
from benchmark.attacks.components.rank import analyze, recoverable_by_rgap
from benchmark.models import MODELS
from benchmark.pipeline.run import run

NETWORKS = {"cnn6": "cifar10-cnn6-b1", "cnn6d": "cifar10-cnn6d-b1"}


@pytest.fixture(scope="module")
def analyses():
    return {model: analyze_model(model, (3, 32, 32), 2) for model in NETWORKS}


@pytest.fixture(scope="module")
def rgap_runs():
    return {model: run(task, "rgap", targets=1, logger=None).targets[0] for model, task in NETWORKS.items()}


def test_cnn6_has_no_deficiency_and_cnn6d_one_in_its_second_layer(analyses):
    assert recoverable_by_rgap(analyses["cnn6"])
    assert all(row.verdict == "recoverable" for row in analyses["cnn6"])
    deficient = [row for row in analyses["cnn6d"] if row.deficiency]
    assert [row.layer for row in deficient] == ["features.2"] and not recoverable_by_rgap(analyses["cnn6d"])
    (row,) = deficient
    # counting rows says enough (1620 + 2160 ≥ 3468); the numeric rank says otherwise
    assert row.weight_constraints + row.gradient_constraints >= row.unknowns > row.rank
    assert (
        row.virtual_constraints == 12 * 17 * 17 - 3 * 32 * 32 and row.ra_i == row.deficiency - row.virtual_constraints
    )


def test_the_prediction_matches_what_rgap_achieves(analyses, rgap_runs):
    for model, rows in analyses.items():
        achieved = rgap_runs[model]
        assert [layer["deficiency"] for layer in achieved.details["layers"]] == [row.deficiency for row in rows]
        assert achieved.details["rank_deficient"] == (not recoverable_by_rgap(rows))
        assert (min(achieved.metrics["psnr"]) >= 40) == recoverable_by_rgap(rows), model


def test_counts_and_virtual_constraints_of_a_fully_connected_network():
    rows = analyze_model("fcn3", (1, 28, 28), 2)
    assert [(r.unknowns, r.weight_constraints, r.gradient_constraints, r.virtual_constraints) for r in rows] == [
        (784, 1000, 784 * 1000, 0),
        (1000, 100, 1000 * 100, 1000 - 784),
        (100, 1, 100, 0),
    ]
    assert all(r.rank == r.unknowns and r.verdict == "recoverable" for r in rows)


def test_the_model_is_left_untouched():
    model = MODELS.get("lenet_zhu")(3, 16, 10)
    before = [p.clone() for p in model.parameters()]
    analyze(model, (3, 16, 16))
    assert all(torch.equal(a, b) and b.dtype == torch.float32 for a, b in zip(before, model.parameters()))
