import math

import pytest
import torch
from support import make_client

from benchmark.defenses.noise import GaussianNoise, LaplacianNoise

ZEROS = {"w": torch.zeros(400, 500), "b": torch.zeros(7)}  # 200 007 entries: the sample moments are tight


@pytest.mark.parametrize("sigma", [1e-3, 0.3])
def test_gaussian_noise_has_the_stated_standard_deviation_and_no_bias(sigma):
    noisy = GaussianNoise(sigma=sigma).apply(ZEROS, make_client(seed=3))
    values = torch.cat([t.flatten() for t in noisy.values()])
    # standard error of the std estimate: sigma / sqrt(2n) = 0.16 % of sigma; of the mean: 0.22 % of sigma
    assert values.std().item() == pytest.approx(sigma, rel=0.01)
    assert abs(values.mean().item()) < 0.01 * sigma


def test_laplacian_noise_has_the_stated_scale():
    scale = 0.05
    values = torch.cat([t.flatten() for t in LaplacianNoise(scale=scale).apply(ZEROS, make_client(seed=4)).values()])
    assert values.abs().mean().item() == pytest.approx(scale, rel=0.01)  # E|ξ| = b
    assert values.std().item() == pytest.approx(math.sqrt(2) * scale, rel=0.02)  # std = √2·b


@pytest.mark.parametrize("defense", [GaussianNoise(sigma=0.1), LaplacianNoise(scale=0.1)])
def test_noise_is_added_to_the_update_and_drawn_from_the_client_seed(defense, client):
    update = {"w": torch.ones(50, 50)}
    first, again = defense.apply(update, make_client(seed=1)), defense.apply(update, make_client(seed=1))
    other = defense.apply(update, make_client(seed=2))
    assert torch.equal(first["w"], again["w"]) and not torch.equal(first["w"], other["w"])
    assert first["w"].mean().item() == pytest.approx(1.0, abs=0.02) and first["w"].shape == (50, 50)


def test_zero_strength_leaves_the_update_unchanged(client):
    update = {"w": torch.randn(5, 5)}
    assert torch.equal(GaussianNoise(sigma=0.0).apply(update, client)["w"], update["w"])
    assert torch.equal(LaplacianNoise(scale=0.0).apply(update, client)["w"], update["w"])
