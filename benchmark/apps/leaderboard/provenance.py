"""Which code made an entry: the commit of the leakbench checkout, and what differs from it now.

``submit`` refuses a checkout with uncommitted changes (the leaderboard folder and the run folders
aside: entries are data), so the commit an entry records holds all of its code; ``verify`` reports
whether the code it re-runs differs from that commit; ``leaderboard check`` fails on an entry that
cannot be traced (:func:`trace_problems`).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from benchmark.apps.leaderboard.schema import Entry
from benchmark.attacks import code_module
from benchmark.core.code import attack_code
from benchmark.core.errors import LeakBenchError
from benchmark.core.version import __version__

SOURCE = Path(__file__).resolve().parents[3]  # the leakbench checkout, when it is one
CODE = "benchmark"  # the folder of the checkout that holds the code an entry runs
NO_GIT = {"git_commit": None, "git_dirty": None}
NO_CHECKOUT = "leakbench does not run from a git checkout here"

# An absolute path of some machine: /tmp/..., /home/..., C:\... (not a URL's path, not "1/3").
MACHINE_PATH = re.compile(r"(?<![\w.~:/-])/[\w.-]+/[^\s)\]'\",;]*|(?<!\w)[A-Za-z]:[\\/][\w.-][^\s)\]'\",;]*")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True)


def _lines(*args: str) -> list[str]:
    done = _git(*args)
    if done.returncode:
        raise LeakBenchError(
            f"git {args[0]} failed in {SOURCE} ({' '.join(done.stderr.split())[:160]}); "
            f"repair the checkout or run leakbench from another"
        )
    return done.stdout.splitlines()


def in_checkout() -> bool:
    """Whether leakbench runs from a git checkout (and git runs)."""
    try:
        return (SOURCE / ".git").exists() and _git("rev-parse", "HEAD").returncode == 0
    except OSError:  # no git
        return False


def has_object(name: str) -> bool:
    """Whether the repository holds ``name`` (``COMMIT^{commit}``, ``COMMIT:path``)."""
    return _git("cat-file", "-e", name).returncode == 0


def short(commit: str) -> str:
    return commit[:12]


@dataclass(frozen=True)
class GitState:
    commit: str | None  # HEAD; None: not a git checkout
    uncommitted: tuple[str, ...]  # changed tracked files and untracked, not ignored ones (folders end in /)
    user: str | None = None  # the checkout's git user.name: who submits or verifies from it; None: unset

    def record(self) -> dict[str, Any]:
        """The fields of an entry's environment."""
        return NO_GIT if self.commit is None else {"git_commit": self.commit, "git_dirty": bool(self.uncommitted)}


def git_state(ignore: Sequence[Path] = ()) -> GitState:
    """The checkout's commit and uncommitted files, leaving out those under ``ignore`` (entries, runs)."""
    if not in_checkout():
        return GitState(None, ())
    excluded = []
    for path in ignore:
        try:
            relative = Path(path).resolve().relative_to(SOURCE)
        except ValueError:  # outside the checkout
            continue
        if relative.parts:
            excluded.append(f":(exclude){relative.as_posix()}")
    status = _lines("status", "--porcelain", "--", ".", *excluded)
    user = _git("config", "user.name").stdout.strip() or None
    return GitState(_lines("rev-parse", "HEAD")[0], tuple(line[3:] for line in status), user)


def attack_module(attack: str) -> str | None:
    """The file of a built-in attack's class in the checkout (``benchmark/attacks/NAME.py``); None for a
    plugin's, or an attack not registered here."""
    module = code_module(attack) or ""
    return module.replace(".", "/") + ".py" if module.split(".")[0] == CODE else None


def attack_package(attack: str) -> str | None:
    """'distribution version' of the package that provides ``attack``; None if it cannot be told."""
    for point in entry_points(group="leakbench.attacks", name=attack):
        return f"{point.dist.name} {point.dist.version}" if point.dist else None
    return f"leakbench {__version__}" if attack_module(attack) is not None else None


