"""benchmark/'s import graph, read from the source with ``ast`` (nothing is imported).

An edge is one import of a project module by another: at module level, inside a function, or a
registry's discovery (``importlib.import_module("benchmark...")``; an f-string's constant prefix
stands for every module it starts). ``tests/test_dependencies.py`` checks the layer contract on it;
``python scripts/importgraph.py [ROOT]`` prints each module's imports, the import cycles and the
imports inside functions.
"""

from __future__ import annotations

import ast
import collections
import sys
from pathlib import Path
from typing import NamedTuple


class Edge(NamedTuple):
    source: str  # the importing module
    target: str  # the imported module (the longest project module the import names)
    kind: str  # module | function | discovery
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``


def modules(root: Path) -> dict[str, Path]:
    """Every module of ``root/benchmark`` by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / "benchmark").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _project_module(name: str, files: dict[str, Path]) -> str:
    """The longest prefix of the dotted ``name`` that is a module of the project."""
    parts = name.split(".")
    return next(".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in files)


def _imported(node: ast.AST, package: str, files: dict[str, Path]) -> list[str]:
    """The modules an import statement names (a ``from`` import of a submodule names the submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
    return []


def _discovered(node: ast.AST, files: dict[str, Path]) -> list[str]:
    """The project modules an ``import_module(...)`` call names."""
    if not (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args):
        return []
    argument = node.args[0]
    if isinstance(argument, ast.Constant) and str(argument.value).startswith("benchmark"):
        return [argument.value]
    if isinstance(argument, ast.JoinedStr) and argument.values and isinstance(argument.values[0], ast.Constant):
        prefix = argument.values[0].value
        return [m for m in files if m.startswith(prefix)] if prefix.startswith("benchmark.") else []
    return []


def _visit(
    node: ast.AST,
    source: str,
    package: str,
    files: dict[str, Path],
    found: list[Edge],
    in_function: bool = False,
    type_checking: bool = False,
) -> None:
    for child in ast.iter_child_nodes(node):
        function = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        checking = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
        for name in _imported(child, package, files):
            if name.split(".")[0] == "benchmark":
                kind = "function" if function else "module"
                found.append(Edge(source, _project_module(name, files), kind, child.lineno, checking))
        for name in _discovered(child, files):
            found.append(Edge(source, name, "discovery", child.lineno, False))
        _visit(child, source, package, files, found, function, checking)


def edges(root: Path) -> list[Edge]:
    """Every import of a project module by another under ``root/benchmark``."""
    files, found = modules(root), []
    for source, path in files.items():
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        _visit(ast.parse(path.read_text(), str(path)), source, package, files, found)
    return [edge for edge in found if edge.source != edge.target]


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (the import cycles), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def main(root: Path) -> None:
    found = edges(root)

    def short(module: str) -> str:
        return module.removeprefix("benchmark.") or "benchmark"

    imports: dict[str, dict[str, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    for edge in found:
        imports[edge.source][edge.kind].add(short(edge.target) + (" (TYPE_CHECKING)" if edge.type_checking else ""))
    for module in modules(root):
        kinds = [
            f"{kind}: {', '.join(sorted(imports[module][kind]))}"
            for kind in ("module", "function", "discovery")
            if imports[module][kind]
        ]
        if kinds:
            print(f"{short(module)}  " + "; ".join(kinds))
    for kinds in (("module",), ("module", "function"), ("module", "function", "discovery")):
        graph: dict[str, set[str]] = collections.defaultdict(set)
        for edge in found:
            if edge.kind in kinds:
                graph[edge.source].add(edge.target)
        cycles = [[short(m) for m in cycle] for cycle in sccs(graph)]
        print(f"cycles over {' + '.join(kinds)} imports: {cycles or 'none'}")
    print("imports inside functions, outside the CLI:")
    for edge in sorted(set(found), key=lambda e: (e.source, e.line)):
        if edge.kind == "function" and not edge.source.startswith("benchmark.cli"):
            print(f"  {modules(root)[edge.source].relative_to(root)}:{edge.line} -> {edge.target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
