"""ruff's linter and formatter (their settings: pyproject.toml's [tool.ruff]) hold the whole tree."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
TREE = ["benchmark", "tests", "scripts", "examples"]


def _ruff(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *arguments, *TREE], cwd=ROOT, capture_output=True, text=True)


def test_the_linter_finds_nothing():
    done = _ruff("check", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted():
    done = _ruff("format", "--check", "--no-cache")
    assert done.returncode == 0, "run `ruff format`:\n" + done.stdout + done.stderr
