import json

import pytest

from benchmark.apps.study import (
    CRITERIA,
    batch_size_study,
    cell_from_result,
    defense_study,
    family_tasks,
    training_study,
)
from benchmark.cli import main
from benchmark.core.errors import SpecError
from benchmark.pipeline.result import Result, TargetResult
from benchmark.protocol.spec import DefenseSpec


def test_a_family_is_its_batch_size_variants_in_order():
    assert family_tasks("mnist-lenet5") == {b: f"mnist-lenet5-b{b}" for b in (1, 4, 8, 16, 32, 64, 128, 256)}


def test_an_unknown_family_suggests_the_known_ones():
    with pytest.raises(SpecError, match="did you mean 'mnist-lenet5'"):
        family_tasks("mnist-lenet")


def _row(target, ssims, failed=None):
    metrics = {} if failed else {"ssim": ssims, "ssim_skimage7": [v + 0.2 for v in ssims], "psnr": [20.0] * len(ssims)}
    return TargetResult(
        target=target,
        indices=list(range(len(ssims))),
        labels=[0] * len(ssims),
        recovered_labels=[0] * len(ssims),
        metrics=metrics,
        loss=0.0,
        tries=1,
        seconds=1.0,
        failed=failed,
    )


def test_success_counts_images_at_or_above_each_criterion_and_failed_targets_as_lost():
    result = Result(
        task="t-b2",
        task_version=1,
        spec_hash="h",
        attack="grnn",
        config={},
        data_origin="o",
        environment={},
        targets=[_row(0, [0.6, 0.59]), _row(1, [0.9, 0.1]), _row(2, [0.0, 0.0], failed="nan")],
    )
    cell = cell_from_result(result, 2, [CRITERIA.get("ssim-0.6"), CRITERIA.get("fedkl-asr")], seed=3)
    assert (cell.images, cell.seed, cell.recovered) == (6, 3, {"ssim-0.6": 2, "fedkl-asr": 3})
    assert cell.success_rate("ssim-0.6") == pytest.approx(2 / 6)


def test_criteria_name_their_metric_and_source():
    fedkl = CRITERIA.get("fedkl-asr")
    assert (fedkl.metric, fedkl.threshold) == ("ssim_skimage7", 0.6) and "Rand2AI/FedKL" in fedkl.source
    with pytest.raises(Exception, match="did you mean 'fedkl-asr'"):
        CRITERIA.get("fedkl-as")


