"""The leaderboard commands end to end: submit, check, verify, build, pull."""

import json
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.leaderboard import load_entry

from support import fail_targets
from test_cli import _one_line_error as _error

COMMITTED = Path(__file__).parent.parent / "leaderboards"


def test_the_committed_boards_pass_check(capsys):
    assert main(["leaderboard", "check", "--root", str(COMMITTED)]) == 0
    assert "every entry valid, boards up to date" in capsys.readouterr().out


def test_check_fails_on_a_hand_edited_metric_in_the_committed_boards(tmp_path: Path, capsys):
    root = tmp_path / "leaderboards"
    shutil.copytree(COMMITTED, root)
    path = sorted(root.glob("quick/*/*.json"))[0]
    content = json.loads(path.read_text())
    content["summary"]["metrics"]["psnr"] += 1.0
    path.write_text(json.dumps(content, indent=2))
    assert main(["leaderboard", "check", "--root", str(root)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"leakbench: check: {path}: summary.metrics.psnr is ")


def test_submit_then_check_then_verify(mini: Path, capsys):
    assert main(["submit", "--attack", "idlg", "--suite", "mini", "--logger", "none"]) == 0
    out = capsys.readouterr().out
    path = Path("leaderboards/mini/tiny-cifar/idlg.json")
    assert f"entry: {path}\n" in out and "board: leaderboards/README.md" in out
    entry = load_entry(path)
    assert (entry.targets, entry.protocol_targets, entry.attack_config["max_steps"], entry.seed) == (2, 2, 2, 0)
    assert path.with_name("idlg.png").is_file() and Path("runs/submit-mini/tiny-cifar/idlg/results.json").is_file()
    assert main(["leaderboard", "check"]) == 0

    assert main(["verify", str(path), "--record"]) == 0
    assert "all 2 target(s) re-run: every metric within tolerance" in capsys.readouterr().out
    assert load_entry(path).verified and main(["leaderboard", "check"]) == 0  # the boards were rebuilt

    content = json.loads(path.read_text())  # a consistent hand edit: rows and summary moved together
    content["rows"][1]["metrics"]["psnr"][0] += 5.0
    content["summary"]["metrics"]["psnr"] += 2.5
    path.write_text(json.dumps(content))
    capsys.readouterr()
    assert main(["verify", str(path), "--targets", "1"]) == 0  # target 1 is not re-run
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 value(s) moved beyond tolerance" in out
    assert [line.split()[:3] for line in out.splitlines()[-2:]] == [["target", "1", "psnr"], ["summary", "psnr", f"{content['summary']['metrics']['psnr']:.5g}"]]


def test_a_partial_submission_is_shown_but_not_ranked(mini: Path, capsys):
    assert main(["submit", "--attack", "dlg", "--suite", "mini", "--tasks", "tiny-mnist", "--targets", "1",
                 "--logger", "none"]) == 0
    assert "entry: leaderboards/mini/tiny-mnist/dlg.json (partial: not ranked)" in capsys.readouterr().out
    assert "| – | dlg (partial) |" in Path("leaderboards/README.md").read_text()


def test_submit_errors_are_one_line(mini: Path, capsys):
    assert "did you mean 'idlg'" in _error(capsys, ["submit", "--attack", "idgl", "--suite", "mini"])
    assert "did you mean 'mini'" in _error(capsys, ["submit", "--attack", "dlg", "--suite", "minu"])
    err = _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--tasks", "tiny-mnst"])
    assert "task 'tiny-mnst' is not in suite 'mini' (did you mean 'tiny-mnist'?)" in err
    assert "give at most 2" in _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--targets", "3"])
    assert "no leaderboard folder" in _error(capsys, ["leaderboard", "build", "--root", "missing"])
    assert "no leaderboard folder missing" in _error(capsys, ["leaderboard", "check", "--root", "missing"])  # not "stale"


def test_submit_refuses_failed_targets_unless_told_to_publish_them(mini: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    argv = ["submit", "--attack", "dlg", "--suite", "mini", "--logger", "none"]
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        err = _error(capsys, argv)
    assert err == ("leakbench: error: targets failed in tiny-cifar (1 of 2 targets), tiny-mnist (1 of 2 targets), so "
                   "no entry was written: recompute them with --retry-failed, or pass --allow-failed to publish them "
                   "counted as failed")
    assert not Path("leaderboards").exists()
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        assert main(argv + ["--allow-failed"]) == 0  # the failures are read back from the run folders
    assert load_entry(Path("leaderboards/mini/tiny-cifar/dlg.json")).summary.failed == 1
    assert main(argv + ["--retry-failed"]) == 0
    assert load_entry(Path("leaderboards/mini/tiny-cifar/dlg.json")).summary.failed == 0


def test_pull_offline_is_one_line(mini: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    import wandb

    def offline(timeout):
        raise wandb.errors.CommError("Failed to connect")

    monkeypatch.setattr(wandb, "Api", offline)
    err = _error(capsys, ["leaderboard", "pull", "--wandb", "team/leakbench", "--suite", "mini"])
    assert "cannot read the W&B runs of team/leakbench (Failed to connect)" in err
