"""Metrics against independent references: numpy for MSE/PSNR, scikit-image for SSIM."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from benchmark.metrics import evaluate
from benchmark.metrics.matching import match


@pytest.fixture
def pair():
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(4, 3, 32, 32, generator=generator, dtype=torch.float64)
    noisy = (truth + 0.05 * torch.randn(truth.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return noisy, truth


def test_mse_and_psnr_match_numpy(pair):
    images, truth = pair
    metrics = evaluate(images, torch.zeros(4), truth, torch.zeros(4), ("mse", "psnr"))
    mse = ((images.numpy() - truth.numpy()) ** 2).reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(metrics["mse"].numpy(), mse, rtol=1e-10)
    np.testing.assert_allclose(metrics["psnr"].numpy(), 10 * np.log10(1 / mse), rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(pair, channels):
    images, truth = (t[:, :channels] for t in pair)
    metrics = evaluate(images, torch.zeros(4), truth, torch.zeros(4), ("ssim",))
    expected = [structural_similarity(a.numpy(), b.numpy(), data_range=1.0, channel_axis=0, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False) for a, b in zip(images, truth)]
    np.testing.assert_allclose(metrics["ssim"].numpy(), expected, atol=2e-3)


def test_reconstructions_are_matched_one_to_one(pair):
    images, truth = pair
    order = torch.tensor([2, 0, 3, 1])
    shuffled = evaluate(images[order], torch.arange(4)[order], truth, torch.arange(4), ("mse", "label_accuracy"))
    direct = evaluate(images, torch.arange(4), truth, torch.arange(4), ("mse", "label_accuracy"))
    torch.testing.assert_close(shuffled["mse"], direct["mse"])
    assert shuffled["label_accuracy"].tolist() == [1.0] * 4


def test_matching_is_one_to_one_even_when_one_image_is_closest_to_all():
    truth = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.5, 1.0)])
    images = torch.stack([torch.full((1, 2, 2), v) for v in (0.45, 0.55, 0.9)])
    assert sorted(match(images, truth).tolist()) == [0, 1, 2]


def test_label_accuracy_is_order_free_and_counts_each_label_once():
    images = torch.zeros(3, 1, 4, 4)
    metrics = evaluate(images, torch.tensor([5, 5, 1]), images, torch.tensor([1, 5, 7]), ("label_accuracy",))
    assert metrics["label_accuracy"].sum().item() == 2


def test_images_are_clamped_to_the_unit_box():
    truth = torch.zeros(1, 1, 8, 8)
    metrics = evaluate(truth - 5, torch.zeros(1), truth, torch.zeros(1), ("mse",))
    assert metrics["mse"].item() == 0.0
