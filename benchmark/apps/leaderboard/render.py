"""The boards rendered from the entries: ``README.md`` (Markdown) and ``site/index.html`` (static).

Both are generated, never edited: :func:`check` re-renders them and fails when the files differ, when
an entry is invalid, when an entry was not measured under its task's current protocol, or when it
cannot be traced to the commit of its code or is unverified (:func:`~benchmark.apps.leaderboard.provenance.trace_problems`).
Suites appear in the order ``tasks/suites.yaml`` lists them (``reference`` first), each board under
its suite's description, and a suite's boards in the order of its tasks.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import jinja2

from benchmark.apps.leaderboard.labels import label_problems, load_label_boards
from benchmark.apps.leaderboard.protocol import nonconformity, protocol_of
from benchmark.apps.leaderboard.provenance import trace_problems
from benchmark.apps.leaderboard.schema import Entry, entry_files, load_entry
from benchmark.core.errors import LeakBenchError
from benchmark.core.files import write_atomic
from benchmark.metrics import metric_info
from benchmark.protocol.loading import load_suite, suite_names

OUTPUTS = ("README.md", "site/index.html")

PRIMARY_ORDER = ("psnr", "ssim", "lpips", "mse", "label_accuracy")  # a board ranks by the first it measures


@dataclass(frozen=True)
class Row:
    rank: int | None  # None: a partial entry, not ranked
    entry: Entry
    picture: str | None  # the entry's PNG as base64, for the page


@dataclass(frozen=True)
class Board:
    """The entries of one (suite, task): ranked by the primary metric in its direction, partial ones last."""

    suite: str
    task: str
    metrics: list[str]
    primary: str | None
    rows: list[Row]

    @property
    def first(self) -> Entry:
        return self.rows[0].entry

    @property
    def face_encoders(self) -> list[str]:
        """The encoders that re-identified its entries' faces, as ``facenet (weights sha256 281cebca…)``."""
        return sorted(
            {
                f"{encoder.backend} (weights sha256 {encoder.weights_sha256[:8]}…)"
                for row in self.rows
                if (encoder := row.entry.face_encoder) is not None
            }
        )


def _metric_order(name: str) -> tuple[int, str]:
    return (PRIMARY_ORDER.index(name) if name in PRIMARY_ORDER else len(PRIMARY_ORDER), name)


def _rank_key(entry: Entry, primary: str | None) -> tuple[bool, float, str]:
    value = entry.summary.metrics.get(primary) if primary else None
    sign = 1 if primary and metric_info(primary).higher_is_better is False else -1
    return (value is None, sign * value if value is not None else 0.0, entry.attack)


def make_board(entries: list[tuple[Path, Entry]]) -> Board:
    """One board from the entries of a single (suite, task); a metric no entry measured (LPIPS without
    its weights) gets no column."""
    metrics = sorted(
        {
            name
            for _, entry in entries
            for name, value in entry.summary.metrics.items()
            if value is not None and metric_info(name).board
        },
        key=_metric_order,
    )
    primary = next((name for name in metrics if metric_info(name).higher_is_better is not None), None)
    # an attack that sent the client its own model (a malicious server) is ranked only against its kind
    ordered = sorted(entries, key=lambda item: (item[1].malicious_server, item[1].partial, _rank_key(item[1], primary)))
    rows, ranks = [], {False: 0, True: 0}
    for path, entry in ordered:
        ranks[entry.malicious_server] += not entry.partial
        picture = path.with_name(entry.picture) if entry.picture else None
        encoded = base64.b64encode(picture.read_bytes()).decode() if picture and picture.is_file() else None
        rows.append(Row(None if entry.partial else ranks[entry.malicious_server], entry, encoded))
    first = ordered[0][1]
    return Board(first.suite, first.task, metrics, primary, rows)


@dataclass(frozen=True)
class SuiteBoards:
    name: str
    description: str
    boards: list[Board]


