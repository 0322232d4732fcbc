"""Where data and weights are found and fetched: the cache folder, installed packages' files, and
whether downloads are allowed here ($LEAKBENCH_OFFLINE, :func:`local_only`)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from benchmark.core.errors import first_line


def package_path(package: str, *parts: str) -> Path | None:
    """The path ``parts`` inside the installed top-level ``package`` (without importing it), or None
    where the package or the path is absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    return path if path.exists() else None


def cache_dir() -> Path:
    """Root of downloaded data and weights: $LEAKBENCH_CACHE, else ~/.cache/leakbench."""
    return Path(os.environ.get("LEAKBENCH_CACHE", Path.home() / ".cache" / "leakbench"))


T = TypeVar("T")


_local_only: ContextVar[bool] = ContextVar("local_only", default=False)


def downloads_allowed() -> bool:
    """False when $LEAKBENCH_OFFLINE is set to a true value or within :func:`local_only`: no network attempt then."""
    return not _local_only.get() and os.environ.get("LEAKBENCH_OFFLINE", "").lower() not in ("1", "true", "yes")


def attempt_download(download: Callable[[], T]) -> tuple[T | None, str]:
    """``download()`` where downloads are allowed: its result and ``""``; else None and why nothing came
    (downloads disabled, or the download's error), for a message that says how to get the data."""
    if not downloads_allowed():
        return None, "downloads are disabled by LEAKBENCH_OFFLINE"
    try:
        return download(), ""
    except Exception as err:  # network errors come in many types; all mean the same here
        return None, f"the download failed ({type(err).__name__}: {first_line(err, 120)})"


@contextmanager
def local_only() -> Iterator[None]:
    """Within this block nothing is downloaded (to ask what is here, not to fetch it)."""
    token = _local_only.set(True)
    try:
        yield
    finally:
        _local_only.reset(token)
