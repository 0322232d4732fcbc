"""The environment entries were measured in: a pip constraints file they name, and what differs from it.

``submit`` (and ``verify --record``) write the versions of the installed distributions to
``<root>/environments/<hash>.txt``, named by a hash of its content so that the environments of
several submissions coexist, and the entry names it (``environment.constraints``); ``pip install -e .
-c leaderboards/environments/<hash>.txt`` installs those versions again. ``verify`` reports how its
own environment differs from the entry's. Distributions installed from a folder or a URL (leakbench's
own checkout, an editable plugin) cannot be pinned by version and are left out (the entry names the
commit and the attack's package instead).
"""

from __future__ import annotations

import hashlib
import platform
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from benchmark.apps.leaderboard.schema import EntryError, Environment
from benchmark.core.files import read_text, write_atomic

ENVIRONMENTS = "environments"  # under a leaderboard root
FIRST = ("torch", "torchvision", "pytorch-lightning", "lightning", "torchmetrics", "numpy", "scipy", "lpips")
SHOWN = 6  # differing packages a line names


def installed() -> dict[str, str]:
    """Distribution -> version (its public part: ``2.14.1`` of ``2.14.1+cu130``, as the index serves it)
    of every distribution installed from an index, the first on ``sys.path`` where one is twice."""
    versions: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and dist.read_text("direct_url.json") is None:  # PEP 610: installed from a folder or a URL
            versions.setdefault(canonicalize_name(name), dist.version.split("+")[0])
    return dict(sorted(versions.items()))


def constraints_text(versions: dict[str, str]) -> str:
    return (
        f"# pip constraints: the environment leaderboard entries were measured in (python "
        f"{platform.python_version()}), written by leakbench\n# pip install -e . -c <this file>\n"
        + "".join(f"{name}=={version}\n" for name, version in versions.items())
    )


def write_constraints(root: Path) -> str:
    """Write this environment's constraints file under ``root`` (if no entry wrote it yet); its path
    relative to ``root``."""
    text = constraints_text(installed())
    name = f"{ENVIRONMENTS}/{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    if not (root / name).is_file():
        write_atomic(root / name, text)
    return name


def read_constraints(path: Path) -> dict[str, str]:
    """Distribution -> version of a constraints file."""
    text = read_text(path, "constraints file", "restore it from git or re-submit the entries that name it", EntryError)
    pins = (line.split("==", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {canonicalize_name(name.strip()): version.strip() for name, version in pins}


def _changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'name now (the entry's: recorded)' for each name whose value differs, the key packages first."""
    names = sorted(
        (n for n in recorded.keys() | now.keys() if recorded.get(n) != now.get(n)),
        key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n),
    )
    return [
        f"{name} {now.get(name) or 'not installed'} (the entry's: {recorded.get(name) or 'none'})" for name in names
    ]


def environment_changes(recorded: Environment, root: Path, run_environment: dict[str, str]) -> list[str]:
    """What differs between the environment of a re-run (``run_environment``: the run's record of it)
    and the one an entry was measured in (``recorded``, its constraints file under ``root``): the
    installed versions against the constraints file, then python and the device (and torch and
    lightning where the entry names no constraints file); [] where nothing does."""
    fields = ("python", "device") + (() if recorded.constraints else ("torch", "lightning"))
    changes = _changes({f: getattr(recorded, f) for f in fields}, {f: run_environment.get(f) for f in fields})
    if recorded.constraints is not None:
        changes = _changes(read_constraints(root / recorded.constraints), installed()) + changes
    return changes


def compare_environment(recorded: Environment, root: Path, run_environment: dict[str, str]) -> str:
    """One line: how the environment of a re-run differs from the entry's (:func:`environment_changes`)."""
    changes = environment_changes(recorded, root, run_environment)
    source = (
        f"the entry's {recorded.constraints}"
        if recorded.constraints is not None
        else "the entry's (which names no constraints file: torch, lightning, python and device compared)"
    )
    if not changes:
        return f"environment: as {source}"
    more = f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
    fix = (
        f"; `pip install -e . -c {root / recorded.constraints}` installs the entry's versions"
        if recorded.constraints is not None
        else ""
    )
    return f"environment: differs from {source} in {', '.join(changes[:SHOWN])}{more}{fix}"
