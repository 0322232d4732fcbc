"""Shared fixtures: every test runs offline with an empty, isolated cache."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from support import OWN_PACKAGE, git

import benchmark
from benchmark.protocol.loading import TASKS


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
    TASKS.names()  # discover the shipped tasks before LEAKBENCH_TASKS names these, then add these on the next lookup
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tasks))
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    monkeypatch.setattr(TASKS, "_discovered", False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def committed_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository whose one commit holds a copy of this benchmark package."""
    repo = tmp_path_factory.mktemp("source")
    shutil.copytree(Path(benchmark.__file__).parent, repo / "benchmark", ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "leakbench")
    return repo


@pytest.fixture
def clean_checkout(committed_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """leakbench seen as running from a clean git checkout (a clone of :func:`committed_source`), whatever
    the state of the real one: ``submit`` accepts it and entries record its commit."""
    from benchmark.apps.leaderboard import provenance

    clone = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(committed_source), str(clone))
    monkeypatch.setattr(provenance, "SOURCE", clone)
    return clone


@pytest.fixture
def own_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package ``mine_attack`` (:data:`support.OWN_PACKAGE`) importable from a folder outside the
    checkout, as a plugin's is; its folder. Its modules are forgotten afterwards."""
    folder = tmp_path / "site" / "mine_attack"
    folder.mkdir(parents=True)
    for file, text in OWN_PACKAGE.items():
        (folder / file).write_text(text)
    monkeypatch.syspath_prepend(str(folder.parent))
    yield folder
    for name in [m for m in sys.modules if m.split(".")[0] == "mine_attack"]:
        del sys.modules[name]
