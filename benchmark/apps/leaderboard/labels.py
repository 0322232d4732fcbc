"""The label board: each label rule's accuracy against the batch size, one file per task family.

``leakbench study labels --record`` writes ``labels/FAMILY.json`` under the leaderboard folder from a
clean, committed tree, recording that commit, the command and the versions; the boards render it
(:mod:`benchmark.apps.leaderboard.render`) and ``leaderboard check`` refuses a file it cannot trace. The
study is deterministic, so the recorded command, run at the recorded commit, gives the same cells
(``tests/apps/leaderboard/test_labels.py`` re-runs the committed files' cells).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.apps.label_study import LabelStudy
from benchmark.apps.leaderboard.environment import installed
from benchmark.apps.leaderboard.provenance import git_state, has_object, short
from benchmark.core.errors import LeakBenchError
from benchmark.core.files import write_atomic
from benchmark.pipeline.result import finite_or_null

FOLDER = "labels"


def require_clean_tree(root: Path) -> str:
    """The commit a label board file may record: HEAD of a checkout with nothing uncommitted (the
    leaderboard folder aside); a one-line error otherwise."""
    state = git_state(ignore=[root])
    if state.commit is None:
        raise LeakBenchError("a label board is recorded from a git checkout of leakbench; run it from one")
    if state.uncommitted:
        raise LeakBenchError(
            f"a label board comes from a clean, committed tree; commit or stash {', '.join(state.uncommitted[:5])}"
        )
    return state.commit


def record(study: LabelStudy, root: Path, command: str, commit: str) -> Path:
    """Write ``study`` as ``root/labels/FAMILY.json``, with its commit, command and versions."""
    versions = installed()
    document = {
        "board": "labels",
        "commit": commit,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {name: versions.get(name) for name in ("torch", "leakbench")},
        **study.as_dict(),
    }
    return write_atomic(root / FOLDER / f"{study.family}.json", json.dumps(finite_or_null(document), indent=2) + "\n")


@dataclass(frozen=True)
class LabelBoard:
    """One family's label rules as the boards show them: rows of rules, a column per batch size."""

    family: str
    task: str
    commit: str
    command: str
    date: str
    batch_sizes: list[int]
    targets: dict[int, int]  # batch size -> targets
    rows: list[dict[str, Any]]  # {"rule", "cells": {batch size: "acc (exact)" or "n/a"}}
    paper: dict[str, str]

    @property
    def short_commit(self) -> str:
        return short(self.commit)


def label_files(root: Path) -> list[Path]:
    return sorted((root / FOLDER).glob("*.json"))


def load_label_board(path: Path) -> LabelBoard:
    """A label board file, read; a one-line error naming the file where it is not one."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        cells = stored["cells"]
        sizes = sorted({c["batch_size"] for c in cells})
        rows = []
        for rule in dict.fromkeys(c["rule"] for c in cells):
            shown = {}
            for c in cells:
                if c["rule"] == rule:
                    shown[c["batch_size"]] = (
                        "n/a" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f} ({100 * c['exact']:.0f})"
                    )
            rows.append({"rule": rule, "cells": shown})
        return LabelBoard(
            family=stored["family"],
            task=stored["task"],
            commit=stored["commit"],
            command=stored["command"],
            date=stored["date"][:10],
            batch_sizes=sizes,
            targets={c["batch_size"]: c["targets"] for c in cells},
            rows=rows,
            paper=stored.get("paper_accuracy", {}),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LeakBenchError(f"{path}: not a label board file ({type(err).__name__}: {err})") from None


def load_label_boards(root: Path) -> list[LabelBoard]:
    return [load_label_board(path) for path in label_files(root)]


def label_problems(root: Path) -> list[str]:
    """Why a label board file cannot stand on the boards (unreadable, or its commit is not here)."""
    problems = []
    for path in label_files(root):
        try:
            board = load_label_board(path)
        except LeakBenchError as err:
            problems.append(str(err))
            continue
        if not has_object(f"{board.commit}^{{commit}}"):
            problems.append(f"{path}: its commit {board.short_commit} is not in this repository; record it again")
    return problems
