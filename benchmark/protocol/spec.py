"""Task specs: frozen, versioned protocol descriptions loaded from YAML (``tasks/*.yaml``).

A spec may ``include:`` another (a task name or a path relative to the including file) and
override a few keys; mappings merge recursively, everything else is replaced. Changing what a spec
measures bumps its ``version``; :func:`spec_hash` fingerprints the resolved content.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor

from benchmark.errors import LeakBenchError, SpecError, UnknownNameError
from benchmark.files import read_json, read_yaml
from benchmark.registry import Registry, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalization(_Strict):
    """Per-channel preprocessing of model inputs: x_model = (x - mean) / std, x in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        return tuple(torch.tensor(v, dtype=like.dtype, device=like.device)[:, None, None] for v in (self.mean, self.std))

    def apply(self, images: Tensor) -> Tensor:
        """[0, 1] images (N, C, H, W) → model inputs."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def invert(self, inputs: Tensor) -> Tensor:
        """Model inputs (N, C, H, W) → image scale (not clamped)."""
        mean, std = self._stats(inputs)
        return inputs * std + mean


class BinaryLabels(_Strict):
    """A binary task on a multi-class dataset: the classes in ``positive`` are label 1, all others 0.

    A binary task has K = 2; models give it a one-logit head (the binary logistic loss of
    :func:`benchmark.victim.task_loss`), as R-GAP's victims do.
    """

    name: str = Field(description="what label 1 means, e.g. 'animal'")
    positive: tuple[int, ...] = Field(min_length=1, description="dataset classes mapped to label 1")

    def apply(self, labels: Tensor) -> Tensor:
        """Dataset class indices (N,) → binary labels (N,) int64."""
        return torch.isin(labels, torch.tensor(self.positive, device=labels.device)).to(torch.int64)


class DataSpec(_Strict):
    dataset: str = Field(description="a registered dataset: mnist, cifar10, cifar100, folder")
    split: Literal["train", "test"] = "test"
    path: str | None = Field(None, description="image folder (torchvision ImageFolder layout) for dataset 'folder'")
    image_size: int | None = Field(None, gt=0, description="resize to this square size; default: native")
    channels: Literal[1, 3] | None = Field(None, description="convert to this many channels; default: native")
    normalize: Normalization | None = None
    binary: BinaryLabels | None = Field(None, description="make the task binary: these classes → 1, the rest → 0")


class TargetsSpec(_Strict):
    """Target t is the batch of positions start + t*B ... start + (t+1)*B - 1 (B = fl.batch_size).

    A position is a dataset index, or with ``select: per_identity`` a person: position p is the first
    image of the p-th person (by label) with at least two images, the rest of whose images form the
    face re-identification gallery.
    """

    start: int = Field(0, ge=0)
    count: int = Field(20, ge=1)
    select: Literal["consecutive", "per_identity"] = Field(
        "consecutive", description="consecutive dataset indices, or one image per person with >= 2 images")


class VictimSpec(_Strict):
    model: str
    init: Literal["uniform", "default"] = Field("default", description="uniform: every parameter U(-s, s)")
    init_scale: float = Field(0.5, gt=0)
    seed: int = Field(0, description="victim init seed")
    reinit: Literal["per_target", "once"] = Field(
        "per_target", description="per_target: a fresh model for target t from seed + t; once: one model for all")
    mode: Literal["train", "eval"] = "train"
    state: str = Field("untrained", pattern=r"^(untrained|trained@[1-9][0-9]*)$",
                       description="untrained, or trained@E: the weights `leakbench victim train --epochs E` stores")

    @property
    def trained_epochs(self) -> int | None:
        """E of ``state: trained@E``; None for an untrained victim."""
        return int(self.state.split("@")[1]) if self.state != "untrained" else None


class FLSpec(_Strict):
    """The client's round: FedSGD shares ∇θ L on its batch; FedAvg takes ``local_epochs`` passes of
    SGD (``local_lr``) over the batch in mini-batches of ``local_batch_size`` and shares θ_before − θ_after."""

    protocol: Literal["fedsgd", "fedavg"] = "fedsgd"
    batch_size: int = Field(1, ge=1)
    local_epochs: int = Field(1, ge=1, description="FedAvg: passes over the batch")
    local_batch_size: int | None = Field(None, ge=1, description="FedAvg: mini-batch size; default: the batch")
    local_lr: float = Field(1e-4, gt=0, description="FedAvg: the client's SGD learning rate")


class ThreatSpec(_Strict):
    """What the server learns besides the update. ``bn_statistics``: what it learns of the private
    batch's BatchNorm statistics: ``none``; ``batch``, the client's BatchNorm buffers after its round
    (uploaded with the weights, as FedAvg implementations that average buffers do), from which each
    layer's batch mean and variance follow (FedSGD, train mode); or ``known``, each layer's batch mean
    and variance themselves (the assumption of Yin et al.'s BN prior, CVPR 2021)."""

    labels: Literal["known", "unknown"] = Field("unknown", description="whether the server sees the labels")
    bn_statistics: Literal["none", "batch", "known"] = Field(
        "none", description="what the server learns of the private batch's BatchNorm statistics")


class DefenseSpec(_Strict):
    """A defence the client applies to its update (:mod:`benchmark.defenses`), by registered name."""

    name: str = Field(description="a registered defence: gaussian, laplacian, clipping, dpsgd, pruning, ...")
    params: dict[str, float | int | str] = Field(default_factory=dict, description="the defence's parameters")
    seed: int = Field(0, description="seed of the defence's randomness (target t: from (seed, t))")


class BudgetSpec(_Strict):
    max_steps: int | None = Field(None, ge=1, description="optimisation steps; default: the attack's own")
    restarts: int = Field(1, ge=1, description="tries per target; the lowest final loss wins")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per attack, config values the protocol fixes (e.g. IG's tv weight)")


class TaskSpec(_Strict):
    name: str
    version: int = Field(ge=1)
    description: str = ""
    data: DataSpec
    targets: TargetsSpec = TargetsSpec()
    victim: VictimSpec
    fl: FLSpec = FLSpec()
    threat: ThreatSpec = ThreatSpec()
    defense: DefenseSpec | None = None
    budget: BudgetSpec = BudgetSpec()
    metrics: tuple[str, ...] = ("mse", "psnr", "ssim", "label_accuracy")

    def target_indices(self, target: int) -> list[int]:
        """Positions (see :class:`TargetsSpec`) of target ``target`` (0-based)."""
        first = self.targets.start + target * self.fl.batch_size
        return list(range(first, first + self.fl.batch_size))


def threat_model(spec: TaskSpec) -> str:
    """The server's knowledge and the victim's setting in a few words, e.g. ``labels unknown, train, fedsgd``."""
    fl = spec.fl
    protocol = fl.protocol if fl.protocol == "fedsgd" else f"fedavg {fl.local_epochs} epoch(s) lr {fl.local_lr:g}"
    return f"labels {spec.threat.labels}, {spec.victim.mode}, {protocol}"


class SuiteSpec(_Strict):
    description: str = Field("", description="shown on the suite's boards")
    attacks: tuple[str, ...] | None = Field(None, description="attacks the suite runs; default: every registered one")
    task_attacks: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="per task, the attacks run on it instead of `attacks`")
    targets: int | None = Field(None, ge=1, description="targets per task; default: each spec's count")
    max_steps: int | None = Field(None, ge=1, description="a cap on every attack's steps; default: none")
    tasks: tuple[str, ...]

    @model_validator(mode="after")
    def _known_tasks(self) -> SuiteSpec:
        if extra := [task for task in self.task_attacks if task not in self.tasks]:
            raise ValueError(f"task_attacks names {', '.join(extra)}, not among its tasks; add it to tasks or remove it")
        return self

    def attacks_of(self, task: str) -> tuple[str, ...] | None:
        """The attacks the suite runs on ``task``; None: every registered one."""
        return self.task_attacks.get(task, self.attacks)


def task_dirs() -> list[Path]:
    """Folders searched for task specs: $LEAKBENCH_TASKS entries, then the shipped specs."""
    extra = [Path(p) for p in os.environ.get("LEAKBENCH_TASKS", "").split(os.pathsep) if p]
    packaged = Path(__file__).parent / "_tasks"  # inside a wheel
    source = Path(__file__).parent.parent / "tasks"  # a source checkout or editable install
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


def parse_task(content: dict[str, Any], source: str) -> TaskSpec:
    """Validate a resolved spec mapping; every error names the file and the key."""
    try:
        spec = TaskSpec.model_validate(content)
    except ValidationError as err:
        raise SpecError(f"{source}: {_describe(err.errors()[0], TaskSpec)}") from None
    from benchmark.data import DATASETS
    from benchmark.metrics import METRICS
    from benchmark.models import MODELS

    for key, registry, value in [("data.dataset", DATASETS, spec.data.dataset), ("victim.model", MODELS, spec.victim.model)]:
        if value not in registry:
            raise SpecError(f"{source}: key '{key}': unknown {registry.kind} '{value}'"
                            f"{did_you_mean(value, registry.names())}; known: {', '.join(registry.names())}")
    from benchmark.attacks import ATTACKS

    for name in spec.budget.options:
        try:
            ATTACKS.locate(name)  # a plugin's name is found without loading the plugin
        except UnknownNameError as err:
            raise SpecError(f"{source}: key 'budget.options': {err}") from None
    if spec.defense is not None:
        from benchmark.defenses import build_defense

        try:
            build_defense(spec.defense)
        except LeakBenchError as err:
            raise SpecError(f"{source}: key 'defense': {err}") from None
    for metric in spec.metrics:
        if metric not in METRICS:
            raise SpecError(f"{source}: key 'metrics': unknown metric '{metric}'"
                            f"{did_you_mean(metric, METRICS.names())}; known: {', '.join(METRICS.names())}")
    if spec.threat.bn_statistics == "batch" and (spec.victim.mode != "train" or spec.fl.protocol != "fedsgd"):
        raise SpecError(f"{source}: key 'threat.bn_statistics': 'batch' reads the batch statistics off the BatchNorm "
                        f"buffers one FedSGD step in train mode leaves; set victim.mode: train and fl.protocol: "
                        f"fedsgd, or use 'known'")
    return spec


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A task by registered name (``cifar10-lenetzhu-b1``) or by YAML path."""
    path = _resolve_path(name_or_path)
    spec = parse_task(_read_with_includes(path), str(path))
    if str(name_or_path) in TASKS and spec.name != path.stem:
        raise SpecError(f"{path}: name '{spec.name}' differs from the file name; rename one to match")
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
    return read_json(path, "the record of spec versions", "restore tasks/versions.json from git") if path.is_file() else {}


def record_version(spec: TaskSpec) -> Path:
    """Record ``spec``'s hash under its name and version; refused if that version was recorded with
    other content (bump the version instead)."""
    versions = recorded_versions()
    recorded, digest = versions.setdefault(spec.name, {}), spec_hash(spec)
    if recorded.get(str(spec.version), digest) != digest:
        raise SpecError(f"task '{spec.name}' version {spec.version} was recorded with other content: bump its "
                        f"version (and say what changed in tasks/README.md), then record it")
    recorded[str(spec.version)] = digest
    from benchmark.result import write_atomic

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
