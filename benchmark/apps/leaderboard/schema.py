"""The leaderboard entry: one JSON file per (suite, task, attack), validated by this schema.

An entry is ``leaderboards/<suite>/<task>/<attack>.json``, with ``<attack>.png`` (ground truth over
reconstructions) beside it. It is written by ``leakbench submit`` (or ``leaderboard pull``), never
by hand: its summary must be the mean of its rows, and ``leakbench verify`` re-runs it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmark.core.errors import LeakBenchError
from benchmark.core.files import read_text, write_atomic
from benchmark.pipeline.result import Result, TargetResult

ENTRY_GLOB = "*/*/*.json"  # <suite>/<task>/<attack>.json under a leaderboard root


class EntryError(LeakBenchError, ValueError):
    """An entry file that is unreadable or violates the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaperFigure(_Strict):
    """A figure a paper reports for this attack on this protocol (or the closest it ran)."""

    metric: str
    value: float = Field(description="in this benchmark's units (label_accuracy as a fraction)")
    reported: str = Field(description="what the paper states, with its setting")
    paper: str
    url: str


class TargetRow(_Strict):
    """One target, as the run recorded it (see :class:`benchmark.pipeline.result.TargetResult`)."""

    target: int = Field(ge=0)
    indices: list[int]
    labels: list[int]
    recovered_labels: list[int]
    metrics: dict[str, list[float | None]] = Field(description="metric -> one value per image of the batch")
    loss: float | None
    tries: int = Field(ge=0)
    seconds: float = Field(ge=0)
    details: dict[str, Any] = {}
    failed: str | None = None
    group: list[int] | None = Field(None, description="the targets solved in the same fit; None: not recorded")


class FaceEncoder(_Strict):
    """The face encoder that re-identified the reconstructions (:mod:`benchmark.metrics.reid`)."""

    backend: str = Field(description="facenet or dlib")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the weights file it loaded")


class Summary(_Strict):
    metrics: dict[str, float | None] = Field(description="mean over the images of targets that did not fail")
    failed: int = Field(ge=0)
    seconds: float = Field(ge=0, description="wall time of the attack over all targets, restarts included")


class Environment(_Strict):
    leakbench: str
    git_commit: str | None = Field(
        pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
        description="commit (full hash) of the leakbench source, if it is a git checkout",
    )
    git_dirty: bool | None = Field(description="whether that checkout had uncommitted changes")
    torch: str
    lightning: str
    python: str
    device: str
    constraints: str | None = Field(
        None, description="the pip constraints file of its installed versions, relative to the leaderboard root"
    )


class Verification(_Strict):
    """A re-run of every target that matched the entry within the tolerances (``leakbench verify --record``);
    its environment's ``git_commit`` is the commit it was verified at."""

    date: datetime
    environment: Environment
    code_changes: list[str] | None = Field(
        None, description="files under benchmark/ that differed from the entry's commit ([]: none); None: not told"
    )
    attack_package: str | None = Field(None, description="the package that provided the attack at the re-run")
    verifier: str | None = Field(None, description="who re-ran it: the git user.name of the checkout; None: not told")


class Spread(_Strict):
    """How far a complete re-run of the entry's code in another environment moved its values
    (``leakbench verify --record-spread``): the measured spread of a chaotic attack across
    environments, which ``verify`` then allows beside each metric's own tolerance."""

    date: datetime
    environment: Environment
    differs_in: list[str] = Field(description="how that environment differs from the entry's (its first changes)")
    moves: dict[str, float] = Field(
        description="metric -> the largest |re-run - recorded| over the targets' means and the summary"
    )
    moves_at: dict[str, dict[str, float]] | None = Field(
        None,
        description="where ('target 3', 'summary') -> metric -> |re-run - recorded| there; None: not "
        "recorded (then every place is allowed the largest move)",
    )

    def move(self, metric: str, where: str) -> float:
        """How far ``metric`` moved at ``where`` ('target 3', 'summary'); the largest move where the
        places were not recorded."""
        if self.moves_at is None:
            return self.moves.get(metric, 0.0)
        return self.moves_at.get(where, {}).get(metric, 0.0)


