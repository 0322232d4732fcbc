"""``leakbench verify``: re-run an entry and compare its metrics within stated tolerances.

A re-run uses the entry's recorded attack config, seed, restarts and task (which must not have
changed since: same spec hash), and computes each target in the same group as the entry (the
protocol's grouping over its targets, :func:`benchmark.pipeline.run.run`): a re-run of the first N
targets computes the whole groups that hold them. Each target's metric means are compared (and the
group it was computed in, where the entry records it), and the summary too when every target was
re-run. A value may move by max(abs, rel · |recorded|) (each metric's
:class:`~benchmark.metrics.Tolerance`, registered with it), or by the entry's own measured spread
where it records a larger one: optimisation attacks are deterministic for a seed on one kind of
hardware and one set of library versions (re-runs there are bit-identical), but floating-point
differences between CPUs, GPUs and library versions move them, chaotic ones (an L-BFGS run near
float precision, a diverging DLG) by more than a metric's tolerance. ``--record-spread`` measures
that: a complete re-run of the entry's own code in another environment, whose move per target and
metric (and the summary's) the entry then records (:class:`~benchmark.apps.leaderboard.schema.Spread`);
each place is then allowed its own move, so a target that converged on one CPU and diverged on
another widens its own tolerance, not the other targets' or the summary's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmark.apps.leaderboard.environment import compare_environment, environment_changes, write_constraints
from benchmark.apps.leaderboard.protocol import protocol_of, same_task
from benchmark.apps.leaderboard.provenance import CodeComparison, GitState, compare_code, git_state, short
from benchmark.apps.leaderboard.schema import (
    Entry,
    FaceEncoder,
    Spread,
    TargetRow,
    Verification,
    load_entry,
    rows_of,
    summarize,
    write_entry,
)
from benchmark.apps.leaderboard.submit import environment_of, face_encoder_of
from benchmark.core.errors import LeakBenchError
from benchmark.metrics import metric_info
from benchmark.pipeline.hardware import environment
from benchmark.pipeline.isolation import Isolation
from benchmark.pipeline.result import TargetResult
from benchmark.pipeline.run import run
from benchmark.protocol.loading import spec_hash

# What may differ from the entry's commit when its spread is measured: the tools that re-run and record
# it (this module among them), which compute none of its values.
TOOLING = ("benchmark/apps/leaderboard/", "benchmark/cli/")


@dataclass(frozen=True)
class Difference:
    """A value that moved beyond its tolerance (``allowed`` None: a target that failed on one side only)."""

    where: str  # "target 3" or "summary"
    metric: str
    recorded: float | str | None
    measured: float | str | None
    allowed: float | None  # None: a target that failed on one side only, or was computed in another group


@dataclass(frozen=True)
class Verdict:
    path: Path
    targets: int  # targets re-run
    complete: bool  # all of the entry's targets were re-run
    differences: list[Difference]
    code: CodeComparison  # the code that re-ran it, against the entry's
    environment: str  # how the re-run's environment differs from the entry's (one line)


def _compare(
    where: str, recorded: dict[str, float | None], measured: dict[str, float | None], entry: Entry
) -> list[Difference]:
    differences = []
    for metric in sorted(recorded.keys() | measured.keys()):
        old, new = recorded.get(metric), measured.get(metric)
        allowed = (
            max(metric_info(metric).tolerance.allowed(old), entry.spread(metric, where)) if old is not None else None
        )
        if (old is None) != (new is None) or old is not None and abs(new - old) > allowed:
            differences.append(Difference(where, metric, old, new, allowed))
    return differences


def _means(row: TargetRow) -> dict[str, float | None]:
    return {name: TargetResult(**row.model_dump()).row()[name] for name in row.metrics}


def compare(entry: Entry, rows: list[TargetRow]) -> list[Difference]:
    """Differences between the entry and re-run rows of its first ``len(rows)`` targets."""
    differences = []
    for old, new in zip(entry.rows, rows):
        where = f"target {old.target}"
        if old.group is not None and old.group != new.group:  # not the same computation: say so first
            differences.append(Difference(where, "group", _targets(old.group), _targets(new.group), None))
        if (old.failed is None) != (new.failed is None):
            differences.append(Difference(where, "failed", old.failed, new.failed, None))
        else:
            differences += _compare(where, _means(old), _means(new), entry)
    if len(rows) == entry.targets:
        differences += _compare("summary", entry.summary.metrics, summarize(rows).metrics, entry)
    return differences


def measured_spread(entry: Entry, rows: list[TargetRow]) -> dict[str, dict[str, float]]:
    """Where ('target 3', 'summary') -> metric -> |re-run - recorded|, over the targets' means and
    the summary of a complete re-run computed as the entry was (the same groups, the same targets failed)."""
    for old, new in zip(entry.rows, rows):
        if (old.group is not None and old.group != new.group) or (old.failed is None) != (new.failed is None):
            raise LeakBenchError(
                f"target {old.target} was not computed as the entry's was (its group or its failure differs): "
                "that is another computation, not a spread"
            )
    pairs = [(f"target {old.target}", _means(old), _means(new)) for old, new in zip(entry.rows, rows)]
    pairs.append(("summary", entry.summary.metrics, summarize(rows).metrics))
    return {
        where: {
            metric: abs(measured[metric] - old)
            for metric, old in recorded.items()
            if old is not None and measured.get(metric) is not None
        }
        for where, recorded, measured in pairs
    }


def largest_moves(moves_at: dict[str, dict[str, float]]) -> dict[str, float]:
    """Metric -> its largest move over every place of a :func:`measured_spread`."""
    largest: dict[str, float] = {}
    for moves in moves_at.values():
        for metric, move in moves.items():
            largest[metric] = max(largest.get(metric, 0.0), move)
    return largest


def encoder_difference(entry: Entry, measured: FaceEncoder | None) -> list[Difference]:
    """The face encoder's weights, when the re-run's are not the entry's: its re-id is another measurement."""

    def named(encoder: FaceEncoder | None) -> str | None:
        return None if encoder is None else f"{encoder.backend} {encoder.weights_sha256[:8]}"

    if entry.face_encoder == measured:
        return []
    return [Difference("summary", "face encoder", named(entry.face_encoder), named(measured), None)]


