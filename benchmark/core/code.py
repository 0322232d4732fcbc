"""The identity of an attack's code: a sha256 of each source file its results depend on.

An attack's code is its class's module and, transitively, every module it imports (statically: any
``import`` statement, at the top or inside a function) from its own package and from
``benchmark.attacks``, where the base classes and the shared components live. For a built-in attack
that is its file under ``benchmark/attacks/`` with ``base.py``, the components it uses and the modules
they use; editing another attack's file changes nothing. For a plugin it is its entry point's
module and the modules of its package that uses (and any of ``benchmark.attacks`` it builds on), whether
the package is installed or editable. The files are found as the import system would find them, but
without importing anything (no package's ``__init__`` runs): the identity of an attack that runs
``--isolated`` is computed without running its code. The rest of leakbench (victims, defences,
metrics, the runner) is the protocol, the same for every attack; what it measures is fixed by the
task's spec hash and version.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from benchmark.core.errors import first_line

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
            base = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), anchor)
                if node.level
                else node.module
            )
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def find_spec(name: str) -> ModuleSpec | None:
    """Where module ``name`` is, importing nothing: a top-level module as the import system finds it,
    a submodule in its parent package's folders; None where it is not found (or its parent is no package)."""
    parent, _, _ = name.rpartition(".")
    if not parent:
        try:
            return importlib.util.find_spec(name)
        except ValueError:  # imported without a spec (``__main__``)
            return None
    outer = find_spec(parent)
    if outer is None or outer.submodule_search_locations is None:
        return None
    return PathFinder.find_spec(name, list(outer.submodule_search_locations))


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
        spec = find_spec(name)  # None for ``a.b`` where ``a`` is a module, not a package: an attribute
        if spec is None or not spec.has_location or spec.origin is None:
            continue
        found[name] = Path(spec.origin)
        if spec.origin.endswith(".py"):
            tree = ast.parse(found[name].read_bytes(), filename=spec.origin)
            pending += [
                n for n in _imported(tree, name, spec.submodule_search_locations is not None) if _within(n, packages)
            ]
    return dict(sorted(found.items()))


def attack_code(module: str) -> dict[str, str]:
    """Module name -> sha256 of its file, for every file of the code of the attack in ``module`` (see the
    module's docstring)."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in code_files(module).items()}


def registered_summaries(module: str, registry: str) -> dict[str, str]:
    """Name -> the first line of the class's docstring, for each class of ``module`` decorated
    ``@REGISTRY.register("name", ...)``, read from its source without importing it."""
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named '{module}'")
    tree = ast.parse(Path(spec.origin).read_bytes(), filename=spec.origin)
    summaries = {}
    for node in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for call in (decorator for decorator in node.decorator_list if isinstance(decorator, ast.Call)):
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "register"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == registry
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                summaries[call.args[0].value] = first_line(ast.get_docstring(node) or "")
    return summaries
