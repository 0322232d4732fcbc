"""The example plugin (examples/plugin-attack) installs offline and reaches a board through the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.apps.leaderboard import load_entry
from benchmark.attacks import ATTACKS
from benchmark.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "plugin-attack"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip-install the example into a folder on sys.path, without network (no index, no build isolation:
    its build backend, hatchling, comes with the test extra), and let the registry find it."""
    pytest.importorskip("hatchling", reason="the example builds with hatchling: pip install -e '.[test]'")
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    monkeypatch.syspath_prepend(str(target))
    ATTACKS.names()  # built-ins first; the plugin arrives on the next discovery, through its entry point
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))
    monkeypatch.setattr(ATTACKS, "_plugins", set(ATTACKS._plugins))
    monkeypatch.setattr(ATTACKS, "_discovered", False)


def test_the_example_plugin_runs_and_reaches_a_board(installed_plugin, mini: Path, clean_checkout: Path, capsys):
    assert main(["ls", "attacks"]) == 0
    assert "adam-dlg " in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                "--task",
                "tiny-mnist",
                "--attack",
                "adam-dlg",
                "--targets",
                "1",
                "--max-steps",
                "3",
                "--out",
                "runs/plugin",
                "--logger",
                "none",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "adam-dlg" in capsys.readouterr().out
    assert main(["submit", "--attack", "adam-dlg", "--suite", "mini", "--logger", "none"]) == 0
    entry = load_entry(Path("leaderboards/mini/tiny-mnist/adam-dlg.json"))
    assert entry.attack_package == "leakbench-adam-dlg 0.1.0" and entry.attack_config["lr"] == 0.1
    assert "| adam-dlg |" in Path("leaderboards/README.md").read_text()
    capsys.readouterr()
    assert main(["verify", *map(str, sorted(Path("leaderboards/mini").glob("*/adam-dlg.json"))), "--record"]) == 0
    assert "; attack package leakbench-adam-dlg 0.1.0 (as recorded)" in capsys.readouterr().out.splitlines()[1]
    assert main(["leaderboard", "check"]) == 0  # its code is the package's, not a file of the checkout


BROKEN_ENTRY_POINT = "adam-dgl = leakbench_adm:AdamDLG"  # the module name mistyped


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (its dist-info on sys.path, as pip leaves it) whose entry point names a
    module that does not exist; every command then starts from a fresh discovery."""
    site = tmp_path / "broken-site"
    info = site / "leakbench_broken-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leakbench-broken\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[leakbench.attacks]\n{BROKEN_ENTRY_POINT}\n")
    monkeypatch.syspath_prepend(str(site))
    ATTACKS.names()
    builtins = dict(ATTACKS._entries)
    monkeypatch.setattr(ATTACKS, "_entries", builtins)
    monkeypatch.setattr(ATTACKS, "_broken", {})
    return site


def _rediscover(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ATTACKS, "_entries", {k: v for k, v in ATTACKS._entries.items() if k != "adam-dgl"})
    monkeypatch.setattr(ATTACKS, "_broken", {})
    monkeypatch.setattr(ATTACKS, "_plugins", ATTACKS._plugins - {"adam-dgl"})
    monkeypatch.setattr(ATTACKS, "_discovered", False)


REPORT = (
    f"attack plugin skipped: its entry point '{BROKEN_ENTRY_POINT}' (group leakbench.attacks, package "
    f"leakbench-broken 0.1.0) failed to load: ModuleNotFoundError: No module named 'leakbench_adm'; fix the "
    f"entry point or the package, or uninstall it"
)
BUILT_IN_COMMANDS = [
    ["ls", "attacks"],
    ["ls", "tasks"],
    ["spec", "tiny-mnist"],
    [
        "run",
        "--task",
        "tiny-mnist",
        "--attack",
        "idlg",
        "--targets",
        "1",
        "--max-steps",
        "1",
        "--out",
        "runs/idlg",
        "--logger",
        "none",
        "--no-progress",
    ],
    ["bench", "--suite", "mini", "--attacks", "bias,idlg", "--out", "runs/bench"],
    ["submit", "--attack", "idlg", "--suite", "mini", "--tasks", "tiny-mnist", "--logger", "none"],
    ["verify", "leaderboards/mini/tiny-mnist/idlg.json", "--targets", "1"],
    ["rescore", "runs/idlg"],
    ["leaderboard", "build"],
    ["analyze", "--model", "fcn3", "--input-shape", "1,8,8"],
]


def test_a_broken_plugin_is_reported_in_one_line_and_every_built_in_command_still_works(
    broken_plugin, mini: Path, clean_checkout: Path, capsys, caplog, monkeypatch: pytest.MonkeyPatch
):
    for argv in BUILT_IN_COMMANDS:
        _rediscover(monkeypatch)
        caplog.clear()
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        reports = [r.getMessage() for r in caplog.records if "plugin skipped" in r.getMessage()]
        assert reports in ([REPORT], []), argv  # once, where the command looked attacks up
        out = capsys.readouterr().out
        if argv == ["ls", "attacks"]:
            assert reports and "idlg " in out
            [line] = [line for line in out.splitlines() if line.startswith("adam-dgl ")]
            assert "BROKEN: its entry point 'adam-dgl = leakbench_adm:AdamDLG'" in line
    _rediscover(monkeypatch)
    assert main(["run", "--task", "tiny-mnist", "--attack", "adam-dgl"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"leakbench: error: attack 'adam-dgl' cannot be used: {REPORT.removeprefix('attack plugin skipped: ')}"
    )


def test_the_report_of_a_broken_plugin_is_one_line_on_stderr(broken_plugin):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken_plugin), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "ls", "attacks"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0 and done.stderr == REPORT + "\n"
    assert "dlg " in done.stdout and "BROKEN" in done.stdout