def _spread_preconditions(
    entry: Entry, path: Path, state: GitState, code: CodeComparison, count: int, accelerator: str
) -> list[str]:
    """How this environment differs from the entry's, where a spread may be measured here: every
    target, the entry's own code (only the tooling in :data:`TOOLING` may differ), another environment."""
    if count != entry.targets:
        raise LeakBenchError(f"a spread needs every target re-run ({entry.targets}); leave out --targets")
    computing = None if code.changes is None else [f for f in code.changes if not f.startswith(TOOLING)]
    if state.uncommitted or computing != [] or code.attack_changes:
        commit = entry.environment.git_commit
        raise LeakBenchError(
            f"a spread is measured with the code the entry ran, and here {code.describe()}"
            + (" (and uncommitted changes)" if state.uncommitted else "")
            + (
                f"; re-run it from a clean checkout of the entry's commit {short(commit)}"
                if commit
                else "; the entry records no commit to re-run it from"
            )
        )
    changes = environment_changes(entry.environment, path.parents[2], environment(accelerator))
    if not changes:
        raise LeakBenchError(
            f"{path}: this environment is the entry's, where re-runs are bit-identical; a spread "
            "needs another one (another torch version, CPU or GPU)"
        )
    return changes


def verify(
    path: Path,
    *,
    targets: int | None = None,
    runs: Path = Path("runs"),
    accelerator: str = "cpu",
    record: bool = False,
    record_spread: bool = False,
    isolation: Isolation | None = None,
) -> Verdict:
    """Re-run the entry at ``path`` (its first ``targets`` targets, default all) and compare.

    With ``record``, a complete re-run within tolerance marks the entry verified, recording the
    commit it was verified at and which files of the code differed from the entry's commit. With
    ``record_spread``, a complete re-run of the entry's own code (a clean checkout, nothing under
    benchmark/ changed since the entry's commit but the tooling) in an environment that differs from
    the entry's adds its moves to the entry's ``spreads``, and leaves ``verified`` as it was. With
    ``isolation``, the attack runs in a sandbox (what that withholds: docs/trust.md).
    """
    if record and record_spread:
        raise LeakBenchError("--record and --record-spread are two re-runs: give one of them")
    entry = load_entry(path)
    spec = protocol_of(entry).spec
    if not same_task(entry, spec):
        raise LeakBenchError(
            f"{path}: task '{entry.task}' has changed since this entry was measured "
            f"(spec hash {entry.spec_hash[:12]} → {spec_hash(spec)[:12]}); re-submit it"
        )
    count = targets if targets is not None else entry.targets
    if count > entry.targets:
        raise LeakBenchError(f"{path} has {entry.targets} targets; give --targets of at most {entry.targets}")
    state = git_state(ignore=(path.parents[2], runs))
    code = compare_code(entry, state)
    changes = _spread_preconditions(entry, path, state, code, count, accelerator) if record_spread else []
    out = runs / f"verify-{entry.suite}" / entry.task / entry.attack
    result = run(
        spec,
        entry.attack,
        targets=count,
        seed=entry.seed,
        max_steps=entry.attack_config.get("max_steps"),
        restarts=entry.restarts,
        attack_options=entry.attack_config,
        out=out,
        logger=None,
        accelerator=accelerator,
        fresh=True,
        isolation=isolation,
        extent=entry.protocol_targets,
        reid=entry.face_encoder.backend if entry.face_encoder else "auto",
    )
    rows = rows_of(result.to_dict(), count)
    root = path.parents[2]
    differences = encoder_difference(entry, face_encoder_of(result.summary)) + compare(entry, rows)
    verdict = Verdict(
        path,
        count,
        count == entry.targets,
        differences,
        code,
        compare_environment(entry.environment, root, result.environment),
    )
    if record_spread:
        moves_at = measured_spread(entry, rows)
        spread = Spread(
            date=datetime.now(timezone.utc).replace(microsecond=0),
            environment=environment_of(result.environment, state.record(), write_constraints(root)),
            differs_in=changes[:5],
            moves=largest_moves(moves_at),
            moves_at=moves_at,
        )
        write_entry(root, entry.model_copy(update={"spreads": [*entry.spreads, spread]}), None)
    if record and verdict.complete and not verdict.differences:
        verification = Verification(
            date=datetime.now(timezone.utc).replace(microsecond=0),
            environment=environment_of(result.environment, state.record(), write_constraints(root)),
            code_changes=None if code.changes is None else list(code.changes),
            attack_package=code.package,
            verifier=state.user,
        )
        write_entry(root, entry.model_copy(update={"verified": True, "verification": verification}), None)
    return verdict


