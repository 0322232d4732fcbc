"""Metrics against independent references: numpy for MSE/PSNR, scikit-image for SSIM, on random
tensors and on real images with flat backgrounds, borders and saturation (MNIST, CIFAR-10, LFW)."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from skimage.metrics import structural_similarity

from benchmark.data import load_samples, load_source
from benchmark.metrics import MatchedBatch, MetricUnavailableError, definitions, evaluate, metric_info
from benchmark.metrics.image import as_png_bytes, ssim
from benchmark.metrics.matching import match
from benchmark.pipeline.tasks import load_task


def _reference_ssim(image: torch.Tensor, truth: torch.Tensor) -> float:
    return structural_similarity(
        image.numpy(),
        truth.numpy(),
        data_range=1.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


def _real(task: str, count: int = 4) -> torch.Tensor:
    """The first ``count`` offline test images of a task's dataset, as the task loads them (float64)."""
    spec = load_task(task)
    return load_samples(load_source(spec.data, spec.targets), list(range(count))).images.to(torch.float64)


DISTORTIONS = {
    "haze": lambda x: 0.6 * x + 0.4 * 0.5,  # GRNN's grey haze on a black background
    "blur": lambda x: TF.gaussian_blur(x, [5, 5], [1.2, 1.2]),
    "offset": lambda x: torch.roll(x, shifts=(2, -1), dims=(-2, -1)),
    "noise": lambda x: (
        x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    ).clamp(0, 1),  # saturates at 0 and 1
    "flat": lambda x: torch.full_like(x, 0.5),
}


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
def test_ssim_matches_scikit_image_on_noise(pair, channels):
    images, truth = (t[:, :channels] for t in pair)
    metrics = evaluate(images, torch.zeros(4), truth, torch.zeros(4), ("ssim",))
    np.testing.assert_allclose(
        metrics["ssim"].numpy(), [_reference_ssim(a, b) for a, b in zip(images, truth)], atol=1e-4
    )


@pytest.mark.parametrize("task", ["mnist-lenet5-b1", "cifar10-lenetzhu-b1", "lfwmini-lenet5-b1"])
@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
def test_ssim_is_the_reference_ssim_on_real_images(task, distortion):
    """MNIST's black backgrounds, CIFAR's 32×32 borders and LFW's 25×25 faces: the valid-region
    Gaussian SSIM of scikit-image to 1e-4 (a full-map mean with padding is up to 0.35 off here)."""
    truth = _real(task)
    images = DISTORTIONS[distortion](truth)
    measured = evaluate(images, torch.zeros(4), truth, torch.zeros(4), ("ssim",))["ssim"]
    expected = [_reference_ssim(a.clamp(0, 1), b) for a, b in zip(images[match(images.clamp(0, 1), truth)], truth)]
    np.testing.assert_allclose(measured.numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("task", ["mnist-lenet5-b1", "cifar10-lenetzhu-b1"])
def test_ssim_skimage7_is_fedkls_ssim_of_8_bit_pngs(task):
    """FedKL's SSIM: scikit-image's defaults on the uint8 images cv2 reads back from PNG files."""
    truth = _real(task)
    images = DISTORTIONS["haze"](truth)
    measured = evaluate(images, torch.zeros(4), truth, torch.zeros(4), ("ssim_skimage7",))["ssim_skimage7"]
    # FedKL saves with ToPILImage and reads back with cv2 (three channels): the same bytes here
    png = [np.asarray(TF.to_pil_image(x.float()).convert("RGB")) for x in (*truth, *images)]
    assert (as_png_bytes(images) == np.stack(png[4:])).all()
    expected = [structural_similarity(a, b, channel_axis=-1) for a, b in zip(png[:4], png[4:])]
    np.testing.assert_allclose(measured.numpy(), expected, atol=1e-12)


def test_ssim_refuses_images_smaller_than_its_window():
    tiny = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(MetricUnavailableError, match="smaller than its 11×11 window"):
        ssim(MatchedBatch(tiny, torch.zeros(2), tiny, torch.zeros(2)))


def test_every_metric_names_its_definition():
    for name in ("mse", "psnr", "ssim", "ssim_skimage7", "label_accuracy", "lpips"):
        info = metric_info(name)
        assert info.definition and info.title and info.higher_is_better is not None, name
    assert "torchmetrics" in definitions(["ssim"])["ssim"]["library"]
    assert metric_info("ssim").definition["window"] == "gaussian 11x11"


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
