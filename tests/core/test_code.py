"""An attack's code: its module and the modules of its own package and of benchmark.attacks it imports."""

import importlib
import sys
from pathlib import Path

from benchmark.attacks import ATTACKS
from benchmark.core.code import attack_code, code_files
from benchmark.core.errors import first_line


def test_a_built_in_attack_is_its_module_and_what_it_uses_of_benchmark_attacks():
    files = code_files(ATTACKS.get("idlg").__module__)
    assert {
        "benchmark.attacks.idlg",
        "benchmark.attacks.dlg",
        "benchmark.attacks.base",
        "benchmark.attacks.components.lbfgs",
    } <= files.keys()
    assert (
        not {"benchmark.attacks.grnn", "benchmark.victim.client", "benchmark.pipeline.run"} & files.keys()
    )  # others', the protocol
    assert files["benchmark.attacks.idlg"].name == "idlg.py"


def test_a_plugin_is_the_modules_of_its_package_it_imports_and_a_change_to_one_changes_its_identity(own_package: Path):
    cls = importlib.import_module("mine_attack").Mine
    code = attack_code(cls.__module__)
    assert {
        "mine_attack",
        "mine_attack.attack",
        "mine_attack.helper",
        "mine_attack.inner",
        "benchmark.attacks.dlg",
    } <= code.keys() and "mine_attack.unused" not in code
    (own_package / "unused.py").write_text("# not imported\n")
    assert attack_code(cls.__module__) == code
    (own_package / "inner.py").write_text("def project(attack):\n    return None\n")
    changed = attack_code(cls.__module__)
    assert [name for name in code if code[name] != changed[name]] == ["mine_attack.inner"]


def test_a_plugin_s_files_are_found_without_importing_it(own_package: Path):
    code = attack_code("mine_attack")  # the entry point's module, whose __init__ imports the attack
    assert {"mine_attack", "mine_attack.attack", "mine_attack.helper", "mine_attack.inner"} <= code.keys()
    assert not [name for name in sys.modules if name.split(".")[0] == "mine_attack"]


def test_the_summaries_read_from_the_sources_are_the_registered_classes_docstrings():
    from benchmark.attacks import builtin_summaries

    registered = {name: first_line(cls.__doc__ or "") for name, cls in ATTACKS if name not in ATTACKS._plugins}
    assert builtin_summaries() == registered and len(registered) == 9


def test_a_registered_summary_is_each_decorated_class_s_first_docstring_line(tmp_path: Path, monkeypatch):
    (tmp_path / "summaries_module.py").write_text(
        'import nothing_installed\n\n\n@THINGS.register("b", aliases=("bee",))\nclass B:\n    """\n    Bee line.\n\n    More.\n    """\n\n\n'
        '@OTHER.register("c")\nclass C:\n    """Not of THINGS."""\n\n\nclass D:\n    """Not registered."""\n\n\n'
        '@THINGS.register("e")\nclass E:\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from benchmark.core.code import registered_summaries

    assert registered_summaries("summaries_module", "THINGS") == {"b": "Bee line.", "e": ""}
    assert "summaries_module" not in sys.modules  # read, not imported (its import would fail)
