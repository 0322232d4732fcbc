"""``leakbench submit``: run an attack under a suite's protocols and write its entries."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.apps.leaderboard.environment import write_constraints
from benchmark.apps.leaderboard.papers import paper_figures
from benchmark.apps.leaderboard.protocol import PROTOCOL_SEED, Protocol, suite_protocols
from benchmark.apps.leaderboard.provenance import GitState, attack_package, git_state
from benchmark.apps.leaderboard.schema import Entry, Environment, FaceEncoder, rows_of, summarize, write_entry
from benchmark.attacks import ATTACKS
from benchmark.core.errors import LeakBenchError, NotApplicableError
from benchmark.pipeline.isolation import Isolation
from benchmark.pipeline.run import run

log = logging.getLogger(__name__)


def environment_of(run_environment: dict[str, Any], git: dict[str, Any], constraints: str | None = None) -> Environment:
    """An entry's environment: what the run recorded (versions, device), the source's git state, and the
    constraints file of the installed versions (:mod:`benchmark.apps.leaderboard.environment`)."""
    return Environment.model_validate(
        {name: run_environment.get(name) for name in Environment.model_fields} | git | {"constraints": constraints}
    )


def entry_from_result(
    result: dict[str, Any],
    protocol: Protocol,
    *,
    source: str,
    git: dict[str, Any],
    picture: bool,
    constraints: str | None = None,
    submitter: str | None = None,
) -> Entry:
    """An unverified entry from a ``results.json`` mapping of a run of ``protocol.spec``: its first
    ``protocol.targets`` targets (each row records the targets it shared its fit with), summarised anew."""
    rows = rows_of(result, protocol.targets)
    return Entry(
        suite=protocol.suite,
        task=result["task"],
        task_version=result["task_version"],
        spec_hash=result["spec_hash"],
        task_spec=protocol.spec.model_dump(mode="json"),
        attack=result["attack"],
        attack_config=result["config"]["attack"],
        attack_package=attack_package(result["attack"]),
        attack_code=result["config"].get("attack_code"),
        seed=result["config"]["seed"],
        restarts=result["config"]["restarts"],
        targets=len(rows),
        protocol_targets=protocol.targets,
        data_origin=result["data_origin"],
        metric_definitions=result.get("metric_definitions", {}),
        face_encoder=face_encoder_of(result["summary"]),
        summary=summarize(rows),
        rows=rows,
        environment=environment_of(result["environment"], git, constraints),
        date=datetime.now(timezone.utc).replace(microsecond=0),
        source=source,
        submitter=submitter,
        paper=paper_figures(result["attack"], result["task"]),
        picture=f"{result['attack']}.png" if picture else None,
    )


def face_encoder_of(summary: dict[str, Any]) -> FaceEncoder | None:
    """The encoder a run's summary names (``reid_backend``, ``reid_weights_sha256``); None without re-id."""
    if summary.get("reid_weights_sha256") is None:
        return None
    return FaceEncoder(backend=summary["reid_backend"], weights_sha256=summary["reid_weights_sha256"])


def _git_record(root: Path, runs: Path, allow_dirty: bool) -> GitState:
    """The git state of the entries to write: a clean commit, unless ``allow_dirty``."""
    state = git_state(ignore=(root, runs))
    trial = "or pass --allow-dirty for a local trial, whose entries leakbench leaderboard check refuses"
    if state.commit is None and not allow_dirty:
        raise LeakBenchError(
            f"leakbench does not run from a git checkout, so an entry could not name the commit of "
            f"its code; submit from a clone of the repository, {trial}"
        )
    if state.uncommitted and not allow_dirty:
        more = len(state.uncommitted) - 5
        listed = ", ".join(state.uncommitted[:5]) + (f" and {more} more" if more > 0 else "")
        raise LeakBenchError(
            f"the leakbench checkout has uncommitted changes ({listed}); commit them first, "
            f"so that the entries' commit holds all of their code, {trial}"
        )
    return state


def submit(
    attack: str,
    suite: str,
    *,
    tasks: Sequence[str] | None = None,
    targets: int | None = None,
    root: Path = Path("leaderboards"),
    runs: Path = Path("runs"),
    logger: str | None = "csv",
    accelerator: str = "cpu",
    fresh: bool = False,
    allow_dirty: bool = False,
    retry_failed: bool = False,
    allow_failed: bool = False,
    isolation: Isolation | None = None,
) -> list[Path]:
    """Run ``attack`` under each protocol of ``suite`` and write one entry per task it applies to.

    The leakbench checkout must have no uncommitted changes (``root`` and ``runs`` aside), so that
    the commit an entry records holds its code; ``allow_dirty`` writes entries marked ``git_dirty``
    instead, for local trials. Each task runs in ``runs/submit-SUITE/TASK/ATTACK``, so an interrupted
    submission resumes (``retry_failed``: recomputing its failed targets). ``targets`` (fewer than the
    protocol's) makes partial entries: shown, never ranked; their run computes the whole fits that
    hold those targets (the protocol's grouping, see :func:`benchmark.pipeline.run.run`), which the full
    submission then resumes. A run with failed targets writes no entry,
    none of the suite's does, unless ``allow_failed`` (its entry then counts them as failed). Returns
    the entry paths written. With ``isolation``, the attack runs in a sandbox (for a submission made
    on someone else's behalf: docs/trust.md).
    """
    if isolation is None:
        ATTACKS.get(attack)  # an unknown name fails before any work
    else:
        ATTACKS.locate(attack)  # the same, loading no plugin
    protocols = [protocol for protocol in suite_protocols(suite, tasks) if protocol.runs(attack)]
    if not protocols:
        raise LeakBenchError(
            f"suite '{suite}' does not run {attack} on {'these tasks' if tasks else 'any task'}; "
            f"see its attacks in tasks/suites.yaml, or give another --suite or --tasks"
        )
    for protocol in protocols:
        if targets is not None and targets > protocol.targets:
            raise LeakBenchError(
                f"--targets {targets} exceeds the {protocol.targets} targets of {protocol.spec.name} "
                f"in suite '{suite}'; give at most {protocol.targets}"
            )
    git = _git_record(root, runs, allow_dirty)
    measured = []
    for protocol in protocols:
        out = runs / f"submit-{suite}" / protocol.spec.name / attack
        try:
            run(
                protocol.spec,
                attack,
                targets=targets if targets is not None else protocol.targets,
                seed=PROTOCOL_SEED,
                max_steps=protocol.max_steps,
                out=out,
                logger=logger,
                accelerator=accelerator,
                fresh=fresh,
                retry_failed=retry_failed,
                isolation=isolation,
                extent=protocol.targets,
            )
        except NotApplicableError as err:
            log.info("skipped %s: %s", protocol.spec.name, err)
            continue
        measured.append((protocol, out, json.loads((out / "results.json").read_text())))
    failing = [
        f"{result['task']} ({result['summary']['failed']} of {result['summary']['targets']} targets)"
        for _, _, result in measured
        if result["summary"]["failed"]
    ]
    if failing and not allow_failed:
        raise LeakBenchError(
            f"targets failed in {', '.join(failing)}, so no entry was written: recompute them with "
            f"--retry-failed, or pass --allow-failed to publish them counted as failed"
        )
    constraints = write_constraints(root) if measured else None
    return [
        write_entry(
            root,
            entry_from_result(
                result,
                protocol,
                source="leakbench submit",
                git=git.record(),
                picture=True,
                constraints=constraints,
                submitter=git.user,
            ),
            (out / "reconstructions.png").read_bytes(),
        )
        for protocol, out, result in measured
    ]
