"""Errors, and the exit codes the CLI gives them (the list: ``docs/errors.md``).

A :class:`LeakBenchError` is a setting, a file or an environment a user can fix: it names the problem
and the fix in one line, stops the command before it writes a result, and exits 2. An attack's own
mathematics failing (:data:`ATTACK_FAILURES`) is a result instead: the target is recorded as failed,
with the reason, and the run goes on.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class LeakBenchError(Exception):
    """Base class of every error a user can cause or fix (bad name, bad spec, missing data)."""


class UnknownNameError(LeakBenchError, LookupError):
    """A name that no registry holds."""


class PluginError(LeakBenchError):
    """An installed plugin whose entry point fails to load (a typo in it, an import error in its package)."""


class SpecError(LeakBenchError, ValueError):
    """A task spec that is malformed or violates its schema."""


class SettingError(LeakBenchError, ValueError):
    """An option or argument outside its range, or a device that is not here."""


class FileError(LeakBenchError, ValueError):
    """A file the tool reads that is unreadable (bad bytes or encoding, malformed, truncated, wrong
    types), or one it cannot write where it was told to."""


class DataUnavailableError(LeakBenchError):
    """Data a protocol needs is neither present locally nor downloadable from here."""


class NotApplicableError(LeakBenchError):
    """An attack that cannot run under a task's setting (e.g. a batch-size-1 label rule on B > 1)."""


class AttackError(LeakBenchError):
    """An attack raised something other than a failure of its mathematics: a bug, not a result."""


def attack_error(attack: str, kind: str, message: str, context: str = "") -> AttackError:
    """The error of attack ``attack`` that raised ``kind`` (an exception's type name) with ``message``:
    ``context`` says where it ran, when that explains it."""
    return AttackError(
        f"attack {attack} raised {kind}: {message}{context}; this is not a result, so no target row "
        f"was written (the traceback is above): fix the attack or its options"
    )


class AttackFailure(ArithmeticError):
    """An attack's own declared failure on a problem (it diverged, its system is singular, its
    solver did not converge): the target is recorded as failed with this reason."""


def __getattr__(name: str) -> Any:
    """``ATTACK_FAILURES``, made on first use (PEP 562), so that importing the errors imports no torch:
    what a fit may raise for its target to be recorded as failed (anything else stops the run),
    ``(AttackFailure, FloatingPointError, torch.linalg.LinAlgError)``."""
    if name == "ATTACK_FAILURES":
        import torch

        return (AttackFailure, FloatingPointError, torch.linalg.LinAlgError)
    raise AttributeError(f"module 'benchmark.errors' has no attribute {name!r}")


def first_line(err: BaseException | str, limit: int = 200) -> str:
    """The first line of ``err``'s message (or of a message), at most ``limit`` characters ('' for
    none): what a one-line error quotes of another."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def integer_problem(value: object, minimum: int) -> str | None:
    """Why ``value`` is not an integer ≥ ``minimum``, or None: the one message of every count (0 never
    stands for a default)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        return f"must be a whole number >= {minimum}, got {value!r}"
    return None


def at_least(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an integer ≥ ``minimum``; else a :class:`SettingError` naming ``name``."""
    if (problem := integer_problem(value, minimum)) is not None:
        raise SettingError(f"{name} {problem}")
    return int(value)


def finite(name: str, value: object, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in [``low``, ``high``]; else a :class:`SettingError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not low <= value <= high
        or not math.isfinite(value)
    ):
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise SettingError(f"{name} must be a finite number{bounds}, got {value!r}")
    return float(value)
