"""User-facing errors: each names the problem and the fix in one line; the CLI prints them and exits 2."""

from __future__ import annotations


class LeakBenchError(Exception):
    """Base class of every error a user can cause or fix (bad name, bad spec, missing data)."""


class UnknownNameError(LeakBenchError, LookupError):
    """A name that no registry holds."""


class SpecError(LeakBenchError, ValueError):
    """A task spec that is malformed or violates its schema."""


class DataUnavailableError(LeakBenchError):
    """Data a protocol needs is neither present locally nor downloadable from here."""


class NotApplicableError(LeakBenchError):
    """An attack that cannot run under a task's setting (e.g. a batch-size-1 label rule on B > 1)."""
