"""A task spec checked against the registries: every name it gives (dataset, model, attack options,
defence, metrics) is one that is registered here (reading it: :mod:`benchmark.protocol.loading`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.attacks import ATTACKS
from benchmark.core.errors import LeakBenchError, SpecError, UnknownNameError
from benchmark.core.registry import did_you_mean
from benchmark.data import DATASETS
from benchmark.defenses import build_defense
from benchmark.metrics import METRICS
from benchmark.models import MODELS
from benchmark.protocol.loading import check_consistency, load_spec, task_file, validate_task
from benchmark.protocol.spec import TaskSpec


def parse_task(content: dict[str, Any], source: str) -> TaskSpec:
    """Validate a resolved spec mapping; every error names the file and the key."""
    spec = validate_task(content, source)
    check_registered(spec, source)
    check_consistency(spec, source)
    return spec


def check_registered(spec: TaskSpec, source: str) -> None:
    """Every name ``spec`` gives (dataset, model, attack options, defence, metrics) is registered here."""
    for key, registry, value in [
        ("data.dataset", DATASETS, spec.data.dataset),
        ("victim.model", MODELS, spec.victim.model),
    ]:
        if value not in registry:
            raise SpecError(
                f"{source}: key '{key}': unknown {registry.kind} '{value}'"
                f"{did_you_mean(value, registry.names())}; known: {', '.join(registry.names())}"
            )
    for name in spec.budget.options:
        try:
            ATTACKS.locate(name)  # a plugin's name is found without loading the plugin
        except UnknownNameError as err:
            raise SpecError(f"{source}: key 'budget.options': {err}") from None
    if spec.defense is not None:
        try:
            build_defense(spec.defense)
        except LeakBenchError as err:
            raise SpecError(f"{source}: key 'defense': {err}") from None
    for metric in spec.metrics:
        if metric not in METRICS:
            raise SpecError(
                f"{source}: key 'metrics': unknown metric '{metric}'"
                f"{did_you_mean(metric, METRICS.names())}; known: {', '.join(METRICS.names())}"
            )


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A task by registered name (``cifar10-lenetzhu-b1``) or by YAML path: :func:`load_spec`'s checks
    and the registries'."""
    spec = load_spec(name_or_path)
    check_registered(spec, str(task_file(name_or_path)))
    return spec
