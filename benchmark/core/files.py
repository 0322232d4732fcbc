"""Reading the files a user gives or a run left: every problem is one line naming the file and the fix.

Bad bytes, a wrong encoding, malformed YAML or JSON and a wrong top-level type are told apart; the
caller names what the file is (``what``), what to do about it (``fix``) and the error class it
raises (a spec's is :class:`~benchmark.core.errors.SpecError`, an entry's its own).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmark.core.errors import FileError, LeakBenchError


def read_text(path: Path, what: str, fix: str, error: type[LeakBenchError] = FileError) -> str:
    """The UTF-8 text of ``path``."""
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError) as err:  # ValueError: a name holding a NUL byte
        raise error(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}; {fix}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); {fix}"
        ) from None


def read_yaml(path: Path, what: str, fix: str, error: type[LeakBenchError] = FileError) -> dict[str, Any]:
    """The YAML mapping in ``path``."""
    try:
        content = yaml.safe_load(read_text(path, what, fix, error))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise error(f"{path}: malformed YAML{where}: {problem}; {fix}") from None
    return _mapping(content, path, what, "a YAML", fix, error)


def read_json(path: Path, what: str, fix: str, error: type[LeakBenchError] = FileError) -> dict[str, Any]:
    """The JSON object in ``path``."""
    text = read_text(path, what, fix, error)
    try:
        content = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise error(f"{what} {path} is not valid JSON ({' '.join(str(err).split())[:120]}); {fix}") from None
    return _mapping(content, path, what, "a JSON", fix, error)


def _mapping(content: Any, path: Path, what: str, kind: str, fix: str, error: type[LeakBenchError]) -> dict[str, Any]:
    if not isinstance(content, dict) or not all(isinstance(key, str) for key in content):
        got = type(content).__name__ if not isinstance(content, dict) else "a key that is not text"
        raise error(f"{path}: {what} must be {kind} mapping of named keys, got {got}; {fix}")
    return content


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never a part
    (temporary file in the same folder, fsync, rename); a folder that cannot hold it is a one-line
    :class:`~benchmark.core.errors.FileError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            try:
                os.chmod(handle.name, 0o666 & ~_umask())  # as open() would make it, not mkstemp's 0600
                handle.write(data.encode() if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                os.unlink(handle.name)
                raise
        os.replace(handle.name, path)
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror or err}; choose a folder that can hold it") from None
    return path
