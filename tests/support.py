"""Helpers shared by the tests: small task specs that run in seconds on CPU."""

from __future__ import annotations

import copy
from typing import Any

from benchmark.spec import TaskSpec, parse_task

BASE_SPEC: dict[str, Any] = {
    "name": "tiny",
    "version": 1,
    "data": {"dataset": "cifar10", "image_size": 16},
    "targets": {"count": 2},
    "victim": {"model": "lenet_zhu", "init": "uniform", "seed": 1234},
}


def make_spec(**overrides: Any) -> TaskSpec:
    """A small task (16×16 CIFAR-10 on LeNet-Zhu); keyword arguments override top-level keys."""
    content = copy.deepcopy(BASE_SPEC)
    for key, value in overrides.items():
        content[key] = {**content[key], **value} if isinstance(value, dict) and key in content else value
    return parse_task(content, "test spec")
