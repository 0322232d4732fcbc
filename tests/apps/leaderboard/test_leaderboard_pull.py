from pathlib import Path

import pytest
import wandb
from synthetic import fake_result

from benchmark.apps.leaderboard.pull import pull
from benchmark.apps.leaderboard.schema import load_entry
from benchmark.core.errors import LeakBenchError
from benchmark.pipeline.loggers import WANDB_RESULT_KEY


class FakeRun:
    def __init__(self, run_id: str, result: dict | None, state: str = "finished") -> None:
        self.id, self.state = run_id, state
        self.summary = {WANDB_RESULT_KEY: result} if result is not None else {}


class FakeApi:
    """Stands in for ``wandb.Api``: the boundary where the network would be."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs = runs

    def runs(self, path: str) -> list[FakeRun]:
        assert path == "team/leakbench"
        return self._runs


def _use(monkeypatch: pytest.MonkeyPatch, runs: list[FakeRun]) -> None:
    monkeypatch.setattr(wandb, "Api", lambda timeout: FakeApi(runs))


def test_pull_writes_entries_for_runs_measured_under_the_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    other_protocol = fake_result(attack="idlg")
    other_protocol["spec_hash"] = "f" * 64
    other_task = fake_result(attack="idlg")
    other_task["task"] = "not-in-the-suite"
    _use(
        monkeypatch,
        [
            FakeRun("r1", fake_result(psnr=(20.0, 30.0, 40.0, 90.0))),  # 4 targets: the first 3 count
            FakeRun("r2", fake_result(attack="idlg"), state="running"),
            FakeRun("r3", None),
            FakeRun("r4", other_protocol),
            FakeRun("r5", other_task),
        ],
    )
    [path] = pull("team/leakbench", "quick", root=tmp_path)
    entry = load_entry(path)
    assert path == tmp_path / "quick" / "mnist-lenetzhu-b1" / "dlg.json"
    assert entry.targets == 3 and entry.summary.metrics["psnr"] == pytest.approx(30.0)
    assert entry.source == "wandb:team/leakbench/r1" and entry.picture is None and not entry.verified
    assert entry.environment.git_commit is None


def test_pull_keeps_existing_entries_unless_told_to_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _use(monkeypatch, [FakeRun("r1", fake_result())])
    pull("team/leakbench", "quick", root=tmp_path)
    _use(monkeypatch, [FakeRun("r2", fake_result(psnr=(50.0, 50.0, 50.0)))])
    assert pull("team/leakbench", "quick", root=tmp_path) == []
    [path] = pull("team/leakbench", "quick", root=tmp_path, replace=True)
    assert load_entry(path).source == "wandb:team/leakbench/r2"


def test_an_unreachable_wandb_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch):
    def offline(timeout):
        raise wandb.errors.CommError("Failed to connect:\nname resolution failed")

    monkeypatch.setattr(wandb, "Api", offline)
    with pytest.raises(LeakBenchError) as info:
        pull("team/leakbench", "quick")
    assert str(info.value) == (
        "cannot read the W&B runs of team/leakbench (Failed to connect: name resolution failed); "
        "check the network, `wandb login` and the ENTITY/PROJECT name"
    )


def test_without_credentials_the_real_api_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for variable in ("HOME", "WANDB_CONFIG_DIR", "NETRC"):
        monkeypatch.setenv(variable, str(tmp_path / "nothing"))
    with pytest.raises(LeakBenchError, match=r"^cannot read the W&B runs of team/leakbench \(.*\); check the network"):
        pull("team/leakbench", "quick")


def test_a_malformed_project_is_refused():
    with pytest.raises(LeakBenchError, match="'leakbench' is not a W&B project; give it as ENTITY/PROJECT"):
        pull("leakbench", "quick")
