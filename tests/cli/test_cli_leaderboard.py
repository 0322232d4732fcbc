"""The leaderboard commands end to end: submit, check, verify, build, pull."""

import importlib
import json
import shutil
from pathlib import Path

import pytest
from support import fail_targets, git
from test_cli import _one_line_error as _error
from test_cli import _refused

import benchmark
from benchmark.apps.leaderboard import load_entry, provenance
from benchmark.attacks import ATTACKS
from benchmark.cli import main

COMMITTED = Path(__file__).parents[2] / "leaderboards"


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
    [line] = [line for line in capsys.readouterr().err.strip().splitlines() if f" {path}: " in line]
    assert line.startswith(f"leakbench: check: {path}: summary.metrics.psnr is ")


def test_submit_then_check_then_verify(mini: Path, clean_checkout: Path, capsys):
    commit = git(clean_checkout, "rev-parse", "HEAD")
    git(clean_checkout, "config", "user.name", "Ada Submitter")
    assert main(["submit", "--attack", "idlg", "--suite", "mini", "--logger", "none"]) == 0
    out = capsys.readouterr().out
    path = Path("leaderboards/mini/tiny-cifar/idlg.json")
    assert f"entry: {path}\n" in out and "board: leaderboards/README.md" in out
    entry = load_entry(path)
    assert (entry.targets, entry.protocol_targets, entry.attack_config["max_steps"], entry.seed) == (2, 2, 2, 0)
    assert (entry.environment.git_commit, entry.environment.git_dirty) == (commit, False)
    assert entry.data_origin.startswith("foolbox ")
    assert path.with_name("idlg.png").is_file() and Path("runs/submit-mini/tiny-cifar/idlg/results.json").is_file()
    assert main(["leaderboard", "check"]) == 1
    assert (
        f"leakbench: check: {path}: it is not verified; run `leakbench verify {path} --record`"
        in capsys.readouterr().err
    )

    assert main(["verify", str(path), str(path.parents[1] / "tiny-mnist" / "idlg.json"), "--record"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"{path}: all 2 target(s) re-run: every metric within tolerance",
        f"  code at {commit[:12]}: the same as the entry's commit {commit[:12]} under benchmark/",
    ]
    entry = load_entry(path)
    assert (entry.verification.environment.git_commit, entry.verification.code_changes) == (commit, [])
    assert (entry.submitter, entry.verification.verifier, entry.verified_by) == ("Ada Submitter",) * 2 + (
        "the submitter",
    )
    assert entry.environment.constraints == entry.verification.environment.constraints  # the same environment
    assert Path("leaderboards", entry.environment.constraints).is_file()
    assert f"| {entry.attack_package} |" in Path("leaderboards/README.md").read_text()
    assert "| yes (the submitter) |" in Path("leaderboards/README.md").read_text()
    assert main(["leaderboard", "check"]) == 0  # the boards were rebuilt

    with (clean_checkout / "benchmark" / "attacks" / "idlg.py").open("a") as file:  # the code changed since
        file.write("# an edit\n")
    capsys.readouterr()
    assert main(["verify", str(path), "--targets", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"  code at {commit[:12]}: differs from the entry's commit {commit[:12]} in 1 file(s) under benchmark/, "
        f"among them benchmark/attacks/idlg.py (the attack's module): benchmark/attacks/idlg.py"
    )
    assert _error(capsys, ["verify", str(path), "--record-spread"]).startswith(
        "leakbench: error: a spread is measured with the code the entry ran, and here code at"
    )

    content = json.loads(path.read_text())  # a consistent hand edit: rows and summary moved together
    content["rows"][1]["metrics"]["psnr"][0] += 5.0
    content["summary"]["metrics"]["psnr"] += 2.5
    path.write_text(json.dumps(content))
    capsys.readouterr()
    assert main(["verify", str(path), "--targets", "1"]) == 0  # target 1 is not re-run
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 value(s) moved beyond tolerance" in out
    assert [line.split()[:3] for line in out.splitlines()[-2:]] == [
        ["target", "1", "psnr"],
        ["summary", "psnr", f"{content['summary']['metrics']['psnr']:.5g}"],
    ]


def _rows(path: Path) -> list[dict]:
    """An entry's rows without their wall times, the one field that differs between identical computations."""
    return [{k: v for k, v in row.model_dump().items() if k != "seconds"} for row in load_entry(path).rows]


def test_a_target_gets_the_same_row_from_a_trial_a_resumed_and_a_fresh_submission_and_from_verify(
    mini: Path, clean_checkout: Path
):
    argv = ["submit", "--attack", "dlg", "--suite", "mini", "--tasks", "tiny-cifar", "--logger", "none"]
    path = Path("leaderboards/mini/tiny-cifar/dlg.json")
    assert main(argv + ["--targets", "1"]) == 0  # the guide's trial: the whole group of its target is computed
    trial = _rows(path)
    assert main(argv) == 0  # resumes it: nothing left to compute
    resumed = _rows(path)
    assert main(argv + ["--fresh"]) == 0
    fresh = _rows(path)
    assert len(trial) == 1 and trial[0] == resumed[0] == fresh[0] and resumed == fresh
    assert [row["group"] for row in fresh] == [[0, 1], [0, 1]]
    assert main(["verify", str(path), "--targets", "1"]) == 0  # computes target 0 in its group too
    verified = json.loads(Path("runs/verify-mini/tiny-cifar/dlg/results.json").read_text())["targets"][0]
    assert {key: verified[key] for key in fresh[0]} == fresh[0]
    alone = benchmark.run("tiny-cifar", "dlg", targets=1, max_steps=2, logger=None)  # the control: company matters
    assert alone.targets[0].group == [0] and alone.targets[0].loss != fresh[0]["loss"]


def test_submit_refuses_to_resume_a_run_whose_attack_code_changed(
    mini: Path, clean_checkout: Path, own_package: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    ATTACKS.names()
    monkeypatch.setattr(ATTACKS, "_entries", {**ATTACKS._entries, "mine": importlib.import_module("mine_attack").Mine})
    argv = ["submit", "--attack", "mine", "--suite", "mini", "--tasks", "tiny-mnist", "--logger", "none"]
    assert main(argv + ["--targets", "1"]) == 0
    (own_package / "inner.py").write_text("def project(attack):\n    return None\n")  # its code changed, not its config
    err = _error(capsys, argv)
    assert err == (
        "leakbench: error: runs/submit-mini/tiny-mnist/mine holds a run with a different attack_code "
        "(mine_attack.inner); resume it with the same settings and code, use another --out folder, or pass "
        "--fresh to discard it"
    )
    main(["verify", "leaderboards/mini/tiny-mnist/mine.json"])  # the trial's entry: verify names the cause
    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .endswith(
            "; attack package None (as recorded); the attack's code differs from the entry's in mine_attack.inner"
        )
    )
    assert main(argv + ["--fresh"]) == 0


def test_submit_refuses_uncommitted_code_unless_allowed_and_check_refuses_that_trial(
    mini: Path, clean_checkout: Path, capsys
):
    (clean_checkout / "benchmark" / "attacks" / "mine.py").write_text("")
    err = _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--logger", "none"])
    assert err == (
        "leakbench: error: the leakbench checkout has uncommitted changes (benchmark/attacks/mine.py); commit "
        "them first, so that the entries' commit holds all of their code, or pass --allow-dirty for a local "
        "trial, whose entries leakbench leaderboard check refuses"
    )
    assert not Path("runs").exists()  # refused before any work
    assert (
        main(
            [
                "submit",
                "--attack",
                "dlg",
                "--suite",
                "mini",
                "--tasks",
                "tiny-mnist",
                "--logger",
                "none",
                "--allow-dirty",
            ]
        )
        == 0
    )
    path = Path("leaderboards/mini/tiny-mnist/dlg.json")
    assert load_entry(path).environment.git_dirty is True
    capsys.readouterr()
    assert main(["leaderboard", "check"]) == 1
    assert (
        f"leakbench: check: {path}: it was made from a checkout with uncommitted changes (git_dirty true); "
        f"commit the code and re-submit it"
    ) in capsys.readouterr().err.splitlines()


def test_entries_and_runs_inside_the_checkout_do_not_make_it_dirty(
    mini: Path, clean_checkout: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(clean_checkout)  # a clone of the repository, whose leaderboards/ the entries go to
    for attack in ("dlg", "idlg"):
        assert main(["submit", "--attack", attack, "--suite", "mini", "--tasks", "tiny-mnist", "--logger", "none"]) == 0
        assert load_entry(Path(f"leaderboards/mini/tiny-mnist/{attack}.json")).environment.git_dirty is False


def test_outside_a_git_checkout_submit_says_where_to_submit_from(mini: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr(provenance, "SOURCE", mini)
    err = _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--logger", "none"])
    assert (
        "leakbench does not run from a git checkout, so an entry could not name the commit of its code; submit "
        "from a clone of the repository, or pass --allow-dirty" in err
    )


def test_submit_runs_an_attack_only_on_the_tasks_its_suite_runs_it_on(mini: Path, clean_checkout: Path, capsys):
    (mini.parent / "tasks" / "suites.yaml").write_text(
        "split: {targets: 1, max_steps: 1, attacks: [idlg], task_attacks: {tiny-mnist: [dlg]}, tasks: [tiny-cifar, tiny-mnist]}\n"
    )
    assert main(["submit", "--attack", "dlg", "--suite", "split", "--logger", "none"]) == 0
    assert sorted(Path("leaderboards/split").glob("*/*.json")) == [Path("leaderboards/split/tiny-mnist/dlg.json")]
    err = _error(capsys, ["submit", "--attack", "dlg", "--suite", "split", "--tasks", "tiny-cifar"])
    assert "suite 'split' does not run dlg on these tasks; see its attacks in tasks/suites.yaml" in err


def test_a_partial_submission_is_shown_but_not_ranked(mini: Path, clean_checkout: Path, capsys):
    assert (
        main(
            [
                "submit",
                "--attack",
                "dlg",
                "--suite",
                "mini",
                "--tasks",
                "tiny-mnist",
                "--targets",
                "1",
                "--logger",
                "none",
            ]
        )
        == 0
    )
    assert "entry: leaderboards/mini/tiny-mnist/dlg.json (partial: not ranked)" in capsys.readouterr().out
    assert "| – | dlg (partial) |" in Path("leaderboards/README.md").read_text()


def test_submit_errors_are_one_line(mini: Path, capsys):
    assert "did you mean 'idlg'" in _error(capsys, ["submit", "--attack", "idgl", "--suite", "mini"])
    assert "did you mean 'mini'" in _error(capsys, ["submit", "--attack", "dlg", "--suite", "minu"])
    err = _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--tasks", "tiny-mnst"])
    assert "task 'tiny-mnst' is not in suite 'mini' (did you mean 'tiny-mnist'?)" in err
    assert "give at most 2" in _error(capsys, ["submit", "--attack", "dlg", "--suite", "mini", "--targets", "3"])
    assert "no leaderboard folder" in _error(capsys, ["leaderboard", "build", "--root", "missing"])
    assert "no leaderboard folder missing" in _error(
        capsys, ["leaderboard", "check", "--root", "missing"]
    )  # not "stale"
    for command in (["submit", "--attack", "dlg", "--suite", "mini"], ["verify", "missing.json"]):
        assert _error(capsys, [*command, "--time-limit", "60"]).endswith(
            "--time-limit and --memory-limit limit an isolated attack: add --isolated, or leave them out"
        )
        assert "--memory-limit: must be a number of GiB >= 2, got '1'" in _refused(
            capsys, [*command, "--memory-limit", "1"]
        )


def test_submit_refuses_failed_targets_unless_told_to_publish_them(mini: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    argv = ["submit", "--attack", "dlg", "--suite", "mini", "--logger", "none"]
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        err = _error(capsys, argv)
    assert err == (
        "leakbench: error: targets failed in tiny-cifar (1 of 2 targets), tiny-mnist (1 of 2 targets), so "
        "no entry was written: recompute them with --retry-failed, or pass --allow-failed to publish them "
        "counted as failed"
    )
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
