"""The contract every registered attack meets, present and future: built from its defaults, it runs
a few steps on CPU, lowers its loss, is deterministic for a seed, and leaves the victim untouched,
on a small task it applies to."""

import copy
import dataclasses
import functools
import json

import pytest
import torch
from support import make_spec

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.data import load_samples, load_source
from benchmark.pipeline.config import attack_config
from benchmark.pipeline.fit import fit
from benchmark.pipeline.prepare import server_knowledge
from benchmark.victim.client import Victim

STEPS = 3


DEFAULT_INIT = {"init": "default", "seed": 0}
# Small tasks the contract runs on: each attack is held to it on the first task it applies to.
TASKS = {
    "lenet": make_spec(),  # LeNet-Zhu: sigmoid convolutions with biases
    "mlp": make_spec(victim={"model": "mlp", **DEFAULT_INIT}),  # a fully connected first layer with a bias
    "cnn6": make_spec(
        victim={"model": "cnn6", **DEFAULT_INIT},
        threat={"labels": "known"},  # no bias at all
        data={"binary": {"name": "animal", "positive": [2, 3, 4, 5, 6, 7]}},
    ),
    "batchnorm": make_spec(victim={"model": "convnet16", **DEFAULT_INIT}),  # BatchNorm layers, in train mode
    "malicious": make_spec(  # LeNet-Zhu, its server malicious: for attacks that modify the global model
        threat={"server": "malicious", "data_statistics": {"mean": 0.48, "std": 0.13, "source": "a guess"}}
    ),
}


@functools.cache
def _victim(task: str, prepared_by: str | None = None) -> Victim:
    """The task's victim of target 0; with ``prepared_by``, holding the model that attack's server sent."""
    spec = TASKS[task]
    source = load_source(spec.data)
    victim = Victim(spec, 0, load_samples(source, spec.target_indices(0)), source.num_classes)
    if prepared_by is not None:
        cls = ATTACKS.get(prepared_by)
        config = attack_config(cls, {})
        victim.receive(cls.prepare_model(copy.deepcopy(victim.model), server_knowledge(spec, victim), config).model)
    return victim


@pytest.fixture
def victim(name: str) -> Victim:
    """The first contract task the attack ``name`` applies to; every attack must apply to one. An attack
    that modifies the global model runs on the malicious-server task, with the model it prepared."""
    modifies = ATTACKS.get(name).modifies_model()
    for task in TASKS:
        if modifies != (TASKS[task].threat.server == "malicious"):
            continue
        candidate = _victim(task, name if modifies else None)
        if ATTACKS.get(name).unsupported(candidate.observe()) is None:
            return candidate
    pytest.fail(f"attack '{name}' applies to none of the contract's tasks ({', '.join(TASKS)}): add one it applies to")


def _attack(name: str, victim: Victim, seed: int):
    observation = victim.observe()
    cls = ATTACKS.get(name)
    reconstructions, _ = fit(cls, [observation], attack_config(cls, {"max_steps": STEPS}), [seed])
    return reconstructions[0], observation


@pytest.mark.parametrize("name", ATTACKS.names())
def test_defaults_build_and_reconstruct_in_the_unit_box(name, victim):
    reconstruction, _ = _attack(name, victim, seed=0)
    assert reconstruction.images.shape == (1, *victim.input_shape)
    assert 0 <= reconstruction.images.min() and reconstruction.images.max() <= 1
    assert reconstruction.labels.shape == (1,) and reconstruction.labels.dtype == torch.int64
    json.dumps(reconstruction.details)  # kept in the target's row of results.json


@pytest.mark.parametrize("name", [n for n, cls in ATTACKS if issubclass(cls, OptimizationAttack)])
def test_optimisation_lowers_the_loss(name, victim):
    cls = ATTACKS.get(name)
    initial = cls([victim.observe()], attack_config(cls, {}), [0]).objective().item()
    reconstruction, _ = _attack(name, victim, seed=0)
    assert reconstruction.loss < initial


@pytest.mark.parametrize("name", ATTACKS.names())
def test_same_seed_same_result(name, victim):
    first, _ = _attack(name, victim, seed=3)
    second, _ = _attack(name, victim, seed=3)
    assert torch.equal(first.images, second.images) and first.loss == second.loss


@pytest.mark.parametrize("name", ATTACKS.names())
def test_victim_and_observation_are_untouched(name, victim):
    weights = copy.deepcopy(victim.model.state_dict())
    _, observation = _attack(name, victim, seed=0)
    update = [t.clone() for t in observation.update]
    for key, value in victim.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    for key, value in observation.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert all(p.grad is None for p in observation.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(update, observation.update))


@pytest.mark.parametrize(
    "name",
    [
        n
        for n, cls in ATTACKS
        if issubclass(cls, OptimizationAttack) and "patience" in {f.name for f in dataclasses.fields(cls.Config)}
    ],
)
def test_a_stalled_problem_stops_early(name, victim):
    cls = ATTACKS.get(name)
    config = attack_config(cls, {"max_steps": 400, "patience": 1, "lr": 1e-12})  # no progress possible
    _, steps = fit(cls, [victim.observe()], config, [0])
    assert steps < 10
