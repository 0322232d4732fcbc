"""The label board: recorded from a clean commit, rendered on the boards, refused where it cannot be
traced, and reproduced: the committed files' cells are what the study computes now."""

import json
import subprocess
from pathlib import Path

import pytest

from benchmark.apps.label_study import label_study
from benchmark.apps.leaderboard import build, check
from benchmark.apps.leaderboard import labels as label_board
from benchmark.apps.leaderboard.provenance import GitState
from benchmark.core.errors import LeakBenchError

COMMITTED = Path(__file__).parents[3] / "leaderboards"
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=COMMITTED).stdout.strip()


def _small_study(tmp_path: Path):
    return label_study("lfwmini-lenet5", rules=["idlg", "ilrg"], batch_sizes=[1, 4], targets=2, out=tmp_path / "study")


def test_a_recorded_board_renders_and_passes_check(tmp_path: Path):
    root = tmp_path / "leaderboards"
    label_board.record(_small_study(tmp_path), root, "leakbench study labels --task-family lfwmini-lenet5", HEAD)
    build(root)
    readme = (root / "README.md").read_text()
    assert "## Label recovery rules" in readme and "### lfwmini-lenet5" in readme
    assert "| ilrg | 100.0 (100) | 100.0 (100) |" in readme and "| idlg | 100.0 (100) | n/a |" in readme
    assert f"commit `{HEAD[:12]}`" in readme and "Label recovery rules" in (root / "site/index.html").read_text()
    assert check(root) == []


def test_a_board_whose_commit_is_not_here_is_refused(tmp_path: Path):
    root = tmp_path / "leaderboards"
    label_board.record(_small_study(tmp_path), root, "leakbench study labels", "0" * 40)
    build(root)
    assert any("its commit 000000000000 is not in this repository" in p for p in check(root))


def test_recording_needs_a_clean_committed_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(label_board, "git_state", lambda ignore=(): GitState(HEAD, ("benchmark/x.py",)))
    with pytest.raises(LeakBenchError, match="a label board comes from a clean, committed tree; commit or stash"):
        label_board.require_clean_tree(tmp_path)


def test_the_boards_hold_label_boards():
    assert len(list((COMMITTED / "labels").glob("*.json"))) >= 3


@pytest.mark.parametrize("path", sorted((COMMITTED / "labels").glob("*.json")), ids=lambda p: p.stem)
def test_the_committed_label_boards_reproduce(path: Path, tmp_path: Path):
    stored = json.loads(path.read_text())
    rules = sorted({c["rule"] for c in stored["cells"]})
    sizes = sorted({c["batch_size"] for c in stored["cells"]})
    targets = max(c["targets"] for c in stored["cells"])
    again = label_study(stored["family"], rules=rules, batch_sizes=sizes, targets=targets, out=tmp_path)
    now = {(c.rule, c.batch_size): (c.targets, c.accuracy, c.exact, c.unavailable) for c in again.cells}
    for cell in stored["cells"]:
        key = (cell["rule"], cell["batch_size"])
        assert now[key] == (cell["targets"], cell["accuracy"], cell["exact"], cell["unavailable"]), key