def _place(entry: Entry, suites: list[str]) -> tuple[int, int, str]:
    """Where the entry's board goes: its suite's place in suites.yaml, its task's place in the suite."""
    tasks = load_suite(entry.suite).tasks
    return (suites.index(entry.suite), tasks.index(entry.task) if entry.task in tasks else len(tasks), entry.task)


def load_boards(root: Path) -> list[SuiteBoards]:
    """Every board under ``root``, grouped by suite, in the order of suites.yaml; raises on the first
    invalid entry or unknown suite."""
    entries = [(path, load_entry(path)) for path in entry_files(root)]
    suites = suite_names()
    entries.sort(key=lambda item: _place(item[1], suites))
    boards = [make_board(list(group)) for _, group in groupby(entries, key=lambda item: (item[1].suite, item[1].task))]
    return [
        SuiteBoards(suite, load_suite(suite).description, list(group))
        for suite, group in groupby(boards, key=lambda board: board.suite)
    ]


def _header(metric: str) -> str:
    info = metric_info(metric)
    return info.title + {True: " ↑", False: " ↓"}.get(info.higher_is_better, "")


def _definition(metric: str) -> str:
    """A metric's definition in one line, for the boards' footnotes."""
    return "; ".join(f"{key} {value}" for key, value in metric_info(metric).definition.items())


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def _verified(entry: Entry) -> str:
    """The verified cell: no, yes, or yes and by whom (the submitter, or independent); then the
    environments whose spread the entry records (its tolerance widened to it), if any."""
    cell = "no" if not entry.verified else f"yes ({entry.verified_by})" if entry.verified_by else "yes"
    if entry.spreads:
        where = "; ".join(f"{s.environment.device}, torch {s.environment.torch}" for s in entry.spreads)
        cell += f"; spread measured on {where}"
    return cell


_ENVIRONMENT.filters.update(
    metric=lambda value, metric: metric_info(metric).show(value),
    header=_header,
    name=lambda metric: metric_info(metric).title,
    definition=_definition,
    verified=_verified,
)


def render(root: Path) -> dict[str, str]:
    """The generated files (path relative to ``root`` -> text)."""
    suites = load_boards(root)
    metrics = sorted(
        {metric for suite in suites for board in suite.boards for metric in board.metrics}, key=_metric_order
    )
    label_boards = load_label_boards(root)
    return {
        name: _ENVIRONMENT.get_template(Path(name).name + ".j2").render(
            suites=suites, metrics=metrics, label_boards=label_boards
        )
        for name in OUTPUTS
    }


def _require_root(root: Path) -> None:
    if not root.is_dir():
        raise LeakBenchError(f"no leaderboard folder {root}; give --root or run leakbench submit first")


def build(root: Path) -> list[Path]:
    """Render the boards under ``root`` and write them (atomically)."""
    _require_root(root)
    return [write_atomic(root / name, text) for name, text in render(root).items()]


def check(root: Path) -> list[str]:
    """Problems with the boards under ``root``, one line each (empty: all is well); a missing ``root``
    is an error, not a stale board."""
    _require_root(root)
    problems = label_problems(root)
    for path in entry_files(root):
        try:
            entry = load_entry(path)
            departures = nonconformity(entry, protocol_of(entry))
        except LeakBenchError as err:
            problems.append(str(err))
            continue
        if departures:
            problems.append(f"{path}: not measured under the current protocol: {departures}; re-submit it")
        if entry.picture and not path.with_name(entry.picture).is_file():
            problems.append(f"{path}: its picture {entry.picture} is missing; re-submit it")
        verification = [entry.verification.environment] if entry.verification else []
        for environment in [entry.environment, *verification, *(spread.environment for spread in entry.spreads)]:
            if environment.constraints is not None and not (root / environment.constraints).is_file():
                problems.append(
                    f"{path}: its constraints file {environment.constraints} is missing; restore it "
                    f"from git or re-submit it"
                )
        problems += trace_problems(path, entry)
    if problems:
        return problems
    for name, text in render(root).items():
        if not (root / name).is_file() or (root / name).read_bytes() != text.encode():
            problems.append(f"{root / name} is stale; run `leakbench leaderboard build --root {root}`")
    return problems
