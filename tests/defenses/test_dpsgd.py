import math

import pytest
import torch
from support import make_client, update_of
from torch import nn

from benchmark.core.errors import SpecError
from benchmark.defenses import global_norm
from benchmark.defenses.clipping import clip_factor
from benchmark.defenses.dpsgd import DPSGD, per_example_gradients
from benchmark.fl.updates import fedsgd_update
from benchmark.protocol.spec import FLSpec


def _one_at_a_time(client):
    return [
        fedsgd_update(
            client.model, client.params, client.buffers, client.inputs[n : n + 1], client.targets[n : n + 1], client.fl
        )
        for n in range(len(client.inputs))
    ]


def test_per_example_gradients_are_each_examples_own_gradient(client):
    batched = per_example_gradients(client)
    for n, alone in enumerate(_one_at_a_time(client)):
        for name, g in alone.items():
            torch.testing.assert_close(batched[name][n], g)


def test_one_huge_gradient_moves_the_update_by_at_most_c_over_b():
    torch.manual_seed(0)
    inputs = torch.rand(4, 3, 8, 8)
    inputs[0] *= 1e4  # a linear model: example 0's gradient is ~10^4 times the others'
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    with torch.no_grad():  # class 0, example 0's label, far below the others: its loss does not saturate to 0
        model[1].weight[0] = -0.1
    client = make_client(model, inputs)
    grads = _one_at_a_time(client)
    assert global_norm(list(grads[0].values())) > 100
    bound = 0.5
    update = DPSGD(noise_multiplier=0.0, max_grad_norm=bound).apply(update_of(client), client)
    others = {
        name: sum(g[name] * clip_factor(global_norm(list(g.values())), bound) for g in grads[1:]) / 4 for name in update
    }
    moved = global_norm([update[name] - others[name] for name in update])
    assert 0.99 * bound / 4 < moved <= bound / 4 * (1 + 1e-5)  # example 0 contributes exactly its clipped C/B


def test_without_noise_and_with_a_loose_bound_it_is_plain_fedsgd(client):
    update = update_of(client)
    defended = DPSGD(noise_multiplier=0.0, max_grad_norm=1e6).apply(update, client)
    for name in update:
        torch.testing.assert_close(defended[name], update[name])


def test_the_noise_has_standard_deviation_sigma_c_over_b():
    client = make_client(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64)), batch=8)
    clipped = DPSGD(noise_multiplier=0.0, max_grad_norm=0.5).apply(update_of(client), client)
    noisy = DPSGD(noise_multiplier=2.0, max_grad_norm=0.5).apply(update_of(client), client)
    noise = torch.cat([(noisy[name] - clipped[name]).flatten() for name in clipped])  # 12 352 entries
    assert noise.std().item() == pytest.approx(2.0 * 0.5 / 8, rel=0.03)


def test_epsilon_comes_from_opacus_and_falls_as_the_noise_multiplier_rises():
    from opacus.accountants import RDPAccountant

    epsilons = [DPSGD(noise_multiplier=sigma).privacy()["epsilon"] for sigma in (0.5, 1.0, 2.0, 4.0)]
    assert epsilons == sorted(epsilons, reverse=True) and len(set(epsilons)) == 4
    accountant = RDPAccountant()
    accountant.step(noise_multiplier=1.0, sample_rate=1.0)
    assert epsilons[1] == pytest.approx(accountant.get_epsilon(1e-5))
    assert DPSGD(noise_multiplier=0.0).privacy() == {"epsilon": math.inf, "delta": 1e-5}
    subsampled = DPSGD(noise_multiplier=1.0).privacy(steps=1, sample_rate=0.01)["epsilon"]
    assert subsampled < epsilons[1]  # amplification by subsampling
    assert DPSGD(noise_multiplier=1.0, rounds=10).privacy()["epsilon"] > epsilons[1]


def test_fedavg_is_refused_with_the_fix():
    client = make_client(fl=FLSpec(protocol="fedavg"))
    with pytest.raises(SpecError, match="fl.protocol: fedsgd"):
        DPSGD().apply(update_of(make_client()), client)


def test_batchnorm_in_train_mode_is_refused_with_the_reason():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    client = make_client(model=model)
    with pytest.raises(
        SpecError, match="defense 'dpsgd': a per-example gradient does not exist under BatchNorm in train mode"
    ):
        DPSGD().apply(update_of(client), client)
    client = make_client(model=model.eval())
    assert DPSGD().apply(update_of(client), client).keys() == update_of(client).keys()  # eval mode: per example
