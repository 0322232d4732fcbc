"""A snapshot of what a refactoring must not change, as one JSON on stdout.

The help text of every command, the names in every registry, every task's spec hash, the suite
names, and a short iDLG run (its files, run.json and results.json, with the seconds, the environment
and the attack's code identity masked). Run it before and after a change and diff the two outputs:
``python scripts/invariants.py > before.json``.
"""

import contextlib
import importlib
import io
import json
import sys
import tempfile
from pathlib import Path

REGISTRIES = {  # registry -> the modules that have held it, newest first
    "ATTACKS": ["benchmark.attacks"],
    "DATASETS": ["benchmark.data"],
    "MODELS": ["benchmark.models"],
    "METRICS": ["benchmark.metrics"],
    "DEFENSES": ["benchmark.defenses"],
    "LOGGERS": ["benchmark.pipeline.loggers", "benchmark.loggers"],
    "ENCODERS": ["benchmark.metrics.reid"],
    "CRITERIA": ["benchmark.apps.study", "benchmark.study"],
    "TASKS": ["benchmark.protocol.loading", "benchmark.spec"],
    "PROTOCOLS": ["benchmark.fl.updates", "benchmark.victim"],
}
MASKED = {"seconds", "seconds_per_target", "environment", "attack_code", "started", "finished", "duration"}


def _registry(name):
    for module in REGISTRIES[name]:
        with contextlib.suppress(ImportError):
            return getattr(importlib.import_module(module), name)
    raise ImportError(name)


def _help(argv):
    from benchmark.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv + ["--help"])
    return out.getvalue()


def _masked(value):
    if isinstance(value, dict):
        return {k: "<masked>" if k in MASKED else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def snapshot():
    from benchmark.cli import main
    from benchmark.pipeline.tasks import load_task
    from benchmark.protocol.loading import spec_hash, suite_names

    commands = [
        [],
        ["run"],
        ["rescore"],
        ["ls"],
        ["spec"],
        ["perf"],
        ["bench"],
        ["submit"],
        ["verify"],
        ["leaderboard"],
        ["leaderboard", "build"],
        ["leaderboard", "check"],
        ["leaderboard", "pull"],
        ["study"],
        ["study", "batch-size"],
        ["study", "defense"],
        ["study", "training"],
        ["victim"],
        ["victim", "train"],
        ["analyze"],
    ]
    found = {"help": {" ".join(c) or "leakbench": _help(c) for c in commands}}
    found["registries"] = {name: _registry(name).names() for name in REGISTRIES}
    found["spec_hashes"] = {task: spec_hash(load_task(task)) for task in _registry("TASKS").names()}
    found["suites"] = suite_names()
    with tempfile.TemporaryDirectory() as out:
        with contextlib.redirect_stdout(io.StringIO()):
            main(
                [
                    "run",
                    "--task",
                    "digits-lenet5-b1",
                    "--attack",
                    "idlg",
                    "--targets",
                    "2",
                    "--max-steps",
                    "5",
                    "--out",
                    out,
                    "--logger",
                    "csv",
                ]
            )
        root = Path(out)
        found["run_files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        for name in ("run.json", "results.json"):
            found[name] = [_masked(json.loads(p.read_text())) for p in sorted(root.rglob(name))]
    return found


if __name__ == "__main__":
    json.dump(snapshot(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
