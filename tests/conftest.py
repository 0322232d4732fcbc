"""Shared fixtures: offline, isolated cache, and small tasks that run in seconds on CPU."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from benchmark.spec import TaskSpec, parse_task


@pytest.fixture(autouse=True)
def offline_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No network attempts, and an empty cache: tests see what a fresh offline machine sees."""
    monkeypatch.setenv("LEAKBENCH_OFFLINE", "1")
    monkeypatch.setenv("LEAKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    torch.set_num_threads(1)


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


@pytest.fixture
def tiny_spec() -> TaskSpec:
    return make_spec()
