import pytest

from benchmark.core.errors import UnknownNameError
from benchmark.core.registry import Registry


class Base:
    pass


def test_unknown_name_suggests_the_closest_and_lists_all():
    registry: Registry[type] = Registry("widget", base=Base)
    registry.add("sprocket", type("Sprocket", (Base,), {}))
    registry.add("gear", type("Gear", (Base,), {}))
    with pytest.raises(
        UnknownNameError, match=r"unknown widget 'sprockt' \(did you mean 'sprocket'\?\); known: gear, sprocket"
    ):
        registry.get("sprockt")


def test_duplicate_names_and_aliases_are_refused():
    registry: Registry[type] = Registry("widget", base=Base)
    registry.add("gear", Base, aliases=("cog",))
    with pytest.raises(ValueError, match="already registered"):
        registry.add("gear", Base)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("other", Base, aliases=("cog",))


def test_base_class_is_checked():
    registry: Registry[type] = Registry("widget", base=Base)
    with pytest.raises(TypeError, match="subclass of Base"):
        registry.add("int", int)


def test_a_base_named_by_its_module_is_imported_at_the_first_check():
    registry: Registry[type] = Registry("number", base="numbers:Integral")
    assert isinstance(registry._base, str)
    registry.add("bool", bool)
    with pytest.raises(TypeError, match="subclass of Integral"):
        registry.add("float", float)


def test_alias_resolves_to_the_same_entry_and_discovery_runs_once():
    calls = []
    registry: Registry[type] = Registry(
        "widget", base=Base, discover=lambda: calls.append(registry.add("gear", Base, aliases=("cog",)))
    )
    assert registry.get("cog") is registry.get("gear") is Base
    assert "cog" in registry and registry.names() == ["gear"]
    assert len(calls) == 1


def test_an_entry_is_found_by_its_name_and_its_name_by_the_entry():
    registry: Registry[type] = Registry("widget", base=Base)
    gear = type("Gear", (Base,), {})
    registry.add("gear", gear, aliases=("cog",))
    assert registry.name_of(gear) == "gear" and registry.get(registry.name_of(gear)) is gear
    with pytest.raises(UnknownNameError, match="is no registered widget"):
        registry.name_of(Base)


def test_an_entry_point_that_fails_to_load_is_skipped_and_kept_as_broken(monkeypatch, caplog):
    from importlib.metadata import EntryPoint

    from benchmark.core.errors import PluginError

    points = [EntryPoint("int", "builtins:int", "widgets"), EntryPoint("gone", "no_such_module:Thing", "widgets")]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: points)
    registry: Registry[type] = Registry(
        "widget", base=Base, discover=lambda: registry.add("gear", Base), entry_point_group="widgets"
    )
    assert registry.names() == ["gear"] and list(registry.broken()) == ["gone", "int"]
    assert "TypeError: widget 'int' must be a subclass of Base" in registry.broken()["int"]
    assert len([r for r in caplog.records if "widget plugin skipped" in r.getMessage()]) == 2
    with pytest.raises(
        PluginError,
        match=r"^widget 'gone' cannot be used: its entry point 'gone = no_such_module:Thing' "
        r"\(group widgets, package an unknown package\) failed to load: "
        r"ModuleNotFoundError",
    ):
        registry.get("gone")


def test_locate_finds_an_entry_without_loading_any_entry_point(monkeypatch):
    from importlib.metadata import EntryPoint

    points = [EntryPoint("thing", "no_such_module:Thing", "widgets")]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: points)
    registry: Registry[type] = Registry(
        "widget", base=Base, discover=lambda: registry.add("gear", Base, aliases=("cog",)), entry_point_group="widgets"
    )
    assert registry.locate("cog") == ("gear", Base)
    assert registry.locate("thing") == ("thing", points[0]) and not registry._discovered  # not loaded, not broken
    with pytest.raises(UnknownNameError, match=r"unknown widget 'thin' \(did you mean 'thing'\?\); known: gear, thing"):
        registry.locate("thin")
    assert registry.names() == ["gear"] and list(registry.broken()) == ["thing"]  # a full lookup loads it
