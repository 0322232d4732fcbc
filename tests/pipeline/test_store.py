"""Durability and resume: a killed run loses no finished target and recomputes none of them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import fail_targets, make_spec

import benchmark
from benchmark.cli import main
from benchmark.core.errors import LeakBenchError

TINY = "include: cifar10-lenetzhu-b1\nname: tiny\ndata: {image_size: 16}\n"


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "targets.jsonl").read_text().splitlines()]


def _command(spec: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmark.cli",
        "run",
        "--task",
        str(spec),
        "--attack",
        "dlg",
        "--targets",
        "6",
        "--max-steps",
        "25",
        "--problems",
        "2",
        "--out",
        str(out),
        "--logger",
        "none",
        "--no-progress",
    ]


def test_sigkill_then_rerun_resumes_without_loss_or_recomputation(tmp_path: Path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(spec, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "targets.jsonl").exists() and len((out / "targets.jsonl").read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed; give it more steps"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = (out / "targets.jsonl").read_text()
    finished_before = len(before.splitlines()) - (not before.endswith("\n"))
    assert 2 <= finished_before < 6

    rerun = subprocess.run(_command(spec, out), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{finished_before} of 6 targets already finished" in rerun.stderr
    rows = _rows(out)
    assert sorted(r["target"] for r in rows) == list(range(6))  # each target exactly once
    assert (out / "targets.jsonl").read_text().startswith(before[: before.rfind("\n") + 1])  # kept, not redone

    reference = tmp_path / "uninterrupted"
    assert subprocess.run(_command(spec, reference), env=env, capture_output=True, timeout=600).returncode == 0
    by_target = {r["target"]: r["metrics"] for r in _rows(reference)}
    assert {r["target"]: r["metrics"] for r in rows} == by_target
    assert json.loads((out / "results.json").read_text())["summary"]["targets"] == 6


def test_a_torn_last_line_is_dropped_and_recomputed(tmp_path: Path, caplog):
    first = benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    lines = (tmp_path / "targets.jsonl").read_text().splitlines()
    (tmp_path / "targets.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    again = benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    assert "incomplete or corrupt" in caplog.text
    assert [r["target"] for r in _rows(tmp_path)] == [0, 1]
    assert again.targets[1].metrics == first.targets[1].metrics


@pytest.mark.parametrize("attack", ["dlg", "inverting_gradients"])  # IG's config holds a tuple, recorded as a list
def test_finished_targets_are_read_back_not_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: str):
    benchmark.run(make_spec(), attack, targets=2, max_steps=1, out=tmp_path, logger=None)
    monkeypatch.setattr(
        "benchmark.pipeline.attack.attack_targets", lambda *a, **k: pytest.fail("recomputed a finished target")
    )
    assert benchmark.run(make_spec(), attack, targets=2, max_steps=1, out=tmp_path, logger=None).summary["targets"] == 2


def test_a_different_config_is_refused_unless_fresh(tmp_path: Path):
    benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, out=tmp_path, logger=None)
    with pytest.raises(LeakBenchError, match="different attack_config.*--fresh"):
        benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, out=tmp_path, logger=None)
    with pytest.raises(LeakBenchError, match="different spec_hash"):
        benchmark.run(make_spec(victim={"seed": 7}), "dlg", targets=1, max_steps=1, out=tmp_path, logger=None)
    result = benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, out=tmp_path, logger=None, fresh=True)
    assert result.config["attack"]["max_steps"] == 2 and len(_rows(tmp_path)) == 1


def test_unwritable_output_folder_is_one_line(capsys, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--task", "cifar10-lenetzhu-b1", "--attack", "dlg", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leakbench: error: cannot write to the output folder") and "\n" not in err


def test_a_failing_target_is_marked_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog):
    fail_targets(monkeypatch, 1, error=FloatingPointError("loss became NaN"))
    result = benchmark.run(make_spec(), "dlg", targets=3, max_steps=1, out=tmp_path, logger=None)
    assert [t.failed for t in result.targets] == [None, "FloatingPointError: loss became NaN", None]
    (warning,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert "target 1 failed" in warning.getMessage() and "raise error" in caplog.text  # where it raised
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert summary["failed"] == 1 and summary["targets"] == 3
    finished = [t for t in result.targets if t.failed is None]
    assert summary["psnr"] == pytest.approx(sum(t.metrics["psnr"][0] for t in finished) / 2)


def test_a_run_record_that_is_not_a_json_object_is_one_line(tmp_path: Path):
    benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, out=tmp_path, logger=None)
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(
        LeakBenchError,
        match=r"run.json: run record must be a JSON mapping of named keys, got list; "
        r"delete the folder or pass --fresh",
    ):
        benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, out=tmp_path, logger=None)


def test_a_reconstruction_of_another_shape_is_recomputed_and_the_other_rows_stay_byte_for_byte(tmp_path: Path):
    benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    lines = (tmp_path / "targets.jsonl").read_bytes().splitlines(keepends=True)
    torch.save(torch.zeros(2, 2), tmp_path / "reconstructions" / "target-0000.pt")
    result = benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    after = (tmp_path / "targets.jsonl").read_bytes().splitlines(keepends=True)
    assert after[0] == lines[1] and json.loads(after[1])["target"] == 0 and len(after) == 2
    assert torch.load(tmp_path / "reconstructions" / "target-0000.pt").shape == (1, 3, 16, 16)
    assert result.targets[0].metrics == json.loads(lines[0])["metrics"]