def format_verdict(verdict: Verdict) -> str:
    """A readable report: what was re-run and the outcome, the code it ran (against the entry's), and a
    table of the moved values when some moved."""
    scope = "all" if verdict.complete else "first"
    head = f"{verdict.path}: {scope} {verdict.targets} target(s) re-run"
    code = f"  {verdict.code.describe()}\n  {verdict.environment}"
    if not verdict.differences:
        return f"{head}: every metric within tolerance\n{code}"
    lines = [
        f"{head}: {len(verdict.differences)} value(s) moved beyond tolerance",
        code,
        f"  {'where':<10} {'metric':<16} {'recorded':>12} {'measured':>12} {'allowed':>10}",
    ]
    for d in verdict.differences:
        allowed = f"±{d.allowed:.3g}" if d.allowed is not None else "-"
        lines.append(f"  {d.where:<10} {d.metric:<16} {_cell(d.recorded):>12} {_cell(d.measured):>12} {allowed:>10}")
    return "\n".join(lines)


def _targets(group: list[int] | None) -> str | None:
    """A group as the table shows it: ``0-2`` for targets 0, 1, 2."""
    if not group:
        return None
    return (
        f"{group[0]}-{group[-1]}"
        if group == list(range(group[0], group[-1] + 1)) and len(group) > 1
        else ",".join(map(str, group))
    )


def _cell(value: float | str | None) -> str:
    if value is None:
        return "-"
    return f"{value:.5g}" if isinstance(value, float) else str(value)[:12]