def test_study_runs_every_seed_writes_its_table_and_plot_and_reports_missing_data(tmp_path):
    study = batch_size_study(
        "mnist-lenet5", ["grnn"], batch_sizes=[4, 32], seeds=[0, 1], targets=1, max_steps=2, out=tmp_path
    )
    assert [(c.batch_size, c.seed) for c in study.cells] == [(4, 0), (4, 1), (32, 0), (32, 1)]
    small, large = study.summary()
    assert (small["batch_size"], small["images"], small["seeds"], small["unavailable"]) == (4, 4, 2, None)
    rates = [c.success_rate("fedkl-asr") for c in study.cells[:2]]
    assert small["fedkl-asr"] == {"mean": sum(rates) / 2, "min": min(rates), "max": max(rates)}
    assert large["unavailable"] and "mnist test images 0..31 are not available" in large["unavailable"]
    assert study.cells[0].psnr != study.cells[1].psnr  # the seeds are different attacks
    written = json.loads((tmp_path / "study.json").read_text())
    assert [c["name"] for c in written["criteria"]] == ["fedkl-asr", "ssim-0.6"] and len(written["cells"]) == 4
    assert "Rand2AI/FedKL" in written["criteria"][0]["source"]
    assert (tmp_path / "success-rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "mnist-lenet5-b4" / "grnn" / "seed-1" / "results.json").is_file()  # ordinary run folders


def test_cli_names_a_wrong_attack_before_any_work(tmp_path, capsys):
    code = main(["study", "batch-size", "--attacks", "grn", "--task-family", "mnist-lenet5", "--out", str(tmp_path)])
    assert code == 2 and "did you mean 'grnn'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_defense_study_writes_its_table_and_plot_and_reports_utility_unavailable(tmp_path):
    study = defense_study(
        "cifar10-lenetzhu-b1", "idlg", DefenseSpec(name="pruning"), [0.0, 0.9], targets=1, max_steps=2, out=tmp_path
    )
    assert [c.strength for c in study.cells] == [0.0, 0.9] and study.strength == "fraction"
    for cell in study.cells:
        assert cell.targets == 1 and cell.psnr is not None and cell.unavailable is None
        assert (
            cell.utility is None
            and "cifar10 train images (the whole split) are not available" in cell.utility_unavailable
        )
    assert study.cells[1].defense["params"] == {"fraction": 0.9}
    written = json.loads((tmp_path / "study.json").read_text())
    assert written["study"] == "defense" and written["defense"] == "pruning" and len(written["cells"]) == 2
    assert (tmp_path / "privacy-utility.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((tmp_path / "pruning-0.9" / "results.json").read_text())  # an ordinary, resumable run folder
    assert run["config"]["defense"] == {"name": "pruning", "params": {"fraction": 0.9}, "seed": 0, "privacy": None}


def test_defense_study_records_dpsgd_epsilon_per_strength(tmp_path):
    study = defense_study(
        "cifar10-lenetzhu-b1",
        "idlg",
        DefenseSpec(name="dpsgd", params={"max_grad_norm": 0.5}),
        [0.5, 2.0],
        targets=1,
        max_steps=1,
        out=tmp_path,
    )
    low, high = (cell.defense["privacy"]["epsilon"] for cell in study.cells)
    assert low > high and study.cells[1].defense["params"] == {"max_grad_norm": 0.5, "noise_multiplier": 2.0}


def test_defense_study_on_the_digits_measures_utility_offline(tmp_path, capsys):
    code = main(
        [
            "study",
            "defense",
            "--attack",
            "bias",
            "--task",
            "digits-mlp-b1",
            "--defense",
            "gaussian",
            "--strengths",
            "0,3",
            "--targets",
            "1",
            "--utility-steps",
            "100",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "on 360 test images after 100 defended SGD steps on 1437 training images" in printed
    study = json.loads((tmp_path / "study.json").read_text())
    plain, noisy = study["cells"]
    assert plain["utility_unavailable"] is None and plain["utility"] > noisy["utility"] + 0.1
    assert plain["psnr"] > noisy["psnr"] + 20  # the closed-form attack is exact undefended, not under noise
    assert study["utility_setting"]["train_images"] == 1437
    utility_column = printed.split("\n\n")[1].splitlines()[0].split().index("utility")
    rows = printed.split("\n\n")[1].splitlines()[2:]
    assert [float(row.split()[utility_column]) for row in rows] == pytest.approx(
        [100 * plain["utility"], 100 * noisy["utility"]], rel=1e-3
    )  # printed to 4 digits


def test_training_study_attacks_the_untrained_and_the_trained_victim(tmp_path):
    study = training_study("digits-mlp-b1", "bias", [0, 1], targets=2, out=tmp_path)
    untrained, trained = study.cells
    assert (untrained.victim_sha256, untrained.test_accuracy < 0.3) == (None, True)  # about chance, 10 classes
    assert trained.victim_sha256 is not None and trained.test_accuracy > 0.5
    for cell in study.cells:
        assert cell.targets == 2 and cell.failed == 0 and cell.psnr > 60 and cell.label_accuracy == 1
    first, second = (json.loads((tmp_path / f"epochs-{e}" / "results.json").read_text()) for e in (0, 1))
    assert first["spec_hash"] != second["spec_hash"]  # resumable run folders of different protocols
    written = json.loads((tmp_path / "study.json").read_text())
    assert written["study"] == "training" and [c["epochs"] for c in written["cells"]] == [0, 1]
    assert (tmp_path / "leakage-training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_study_without_the_training_split_reports_the_trained_rows_unavailable(tmp_path, capsys):
    code = main(
        [
            "study",
            "training",
            "--attack",
            "idlg",
            "--task",
            "cifar10-lenetzhu-b1",
            "--epochs",
            "0,1",
            "--targets",
            "1",
            "--max-steps",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    study = json.loads((tmp_path / "study.json").read_text())
    untrained, trained = study["cells"]
    assert code == 0 and untrained["psnr"] is not None and untrained["test_accuracy"] is None  # 20 test images only
    assert (
        trained["psnr"] is None and "cifar10 train images (the whole split) are not available" in trained["unavailable"]
    )
    assert "unavailable: cifar10 train images (the whole split) are not available" in printed


def test_training_study_refuses_negative_epochs(tmp_path):
    with pytest.raises(SpecError, match="from 0 .untrained. on"):
        training_study("digits-mlp-b1", "bias", [0, -1], out=tmp_path)
