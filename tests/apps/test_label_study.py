"""The label study: every rule at every batch size on one protocol, resumable, through the CLI."""

import json
from pathlib import Path

import pytest

from benchmark.apps import label_study as study_module
from benchmark.apps.label_study import label_study
from benchmark.cli import main


def test_the_study_measures_each_rule_and_reports_the_ones_that_do_not_apply(tmp_path: Path):
    study = label_study("lfwmini-lenet5", rules=["idlg", "ilrg", "yin"], batch_sizes=[1, 4], targets=5, out=tmp_path)
    cells = {(c.rule, c.batch_size): c for c in study.cells}
    assert cells[("ilrg", 4)].accuracy == 1.0 and cells[("ilrg", 4)].exact == 1.0 and cells[("ilrg", 4)].targets == 5
    assert cells[("idlg", 1)].accuracy == 1.0
    assert "reads one sample's label" in cells[("idlg", 4)].unavailable and cells[("idlg", 4)].accuracy is None
    stored = json.loads((tmp_path / "study.json").read_text())
    assert len(stored["cells"]) == 6 and (tmp_path / "label-accuracy.png").stat().st_size > 0


def test_the_targets_are_what_the_data_here_holds(tmp_path: Path):
    """Offline, MNIST holds 20 test images: one target of 16, five of 4."""
    study = label_study("mnist-lenet5", rules=["llg"], batch_sizes=[4, 16], out=tmp_path)
    assert [c.targets for c in study.cells] == [5, 1]


def test_a_rerun_keeps_the_cells_it_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    label_study("lfwmini-lenet5", rules=["yin"], batch_sizes=[1, 4], targets=3, out=tmp_path)

    def measured_again(*args):
        raise AssertionError("a finished cell was measured again")

    monkeypatch.setattr(study_module, "measure", measured_again)
    again = label_study("lfwmini-lenet5", rules=["yin"], batch_sizes=[1, 4], targets=3, out=tmp_path)
    assert [c.accuracy for c in again.cells] == [1.0, 1.0]


def test_the_cli_prints_the_table(capsys, tmp_path: Path):
    argv = ["study", "labels", "--task-family", "lfwmini-lenet5", "--rules", "yin,geng", "--batch-sizes", "1,4"]
    assert main([*argv, "--targets", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch_size  rule" in out and "geng" in out and str(tmp_path / "study.json") in out
    assert main([*argv[:-4], "--rules", "ylin", "--out", str(tmp_path)]) == 2
    assert "did you mean 'yin'" in capsys.readouterr().err
