"""The example plugin (examples/plugin-attack) installs offline and reaches a board through the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.attacks import ATTACKS
from benchmark.cli import main
from benchmark.leaderboard import load_entry


EXAMPLE = Path(__file__).parent.parent / "examples" / "plugin-attack"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip-install the example into a folder on sys.path, without network (no index, no build isolation:
    its build backend, hatchling, comes with the test extra), and let the registry find it."""
    pytest.importorskip("hatchling", reason="the example builds with hatchling: pip install -e '.[test]'")
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--target", str(target), str(EXAMPLE)], capture_output=True, text=True,
                             env={**os.environ, "PIP_NO_INDEX": "1"}, timeout=300)
    assert install.returncode == 0, install.stderr
    monkeypatch.syspath_prepend(str(target))
    ATTACKS.names()  # built-ins first; the plugin arrives on the next discovery, through its entry point
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))
    monkeypatch.setattr(ATTACKS, "_discovered", False)


def test_the_example_plugin_runs_and_reaches_a_board(installed_plugin, mini: Path, clean_checkout: Path, capsys):
    assert main(["ls", "attacks"]) == 0
    assert "adam-dlg " in capsys.readouterr().out
    assert main(["run", "--task", "tiny-mnist", "--attack", "adam-dlg", "--targets", "1", "--max-steps", "3",
                 "--out", "runs/plugin", "--logger", "none", "--no-progress"]) == 0
    assert "adam-dlg" in capsys.readouterr().out
    assert main(["submit", "--attack", "adam-dlg", "--suite", "mini", "--logger", "none"]) == 0
    entry = load_entry(Path("leaderboards/mini/tiny-mnist/adam-dlg.json"))
    assert entry.attack_package == "leakbench-adam-dlg 0.1.0" and entry.attack_config["lr"] == 0.1
    assert "| adam-dlg |" in Path("leaderboards/README.md").read_text()
    capsys.readouterr()
    assert main(["verify", *map(str, sorted(Path("leaderboards/mini").glob("*/adam-dlg.json"))), "--record"]) == 0
    assert "; attack package leakbench-adam-dlg 0.1.0 (as recorded)" in capsys.readouterr().out.splitlines()[1]
    assert main(["leaderboard", "check"]) == 0  # its code is the package's, not a file of the checkout
