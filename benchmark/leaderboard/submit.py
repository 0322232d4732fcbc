"""``leakbench submit``: run an attack under a suite's protocols and write its entries."""

from __future__ import annotations

import json
import logging
import subprocess
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Sequence

import benchmark
from benchmark.attacks import ATTACKS
from benchmark.errors import LeakBenchError, NotApplicableError
from benchmark.leaderboard.papers import paper_figures
from benchmark.leaderboard.protocol import PROTOCOL_SEED, Protocol, suite_protocols
from benchmark.leaderboard.schema import Entry, Environment, rows_of, summarize, write_entry
from benchmark.runner import run

log = logging.getLogger(__name__)

NO_GIT = {"git_commit": None, "git_dirty": None}


def git_state() -> dict[str, Any]:
    """Commit of the leakbench source and whether it has uncommitted changes; None outside a checkout."""
    source = Path(benchmark.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return NO_GIT
    try:
        commit, status = _git(source, "rev-parse", "HEAD"), _git(source, "status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return NO_GIT
    return {"git_commit": commit, "git_dirty": bool(status)}


def _git(source: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=True).stdout.strip()


def environment_of(run_environment: dict[str, Any], git: dict[str, Any]) -> Environment:
    """An entry's environment: what the run recorded (versions, device) and the source's git state."""
    return Environment.model_validate({name: run_environment.get(name) for name in Environment.model_fields} | git)


def attack_package(attack: str) -> str | None:
    """'distribution version' of the package that provides ``attack``; None if it cannot be told."""
    for point in entry_points(group="leakbench.attacks", name=attack):
        return f"{point.dist.name} {point.dist.version}" if point.dist else None
    if attack in ATTACKS and ATTACKS.get(attack).__module__.startswith("benchmark."):
        return f"leakbench {benchmark.__version__}"
    return None


def entry_from_result(result: dict[str, Any], protocol: Protocol, *, source: str, git: dict[str, Any],
                      picture: bool) -> Entry:
    """An unverified entry from a ``results.json`` mapping of a run of ``protocol.spec``: its first
    ``protocol.targets`` targets (a target's result does not depend on the others), summarised anew."""
    rows = rows_of(result, protocol.targets)
    return Entry(suite=protocol.suite, task=result["task"], task_version=result["task_version"],
                 spec_hash=result["spec_hash"], task_spec=protocol.spec.model_dump(mode="json"),
                 attack=result["attack"], attack_config=result["config"]["attack"],
                 attack_package=attack_package(result["attack"]), seed=result["config"]["seed"],
                 restarts=result["config"]["restarts"], targets=len(rows), protocol_targets=protocol.targets,
                 data_origin=result["data_origin"], summary=summarize(rows), rows=rows,
                 environment=environment_of(result["environment"], git), date=datetime.now(timezone.utc).replace(microsecond=0),
                 source=source, paper=paper_figures(result["attack"], result["task"]),
                 picture=f"{result['attack']}.png" if picture else None)


def submit(attack: str, suite: str, *, tasks: Sequence[str] | None = None, targets: int | None = None,
           root: Path = Path("leaderboards"), runs: Path = Path("runs"), logger: str | None = "csv",
           accelerator: str = "cpu", fresh: bool = False, retry_failed: bool = False,
           allow_failed: bool = False) -> list[Path]:
    """Run ``attack`` under each protocol of ``suite`` and write one entry per task it applies to.

    Each task runs in ``runs/submit-SUITE/TASK/ATTACK``, so an interrupted submission resumes
    (``retry_failed``: recomputing its failed targets). ``targets`` (fewer than the protocol's) makes
    partial entries: shown, never ranked. A run with failed targets writes no entry, none of the
    suite's does, unless ``allow_failed`` (its entry then counts them as failed). Returns the entry
    paths written.
    """
    ATTACKS.get(attack)  # an unknown name fails before any work
    protocols = suite_protocols(suite, tasks)
    for protocol in protocols:
        if targets is not None and targets > protocol.targets:
            raise LeakBenchError(f"--targets {targets} exceeds the {protocol.targets} targets of {protocol.spec.name} "
                                 f"in suite '{suite}'; give at most {protocol.targets}")
    measured = []
    for protocol in protocols:
        out = runs / f"submit-{suite}" / protocol.spec.name / attack
        try:
            run(protocol.spec, attack, targets=targets if targets is not None else protocol.targets, seed=PROTOCOL_SEED,
                max_steps=protocol.max_steps, out=out, logger=logger, accelerator=accelerator, fresh=fresh,
                retry_failed=retry_failed)
        except NotApplicableError as err:
            log.info("skipped %s: %s", protocol.spec.name, err)
            continue
        measured.append((protocol, out, json.loads((out / "results.json").read_text())))
    failing = [f"{result['task']} ({result['summary']['failed']} of {result['summary']['targets']} targets)"
               for _, _, result in measured if result["summary"]["failed"]]
    if failing and not allow_failed:
        raise LeakBenchError(f"targets failed in {', '.join(failing)}, so no entry was written: recompute them with "
                             f"--retry-failed, or pass --allow-failed to publish them counted as failed")
    return [write_entry(root, entry_from_result(result, protocol, source="leakbench submit", git=git_state(),
                                                picture=True), (out / "reconstructions.png").read_bytes())
            for protocol, out, result in measured]
