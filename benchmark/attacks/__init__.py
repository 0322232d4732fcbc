"""Attacks, registered by name. Built-ins are discovered on first lookup; installed packages add
their own through the ``leakbench.attacks`` entry-point group (name = attack name, value = class)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from benchmark.core.code import registered_summaries
from benchmark.core.errors import UnknownNameError
from benchmark.core.registry import Registry

if TYPE_CHECKING:
    from benchmark.attacks.base import Attack

_BUILTIN = ("dlg", "idlg", "inverting_gradients", "grnn", "bias", "rgap", "ssras", "imprint", "gradinversion")


def _discover() -> None:
    for module in _BUILTIN:
        importlib.import_module(f"benchmark.attacks.{module}")


ATTACKS: Registry[type[Attack]] = Registry(
    "attack", base="benchmark.attacks.base:Attack", discover=_discover, entry_point_group="leakbench.attacks"
)


def builtin_summaries() -> dict[str, str]:
    """Each built-in attack's name -> the first line of its class's docstring, read from the sources
    without importing them, nor torch (``leakbench ls attacks``)."""
    return {
        name: summary
        for module in _BUILTIN
        for name, summary in registered_summaries(f"benchmark.attacks.{module}", "ATTACKS").items()
    }


def code_module(name: str) -> str | None:
    """The module attack ``name``'s code starts from (:mod:`benchmark.core.code`), loading no plugin: a
    built-in's class's module, a plugin's entry point's module; None for an unknown name."""
    try:
        _, found = ATTACKS.locate(name)
    except UnknownNameError:
        return None
    return found.__module__ if isinstance(found, type) else found.module