@dataclass(frozen=True)
class CodeComparison:
    """The code a re-run ran, against the entry's recorded commit and attack package."""

    at: str | None  # the commit of the checkout that ran it; None: not a git checkout
    recorded: str | None  # the entry's commit
    changes: tuple[str, ...] | None  # files under benchmark/ that differ from it; None: it could not be told
    unknown: str | None  # why not
    module: str | None  # the attack's module file (built-in attacks)
    package: str | None  # the package that provides the attack now
    recorded_package: str | None
    attack_changes: tuple[str, ...] | None = None  # modules of the attack's code that differ; None: not recorded

    def describe(self) -> str:
        """One line, e.g. ``code at 0123456789ab: the same as the entry's commit 0123456789ab under benchmark/``."""
        text = f"code at {short(self.at)}: " if self.at else "code: "
        if self.changes is None:
            text += f"{self.unknown}: cannot tell whether it differs from the code the entry ran"
        elif not self.changes:
            text += f"the same as the entry's commit {short(self.recorded)} under {CODE}/"
        else:
            own = f", among them {self.module} (the attack's module)" if self.module in self.changes else ""
            text += (
                f"differs from the entry's commit {short(self.recorded)} in {len(self.changes)} file(s) under "
                f"{CODE}/{own}: {', '.join(self.changes[:5])}{', ...' if len(self.changes) > 5 else ''}"
            )
        if self.module is None:  # a plugin's code lies outside the checkout: its version and its files tell
            same = "as recorded" if self.package == self.recorded_package else f"the entry's: {self.recorded_package}"
            text += f"; attack package {self.package} ({same})"
            if self.attack_changes == ():
                text += ", its code the same as the entry's"
        if self.attack_changes:
            text += f"; the attack's code differs from the entry's in {', '.join(self.attack_changes)}"
        return text


def compare_code(entry: Entry, state: GitState) -> CodeComparison:
    """What differs between the code of the checkout in ``state`` and the code the entry records (its
    commit, its plugin's version)."""
    commit, changes, unknown = entry.environment.git_commit, None, None
    if state.commit is None:
        unknown = NO_CHECKOUT
    elif commit is None:
        unknown = "the entry records no commit"
    elif not has_object(f"{commit}^{{commit}}"):
        unknown = f"the entry's commit {short(commit)} is not in this repository"
    else:
        changed = _lines("diff", "--name-only", commit, "--", CODE)  # committed since, or not committed
        untracked = _lines("ls-files", "--others", "--exclude-standard", "--", CODE)
        changes = tuple(sorted({*changed, *untracked}))
    module = attack_module(entry.attack)
    now = attack_code(start) if (start := code_module(entry.attack)) is not None else None
    attack_changes = (
        None
        if now is None or entry.attack_code is None
        else tuple(
            sorted(
                name for name in now.keys() | entry.attack_code.keys() if now.get(name) != entry.attack_code.get(name)
            )
        )
    )
    return CodeComparison(
        state.commit,
        commit,
        changes,
        unknown,
        module,
        attack_package(entry.attack),
        entry.attack_package,
        attack_changes,
    )


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")
    elif isinstance(value, str):
        yield where, value


def machine_paths(entry: Entry) -> list[tuple[str, str]]:
    """(field, path) for each string of the entry that holds an absolute path of some machine."""
    return [
        (where, found.group())
        for where, text in _strings(entry.model_dump(mode="json"))
        if (found := MACHINE_PATH.search(text))
    ]


def trace_problems(path: Path, entry: Entry) -> list[str]:
    """Why the entry at ``path`` cannot be traced to the code that made it, one line each with its fix."""
    git, commit = entry.environment, entry.environment.git_commit
    problems = []
    if git.git_dirty is None:
        problems.append(
            "it does not record whether its checkout had uncommitted changes (git_dirty null); "
            "re-submit it from a clean commit"
        )
    elif git.git_dirty:
        problems.append(
            "it was made from a checkout with uncommitted changes (git_dirty true); commit the code and re-submit it"
        )
    if commit is None:
        problems.append(
            "it records no commit (git_commit null); re-submit it from a clean commit of a leakbench checkout"
        )
    elif not in_checkout():
        problems.append(
            f"its commit {short(commit)} could not be checked: {NO_CHECKOUT}; run `leakbench leaderboard "
            f"check` from a clone of the repository"
        )
    elif not has_object(f"{commit}^{{commit}}"):
        problems.append(
            f"its commit {short(commit)} is not in this repository; fetch it, or re-submit it from a commit that is"
        )
    elif (module := attack_module(entry.attack)) is not None and not has_object(f"{commit}:{module}"):
        problems.append(
            f"its commit {short(commit)} does not contain {module}, its attack's code; re-submit it "
            f"from a commit that does"
        )
    problems += [
        f"field {where} holds a machine path ({found[:60]!r}); re-submit it with this leakbench, which records none"
        for where, found in machine_paths(entry)
    ]
    if not entry.verified:
        problems.append(f"it is not verified; run `leakbench verify {path} --record`")
    return [f"{path}: {problem}" for problem in problems]
