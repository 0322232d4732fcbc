"""The contract every registered attack meets, present and future: built from its defaults, it runs
a few steps on CPU, lowers its loss, is deterministic for a seed, and leaves the victim untouched."""

import copy

import pytest
import torch

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.data import load_samples, load_source
from benchmark.runner import attack_config, attack_target
from benchmark.victim import Victim

from conftest import make_spec

STEPS = 3


@pytest.fixture(scope="module")
def victim() -> Victim:
    spec = make_spec()
    source = load_source(spec.data)
    return Victim(spec, 0, load_samples(source, spec.target_indices(0)), source.num_classes)


def _attack(name: str, victim: Victim, seed: int):
    observation = victim.observe()
    cls = ATTACKS.get(name)
    return attack_target(cls, observation, attack_config(cls, {"max_steps": STEPS}), seed=seed, tries=1)[0], observation


@pytest.mark.parametrize("name", ATTACKS.names())
def test_defaults_build_and_reconstruct_in_the_unit_box(name, victim):
    reconstruction, _ = _attack(name, victim, seed=0)
    assert reconstruction.images.shape == (1, *victim.input_shape)
    assert 0 <= reconstruction.images.min() and reconstruction.images.max() <= 1
    assert reconstruction.labels.shape == (1,) and reconstruction.labels.dtype == torch.int64


@pytest.mark.parametrize("name", [n for n, cls in ATTACKS if issubclass(cls, OptimizationAttack)])
def test_optimisation_lowers_the_loss(name, victim):
    cls = ATTACKS.get(name)
    torch.manual_seed(0)
    initial = cls(victim.observe(), attack_config(cls, {})).objective().item()
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
