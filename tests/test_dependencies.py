"""The layer contract: benchmark/'s imports run one way, from the CLI down to a core with no project
imports, and no module hides an import inside a function (scripts/importgraph.py reads them)."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from importgraph import edges, sccs  # noqa: E402

# bottom-up; the packages of one set are siblings, which do not import each other
LAYERS = [
    {"core"},
    {"protocol"},
    {"fl"},
    {"data", "models", "defenses", "metrics", "attacks"},
    {"victim"},
    {"pipeline"},
    {"apps"},
    {"cli"},
]
SHIMS = {"benchmark.errors"}  # old public paths: leaves no layer may import
# imports kept inside a function, each for its reason: the package's lazy API (importing it imports no
# torch), and the sandbox's entry script, which imports leakbench only once it has set its Python path
LAZY = {("benchmark", "benchmark.pipeline.run"), ("benchmark.pipeline.sandbox", "benchmark.pipeline.isolated")}


def layer(module: str) -> tuple[int, str] | None:
    if module == "benchmark" or module in SHIMS:
        return None
    part = module.split(".")[1]
    found = [(rank, part) for rank, group in enumerate(LAYERS) if part in group]
    assert found, f"{module} is in no layer: add benchmark/{part} to LAYERS in tests/test_layers.py"
    return found[0]


def violations(root: Path) -> list[str]:
    found, imports = [], edges(root)
    for src, dst, kind, line, _ in imports:
        if kind == "discovery":  # a registry importing its own plugins by name, inside its package
            continue
        where = f"{src}:{line}"
        if dst in SHIMS and src not in SHIMS:
            found.append(f"{where} imports the shim {dst}")
        a, b = layer(src), layer(dst)
        if a is not None and b is not None and (b[0] > a[0] or (b[0] == a[0] and a[1] != b[1])):
            found.append(f"{where} imports {dst} ({b[1]} is {'above' if b[0] > a[0] else 'a sibling of'} {a[1]})")
        if kind == "function" and (a is None or a[1] != "cli") and (src, dst) not in LAZY:
            found.append(f"{where} imports {dst} inside a function")
    graph: dict[str, set[str]] = {}
    for src, dst, kind, _, _ in imports:
        if kind != "discovery" and (src, dst) not in LAZY:
            graph.setdefault(src, set()).add(dst)
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in sccs(graph)]
    return found


def test_imports_run_one_way():
    assert violations(ROOT) == []


def _copy_with(tmp_path: Path, file: str, text: str) -> list[str]:
    shutil.copytree(ROOT / "benchmark", tmp_path / "benchmark", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "benchmark" / file
    path.write_text(path.read_text() + text)
    return violations(tmp_path)


def test_an_upward_a_sibling_a_hidden_and_a_circular_import_each_fail(tmp_path):
    assert any(
        "pipeline is above core" in v
        for v in _copy_with(tmp_path / "1", "core/errors.py", "\nimport benchmark.pipeline.run\n")
    )
    assert any(
        "data is a sibling of metrics" in v
        for v in _copy_with(tmp_path / "2", "metrics/image.py", "\nfrom benchmark.data import Samples\n")
    )
    assert any(
        "inside a function" in v
        for v in _copy_with(tmp_path / "3", "fl/updates.py", "\ndef f():\n    from benchmark.core import errors\n")
    )
    assert any(
        "import cycle" in v
        for v in _copy_with(tmp_path / "4", "pipeline/folder.py", "\nimport benchmark.pipeline.run\n")
    )
    assert any(
        "imports the shim" in v
        for v in _copy_with(tmp_path / "5", "apps/perf.py", "\nfrom benchmark.errors import SettingError\n")
    )


def test_a_shim_only_forwards():
    """The old paths hold no code of their own: what they give is the new module's."""
    import benchmark.core.errors
    import benchmark.errors

    assert benchmark.errors.AttackFailure is benchmark.core.errors.AttackFailure
    assert benchmark.errors.ATTACK_FAILURES == benchmark.core.errors.ATTACK_FAILURES
    from benchmark.attacks.base import OptimizationAttack  # noqa: F401  the plugin guide's imports
    from benchmark.fl.observation import Observation
    from benchmark.victim import Observation as Published

    assert Published is Observation
