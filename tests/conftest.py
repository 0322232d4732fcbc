"""Shared fixtures: every test runs offline with an empty, isolated cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.spec import TASKS


@pytest.fixture(autouse=True)
def offline_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No network attempts, and an empty cache: tests see what a fresh offline machine sees."""
    monkeypatch.setenv("LEAKBENCH_OFFLINE", "1")
    monkeypatch.setenv("LEAKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    torch.set_num_threads(1)


MINI_TASKS = {
    "tiny-cifar.yaml": "include: cifar10-lenetzhu-b1\nname: tiny-cifar\ndata: {image_size: 16}\n",
    "tiny-mnist.yaml": "include: mnist-lenetzhu-b1\nname: tiny-mnist\n",
    "suites.yaml": "mini: {targets: 2, max_steps: 2, tasks: [tiny-cifar, tiny-mnist]}\n",
}


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Suite ``mini`` registered, and the working folder a fresh one (leaderboards/ and runs/ go there)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, text in MINI_TASKS.items():
        (tasks / name).write_text(text)
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tasks))
    TASKS.names()  # discover the shipped tasks, then add these on the next lookup
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    monkeypatch.setattr(TASKS, "_discovered", False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work
