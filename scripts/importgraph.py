"""benchmark/'s project import graph, by ast: module-level, function-level, and registry discovery
(importlib.import_module("benchmark...") strings; an f-string prefix stands for every submodule)."""
import ast
import collections
import pathlib
import sys


def modules(root):
    out = {}
    for p in sorted((root / "benchmark").rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out

def edges(root):
    """(src, dst, kind, line, type_checking); kind: module | function | discovery."""
    files, found = modules(root), []
    known = lambda m: next(m[:i] for i in range(len(m), 0, -1) if m[:i] in files and (i == len(m) or m[i] == "."))
    for src, path in files.items():
        package = src if path.name == "__init__.py" else src.rpartition(".")[0]
        def visit(node, in_function, tc):
            for child in ast.iter_child_nodes(node):
                fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                t = tc or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
                targets = []
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join(anchor + ([base] if base else []))
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in child.names]
                elif isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module") and child.args:
                    arg = child.args[0]
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("benchmark"):
                        found.append((src, arg.value, "discovery", child.lineno, False))
                    elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                        prefix = arg.values[0].value
                        found.extend((src, m, "discovery", child.lineno, False) for m in files
                                     if m.startswith(prefix) and prefix.startswith("benchmark."))
                for t_ in targets:
                    if t_.split(".")[0] == "benchmark":
                        found.append((src, known(t_), "function" if fn else "module", child.lineno, t))
                visit(child, fn, t)
        visit(ast.parse(path.read_text(), str(path)), False, False)
    return [e for e in found if e[0] != e[1]]

def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    def strong(v):
        index[v] = low[v] = len(index); stack.append(v); on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while not c or c[-1] != v:
                c.append(stack.pop()); on.discard(c[-1])
            if len(c) > 1: out.append(sorted(c))
    for v in sorted(graph):
        if v not in index: strong(v)
    return out

if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    E, short = edges(root), lambda m: m.removeprefix("benchmark.") or "benchmark"
    by = collections.defaultdict(lambda: collections.defaultdict(set))
    for s, d, k, l, tc in E: by[s][k].add(short(d) + ("(TC)" if tc else ""))
    for m in modules(root):
        if by[m]: print(f"{short(m)}: " + "; ".join(f"{k[0].upper()}[{', '.join(sorted(by[m][k]))}]" for k in ("module", "function", "discovery") if by[m][k]))
    for kinds in (("module",), ("module", "function"), ("module", "function", "discovery")):
        g = collections.defaultdict(set)
        for s, d, k, l, tc in E:
            if k in kinds: g[s].add(d)
        print(f"SCCs over {'+'.join(kinds)}:", [[short(m) for m in c] for c in sccs(g)] or "none")
    print("function-level imports outside cli:")
    for s, d, k, l, tc in sorted(set(E), key=lambda e: (e[0], e[3])):
        if k == "function" and not f"{s}.".startswith("benchmark.cli."): print(f"  {modules(root)[s].relative_to(root)}:{l} -> {d}")