class Entry(_Strict):
    schema_version: Literal[1] = 1
    suite: str
    task: str
    task_version: int = Field(ge=1)
    spec_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    task_spec: dict[str, Any] = Field(description="the resolved task spec the entry was measured under")
    attack: str
    attack_config: dict[str, Any] = Field(description="the attack's full resolved config")
    attack_package: str | None = Field(description="distribution and version that provide the attack")
    attack_code: dict[str, str] | None = Field(
        None, description="sha256 of each module of the attack's code (benchmark.core.code); None: not recorded"
    )
    seed: int
    restarts: int = Field(ge=1)
    targets: int = Field(ge=1, description="targets measured: the first `targets` of the protocol")
    protocol_targets: int = Field(ge=1, description="targets of the suite's protocol for this task")
    data_origin: str
    metric_definitions: dict[str, dict[str, Any]] = Field(
        default={}, description="each reported metric's library, versions and parameters (benchmark.metrics)"
    )
    face_encoder: FaceEncoder | None = Field(None, description="the re-identification encoder of a task with reid")
    summary: Summary
    rows: list[TargetRow]
    environment: Environment
    date: datetime
    source: str = Field(description="'leakbench submit', or the W&B run it was pulled from")
    submitter: str | None = Field(
        None, description="who submitted it: the git user.name of the checkout; None: not told"
    )
    paper: list[PaperFigure] = []
    picture: str | None = Field(description="PNG beside the entry: ground truth over reconstructions")
    verified: bool = False
    verification: Verification | None = None
    spreads: list[Spread] = Field(
        [], description="re-runs in other environments and how far they moved each metric (verify --record-spread)"
    )

    def spread(self, metric: str, where: str) -> float:
        """The largest recorded move of ``metric`` at ``where`` ('target 3', 'summary') across
        environments (0 where none is recorded): a target that converged in one environment and
        diverged in another widens its own tolerance, not the other targets' or the summary's."""
        return max((s.move(metric, where) for s in self.spreads), default=0.0)

    @property
    def verified_by(self) -> str | None:
        """Who verified it: 'the submitter' (the same name re-ran it) or 'independent' (another); None
        where it cannot be told (unverified, or a name not recorded)."""
        if self.verification is None or self.verification.verifier is None or self.submitter is None:
            return None
        return "the submitter" if self.verification.verifier == self.submitter else "independent"

    @property
    def malicious_server(self) -> bool:
        """Whether the attack sent the client a global model of its own (``threat.server: malicious``)."""
        return any("global_model" in row.details for row in self.rows)

    @property
    def partial(self) -> bool:
        """Fewer targets than the protocol has: shown on the board, never ranked."""
        return self.targets < self.protocol_targets

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if self.targets > self.protocol_targets:
            raise ValueError(f"targets ({self.targets}) exceeds protocol_targets ({self.protocol_targets})")
        if [row.target for row in self.rows] != list(range(self.targets)):
            raise ValueError(f"rows must be targets 0..{self.targets - 1} in order")
        if self.verified != (self.verification is not None):
            raise ValueError("verified is true exactly when a verification is recorded")
        expected = summarize(self.rows)
        for name in expected.metrics.keys() | self.summary.metrics.keys():
            stored, computed = self.summary.metrics.get(name), expected.metrics.get(name)
            if not _same(stored, computed):
                raise ValueError(
                    f"summary.metrics.{name} is {stored} but the rows give {computed}; "
                    f"entries are written by leakbench, not by hand"
                )
        if self.summary.failed != expected.failed:
            raise ValueError(f"summary.failed is {self.summary.failed} but {expected.failed} rows failed")
        return self


def _same(a: float | None, b: float | None) -> bool:
    return (
        a is None and b is None or a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    )


def summarize(rows: list[TargetRow]) -> Summary:
    """The summary of rows, as :attr:`benchmark.pipeline.result.Result.summary` computes it."""
    result = Result(
        task="",
        task_version=1,
        spec_hash="",
        attack="",
        config={},
        data_origin="",
        environment={},
        targets=[TargetResult(**row.model_dump()) for row in rows],
    )
    summary = result.summary
    counts = ("targets", "failed", "failures", "seconds", "seconds_per_target")
    return Summary(
        metrics={k: v for k, v in summary.items() if k not in counts},
        failed=summary["failed"],
        seconds=summary["seconds"],
    )


def rows_of(result: dict[str, Any], count: int) -> list[TargetRow]:
    """The first ``count`` target rows of a ``results.json`` mapping, without the per-row means."""
    rows = [TargetResult.from_row(row) for row in result["targets"]][:count]
    return [TargetRow.model_validate(vars(row)) for row in rows]


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"field '{where}' is missing"
    return f"field '{where}': {error['msg']} (got {repr(error['input'])[:60]})"


def parse_entry(text: str, source: str) -> Entry:
    """Validate an entry's JSON text; an error is one line naming ``source`` and the field."""
    try:
        return Entry.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            raise EntryError(
                f"{source}: not valid JSON ({first['ctx']['error']}); restore it from git or re-submit"
            ) from None
        raise EntryError(f"{source}: {_describe(first)}") from None


def load_entry(path: Path) -> Entry:
    """Read and validate one entry file; it must sit at ``<suite>/<task>/<attack>.json``."""
    entry = parse_entry(read_text(path, "entry", "restore it from git or re-submit", EntryError), str(path))
    expected = (entry.suite, entry.task, f"{entry.attack}.json")
    if path.parts[-3:] != expected:
        raise EntryError(f"{path}: its suite/task/attack fields say {'/'.join(expected)}; move the file or re-submit")
    return entry


def entry_path(root: Path, entry: Entry) -> Path:
    return root / entry.suite / entry.task / f"{entry.attack}.json"


def write_entry(root: Path, entry: Entry, picture: bytes | None) -> Path:
    """Write the entry (and its picture first) atomically under ``root``; returns the JSON path."""
    path = entry_path(root, entry)
    if picture is not None and entry.picture is not None:
        write_atomic(path.with_name(entry.picture), picture)
    return write_atomic(path, json.dumps(entry.model_dump(mode="json"), indent=2) + "\n")


def entry_files(root: Path) -> list[Path]:
    return sorted(root.glob(ENTRY_GLOB))
