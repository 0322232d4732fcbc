"""Finding, reading and fingerprinting task specs and suites (``tasks/*.yaml``), without
looking any name up in a registry (that is :mod:`benchmark.pipeline.tasks`).

A spec may ``include:`` another (a task name or a path relative to the including file) and
override a few keys; mappings merge recursively, everything else is replaced. Changing what a spec
measures bumps its ``version``; :func:`spec_hash` fingerprints the resolved content."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from benchmark.core.errors import SpecError
from benchmark.core.files import read_json, read_yaml, write_atomic
from benchmark.core.registry import Registry, did_you_mean
from benchmark.protocol.spec import SuiteSpec, TaskSpec


def task_dirs() -> list[Path]:
    """Folders searched for task specs: $LEAKBENCH_TASKS entries, then the shipped specs."""
    extra = [Path(p) for p in os.environ.get("LEAKBENCH_TASKS", "").split(os.pathsep) if p]
    packaged = Path(__file__).parents[1] / "_tasks"  # inside a wheel: benchmark/_tasks
    source = Path(__file__).parents[2] / "tasks"  # a source checkout or editable install
    return extra + [packaged if packaged.is_dir() else source]


def _discover_tasks() -> None:
    for folder in task_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem != "suites" and path.stem not in TASKS:
                TASKS.add(path.stem, path)


TASKS: Registry[Path] = Registry("task", discover=_discover_tasks)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text) if relative_to is None or Path(text).is_absolute() else relative_to / text
        if not path.is_file():
            raise SpecError(f"task spec file {path} does not exist; give an existing YAML path or a task name")
        return path
    return TASKS.get(text)


def _read_with_includes(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in chain:
        raise SpecError(f"{path}: include cycle through {' -> '.join(str(p) for p in chain)}")
    content = read_yaml(path, "task spec", "fix the file or give another task", SpecError)
    include = content.pop("include", None)
    if include is None:
        return content
    if not isinstance(include, str):
        raise SpecError(f"{path}: 'include' must be a task name or a YAML path, got {include!r}")
    base = _read_with_includes(_resolve_path(include, relative_to=path.parent), chain + (path.resolve(),))
    return _merge(base, content)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for key in loc:
        field = model.model_fields.get(key) if isinstance(key, str) else None
        annotation = field.annotation if field else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    """One validation error of ``model`` as a line naming the key."""
    loc = tuple(error["loc"])
    where = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "value_error":
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"unknown key '{where}'{did_you_mean(str(loc[-1]), allowed)}; allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"missing required key '{where}'"
    return f"key '{where}': {error['msg']} (got {repr(error['input'])[:80]})"


def validate_task(content: dict[str, Any], source: str) -> TaskSpec:
    """A resolved spec mapping checked against the schema; the error names the file and the key."""
    try:
        return TaskSpec.model_validate(content)
    except ValidationError as err:
        raise SpecError(f"{source}: {_describe(err.errors()[0], TaskSpec)}") from None


def check_consistency(spec: TaskSpec, source: str) -> None:
    """The settings of one spec that exclude each other, as the error that names the key."""
    if spec.threat.bn_statistics == "batch" and (spec.victim.mode != "train" or spec.fl.protocol != "fedsgd"):
        raise SpecError(
            f"{source}: key 'threat.bn_statistics': 'batch' reads the batch statistics off the BatchNorm "
            f"buffers one FedSGD step in train mode leaves; set victim.mode: train and fl.protocol: "
            f"fedsgd, or use 'known'"
        )
    if spec.threat.data_statistics is not None and spec.threat.server != "malicious":
        raise SpecError(
            f"{source}: key 'threat.data_statistics': the data statistics are granted to a malicious server, "
            f"which shapes the global model from them; set threat.server: malicious or remove threat.data_statistics"
        )


def task_file(name_or_path: str | Path) -> Path:
    """The YAML file of a task by registered name (``cifar10-lenetzhu-b1``) or by path."""
    return _resolve_path(name_or_path)


def read_task(name_or_path: str | Path) -> tuple[dict[str, Any], Path]:
    """The resolved mapping of a task by registered name (``cifar10-lenetzhu-b1``) or by YAML path, and
    its file."""
    path = task_file(name_or_path)
    return _read_with_includes(path), path


def check_file_name(spec: TaskSpec, name_or_path: str | Path, path: Path) -> None:
    """A task asked for by name is the spec of that name."""
    if str(name_or_path) in TASKS and spec.name != path.stem:
        raise SpecError(f"{path}: name '{spec.name}' differs from the file name; rename one to match")


def load_spec(name_or_path: str | Path) -> TaskSpec:
    """A task by registered name or YAML path, checked against the schema and for consistency but not
    against the registries (:func:`benchmark.pipeline.tasks.load_task` adds those): it imports no torch,
    so ``leakbench ls tasks`` answers at once."""
    content, path = read_task(name_or_path)
    spec = validate_task(content, str(path))
    check_consistency(spec, str(path))
    check_file_name(spec, name_or_path, path)
    return spec


def spec_hash(spec: TaskSpec) -> str:
    """sha256 of the resolved spec's canonical JSON: equal hashes measure the same protocol.

    Keys at their default value are left out, so a new spec key whose default keeps the old protocol
    (a defence of ``None``, say) leaves every existing hash as it was.
    """
    canonical = json.dumps(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


VERSIONS_FILE = "versions.json"


def recorded_versions() -> dict[str, dict[str, str]]:
    """The shipped specs' hashes by name and version (``tasks/versions.json``): a spec whose content
    changes must change its version, so a (name, version) always names one protocol."""
    path = task_dirs()[-1] / VERSIONS_FILE
    return (
        read_json(path, "the record of spec versions", "restore tasks/versions.json from git") if path.is_file() else {}
    )


def record_version(spec: TaskSpec) -> Path:
    """Record ``spec``'s hash under its name and version; refused if that version was recorded with
    other content (bump the version instead)."""
    versions = recorded_versions()
    recorded, digest = versions.setdefault(spec.name, {}), spec_hash(spec)
    if recorded.get(str(spec.version), digest) != digest:
        raise SpecError(
            f"task '{spec.name}' version {spec.version} was recorded with other content: bump its "
            f"version (and say what changed in tasks/README.md), then record it"
        )
    recorded[str(spec.version)] = digest
    return write_atomic(task_dirs()[-1] / VERSIONS_FILE, json.dumps(versions, indent=1, sort_keys=True) + "\n")


def _suites() -> dict[str, Any]:
    suites: dict[str, Any] = {}
    for folder in reversed(task_dirs()):
        if (folder / "suites.yaml").is_file():
            suites.update(read_yaml(folder / "suites.yaml", "suite file", "fix its syntax", SpecError))
    return suites


def suite_names() -> list[str]:
    """The suites in the order ``suites.yaml`` lists them (the shipped file's first): the boards' order."""
    return list(_suites())


def load_suite(name: str) -> SuiteSpec:
    """A suite from ``suites.yaml`` in the task folders."""
    suites = _suites()
    if name not in suites:
        raise SpecError(f"unknown suite '{name}'{did_you_mean(name, list(suites))}; known: {', '.join(sorted(suites))}")
    try:
        return SuiteSpec.model_validate(suites[name])
    except ValidationError as err:
        raise SpecError(f"suites.yaml: suite '{name}': {_describe(err.errors()[0], SuiteSpec)}") from None
