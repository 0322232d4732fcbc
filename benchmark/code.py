"""The identity of an attack's code: a sha256 of each source file its results depend on.

An attack's code is its class's module and, transitively, every module it imports (statically: any
``import`` statement, at the top or inside a function) from its own package and from
``benchmark.attacks``, where the base classes and the shared components live. For a built-in attack
that is its file under ``benchmark/attacks/`` with ``base.py``, the components it uses and the modules
they use; editing another attack's file changes nothing. For a plugin it is the modules of its
package it uses (and any of ``benchmark.attacks`` it builds on), whether the package is installed or
editable. The rest of leakbench (victims, defences, metrics, the runner) is the protocol, the same for
every attack; what it measures is fixed by the task's spec hash and version.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

SHARED = "benchmark.attacks"  # the base classes and components every attack may build on


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement of ``module`` may refer to (``from a import b``: ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = module if is_package else module.rpartition(".")[0]
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), anchor) if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def code_files(module: str) -> dict[str, Path]:
    """Module name -> source file, for ``module`` and the modules of its package and of
    ``benchmark.attacks`` it imports, transitively."""
    top = module.split(".")[0]
    packages = (SHARED,) if top == SHARED.split(".")[0] else (SHARED, top)
    found: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # ``a.b`` where ``a`` is a module, not a package: an attribute
            continue
        if spec is None or not spec.has_location or spec.origin is None:
            continue
        found[name] = Path(spec.origin)
        if spec.origin.endswith(".py"):
            tree = ast.parse(found[name].read_bytes(), filename=spec.origin)
            pending += [n for n in _imported(tree, name, spec.submodule_search_locations is not None)
                        if _within(n, packages)]
    return dict(sorted(found.items()))


def attack_code(attack_cls: type) -> dict[str, str]:
    """Module name -> sha256 of its file, for every file of the attack's code (see the module's docstring)."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in code_files(attack_cls.__module__).items()}
