"""One registry type for attacks, tasks, models, datasets and metrics.

A registry checks the base class of what it receives, refuses a duplicate name, and answers an
unknown name with "did you mean" and the list of what exists. Registries may discover entries lazily
(importing built-in modules, scanning task folders, loading an entry-point group), so external
packages add entries without a change to this repository. A plugin that fails to load is reported in
one line (its entry point, group, package and error) and skipped, so it breaks nothing else.
:meth:`Registry.locate` finds a plugin's entry point without loading it, for callers that must not run
its code (``--isolated``, docs/trust.md).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from benchmark.core.errors import PluginError, UnknownNameError, first_line

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")

log = logging.getLogger(__name__)


def did_you_mean(name: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Name -> object mapping of one kind of thing.

    Args:
        kind: what the entries are, used in messages ("attack", "task", ...).
        base: if given, every entry must be a subclass of it; ``"module:Class"`` names it, imported
            on the first check (so that a registry's module need not import the base's dependencies).
        discover: called once, on first lookup, to register the built-in entries.
        entry_point_group: an ``importlib.metadata`` group whose entry points are registered too;
            each entry point's name is the registered name and it loads to the object. One that
            fails to load (or loads to something of the wrong kind) is skipped with a warning and
            kept in :meth:`broken`.
    """

    def __init__(
        self,
        kind: str,
        *,
        base: type | str | None = None,
        discover: Callable[[], None] | None = None,
        entry_point_group: str | None = None,
    ) -> None:
        self.kind = kind
        self._base = base
        self._discover = discover
        self._entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._broken: dict[str, str] = {}
        self._plugins: set[str] = set()  # the names loaded from entry points
        self._built_in = False  # the built-in entries are discovered (by locate), the entry points not loaded
        self._discovered = False  # the built-in entries are discovered and the entry points loaded

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorator(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return decorator

    def check(self, name: str, obj: object) -> None:
        """A TypeError where ``obj`` is not of this registry's kind."""
        if isinstance(self._base, str):
            module, _, attribute = self._base.partition(":")
            self._base = getattr(importlib.import_module(module), attribute)
        if self._base is not None and not (isinstance(obj, type) and issubclass(obj, self._base)):
            raise TypeError(f"{self.kind} '{name}' must be a subclass of {self._base.__name__}, got {obj!r}")

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> None:
        self.check(name, obj)
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} '{key}' is already registered")
        self._entries[name] = obj
        self._aliases.update({alias: name for alias in aliases})

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (an alias resolves to its entry's name)."""
        self._ensure_discovered()
        canonical = self._aliases.get(name, name)
        if canonical in self._broken:
            raise PluginError(f"{self.kind} '{name}' cannot be used: {self._broken[canonical]}")
        if canonical not in self._entries:
            raise self._unknown(name, self.names())
        return canonical

    def locate(self, name: str) -> tuple[str, T | EntryPoint]:
        """The registered name behind ``name`` and its entry, loading no entry point: a built-in (or
        added) entry itself; a plugin's entry point, not loaded (whether it loads or not)."""
        self._ensure_built_in()
        canonical = self._aliases.get(name, name)
        if canonical in self._entries and canonical not in self._plugins:
            return canonical, self._entries[canonical]
        points = {
            point.name: point
            for point in self.entry_points()
            if point.name not in self._entries or point.name in self._plugins
        }
        if canonical in points:
            return canonical, points[canonical]
        raise self._unknown(name, sorted({*(n for n in self._entries if n not in self._plugins), *points}))

    def _unknown(self, name: str, known: list[str]) -> UnknownNameError:
        return UnknownNameError(
            f"unknown {self.kind} '{name}'{did_you_mean(name, known + list(self._aliases))}; "
            f"known: {', '.join(known) or 'none'}"
        )

    def name_of(self, obj: T) -> str:
        """The name ``obj`` is registered under (the object itself, not an instance of it)."""
        self._ensure_discovered()
        for name, entry in self._entries.items():
            if entry is obj:
                return name
        raise UnknownNameError(f"{obj!r} is no registered {self.kind}; register it first")

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        self._ensure_discovered()
        return sorted(self._entries)

    def plugins(self) -> list[tuple[str, T]]:
        """The entries loaded from entry points, by name."""
        self._ensure_discovered()
        return sorted((name, self._entries[name]) for name in self._plugins)

    def broken(self) -> dict[str, str]:
        """Entry points of the group that failed to load: name -> why, and the fix."""
        self._ensure_discovered()
        return dict(sorted(self._broken.items()))

    def __contains__(self, name: str) -> bool:
        self._ensure_discovered()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._ensure_discovered()
        return iter(sorted(self._entries.items()))

    def _ensure_built_in(self) -> None:
        if not (self._discovered or self._built_in) and self._discover is not None:
            self._built_in = True
            self._discover()

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self._discover is not None and not self._built_in:
            self._discover()
        for entry_point in self.entry_points():
            if entry_point.name not in self._entries and entry_point.name not in self._broken:
                self._load(entry_point)

    def entry_points(self) -> list[EntryPoint]:
        """The entry points of the group (the installed plugins), not loaded."""
        if self._entry_point_group is None:
            return []
        from importlib.metadata import entry_points  # only here: it costs a tenth of a second to import

        return list(entry_points(group=self._entry_point_group))

    def _load(self, entry_point: EntryPoint) -> None:
        try:
            self.add(entry_point.name, entry_point.load())
            self._plugins.add(entry_point.name)
        except Exception as err:  # whatever a plugin's import raises is its own bug: the others go on
            self._broken[entry_point.name] = load_failure(entry_point, type(err).__name__, first_line(err))
            log.warning("%s plugin skipped: %s", self.kind, self._broken[entry_point.name])


def load_failure(entry_point: EntryPoint, error: str, message: str) -> str:
    """Why a plugin cannot be used, and the fix: its entry point failed to load, raising ``error`` with ``message``."""
    package = f"{entry_point.dist.name} {entry_point.dist.version}" if entry_point.dist else "an unknown package"
    return (
        f"its entry point '{entry_point.name} = {entry_point.value}' (group {entry_point.group}, package "
        f"{package}) failed to load: {error}: {message}; fix the entry point or the package, or uninstall it"
    )
