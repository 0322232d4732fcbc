"""How long ``leakbench`` takes to answer, at this checkout and at an earlier commit, side by side.

    python scripts/startup_time.py --before c6cdbb6 --repeats 5

Each command runs as a fresh process (``python -m benchmark.cli ...``, what the ``leakbench`` script
runs), alternating between the two versions so that load from elsewhere lands on both; the table
gives the median wall time in seconds. The earlier commit's ``benchmark/`` and ``tasks/`` are
extracted with ``git archive`` into a temporary folder, which each of its commands runs in (and has
first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["ls", "--help"], ["run", "--help"], ["ls", "attacks"], ["ls", "tasks"])


def _extract(commit: str, folder: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "benchmark", "tasks"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _seconds(source: Path, command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(source), "LEAKBENCH_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *command],
        env=env,
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        versions = {args.before: _extract(args.before, Path(tmp)), "this checkout": ROOT}
        print(f"| command | {' | '.join(f'{name} (s)' for name in versions)} |\n|---|{'---:|' * len(versions)}")
        for command in COMMANDS:
            times: dict[str, list[float]] = {name: [] for name in versions}
            for _ in range(args.repeats):
                for name, source in versions.items():
                    times[name].append(_seconds(source, command))
            medians = " | ".join(f"{statistics.median(t):.2f}" for t in times.values())
            print(f"| `leakbench {' '.join(command)}` | {medians} |", flush=True)


if __name__ == "__main__":
    main()
