"""Helpers shared by the tests: small task specs that run in seconds on CPU."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from benchmark.core.seeding import problem_seed
from benchmark.defenses import ClientRound
from benchmark.fl.updates import fedsgd_update
from benchmark.pipeline import attack
from benchmark.pipeline.tasks import parse_task
from benchmark.protocol.spec import FLSpec, TaskSpec

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


def make_client(
    model: nn.Module | None = None,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
    batch: int = 4,
    fl: FLSpec | None = None,
) -> ClientRound:
    """A client round for the defence tests: by default a conv layer and a fully connected head on a
    batch of random 3×8×8 inputs, labels 0, 1, 2, …; model, inputs and defence generator from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model or nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)
        )
        inputs = torch.rand(batch, 3, 8, 8) if inputs is None else inputs
    return ClientRound(
        model=model,
        params={n: p.detach() for n, p in model.named_parameters()},
        buffers={n: b.clone() for n, b in model.named_buffers()},
        inputs=inputs,
        targets=torch.arange(len(inputs)) % 5,
        fl=fl or FLSpec(),
        generator=torch.Generator().manual_seed(seed),
    )


def update_of(client: ClientRound) -> dict[str, torch.Tensor]:
    """The undefended FedSGD update of the round."""
    return fedsgd_update(client.model, client.params, client.buffers, client.inputs, client.targets, client.fl)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (with a fixed identity for commits); its output."""
    command = [
        "git",
        "-C",
        str(repo),
        "-c",
        "user.name=LeakBench tests",
        "-c",
        "user.email=tests@leakbench.invalid",
        "-c",
        "commit.gpgsign=false",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def fail_targets(
    monkeypatch: pytest.MonkeyPatch,
    *numbers: int,
    error: BaseException = FloatingPointError("the objective became NaN"),
) -> None:
    """Make every fit of a seed-0 run that holds one of these targets raise ``error`` (by default a
    failure of the attack's mathematics)."""
    real = attack.fit

    def fit(attack_cls, observations, config, seeds, *args, **kwargs):
        if any(problem_seed(0, n, 0) in seeds for n in numbers):
            raise error
        return real(attack_cls, observations, config, seeds, *args, **kwargs)

    monkeypatch.setattr(attack, "fit", fit)


OWN_PACKAGE = {  # an attack in a package of its own: module mine_attack, class Mine
    "__init__.py": "from .attack import Mine\n",
    "attack.py": "from benchmark.attacks.dlg import DLG\nfrom . import helper\n\n\nclass Mine(DLG):\n"
    '    """mine: DLG under another name."""\n\n    def after_step(self):\n'
    "        from .inner import project\n        project(self)\n",
    "helper.py": "import json\n",
    "inner.py": "def project(attack):\n    pass\n",
    "unused.py": "",
}


def label_rounds(task: str, batch_size: int, targets: int, fl: dict[str, Any] | None = None, **victim: Any):
    """(true labels, observation) of each target of ``task``'s protocol at ``batch_size``, labels unknown
    to the server (the label study's rounds); ``fl`` and ``victim`` override those sections."""
    from benchmark.apps.label_study import observe, study_spec
    from benchmark.pipeline.tasks import load_task

    spec = load_task(task)
    update = {"victim": spec.victim.model_copy(update=victim)} if victim else {}
    if fl:
        update["fl"] = spec.fl.model_copy(update=fl)
    return observe(study_spec(spec.model_copy(update=update), batch_size, targets))
