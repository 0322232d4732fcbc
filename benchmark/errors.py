"""The old path of :mod:`benchmark.core.errors`, kept for the plugins and documents that import it."""

from benchmark.core import errors as _errors


def __getattr__(name: str):
    return getattr(_errors, name)
