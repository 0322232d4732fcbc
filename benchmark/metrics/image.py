"""Image and label metrics, per image, on [0, 1] images.

- ``mse``: mean squared error over (C, H, W); ``psnr`` = 10·log10(1 / MSE) (torchmetrics, data range
  1), capped at 120 dB.
- ``ssim``: the reference SSIM of Wang, Bovik, Sheikh & Simoncelli (IEEE TIP 2004) as their MATLAB
  code computes it: Gaussian window 11×11, σ 1.5, K1 0.01, K2 0.03, data range 1, population
  statistics, averaged over the positions whose window lies inside the image (the 'valid' region)
  and over channels. torchmetrics computes the SSIM map (its reflect-padded border included); the
  border is cropped before the mean. This equals scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
- ``ssim_skimage7``: what the GRNN group's FedKL code calls SSIM (``evaluation_metrics.py``,
  ``Quantitation.SSIM``): scikit-image's defaults (7×7 uniform window, sample covariance) on the
  8-bit images its attack scripts save (torchvision's ``ToPILImage``: ⌊255·x⌋ of the float32 image),
  data range 255. Used by the FedKL success criterion.
- ``label_accuracy``: the share of true labels found among the recovered ones (a multiset match).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from benchmark.metrics import METRICS, MatchedBatch, MetricInfo, MetricUnavailableError, Tolerance, describe

PSNR_CAP = 120.0  # dB: an exact reconstruction (MSE = 0) scores this, not infinity
SSIM_WINDOW, SSIM_SIGMA, SSIM_K = 11, 1.5, (0.01, 0.03)


@METRICS.register("mse")
def mse(batch: MatchedBatch) -> Tensor:
    return (batch.images - batch.truth_images).pow(2).flatten(1).mean(1)


describe(
    "mse",
    MetricInfo(
        title="MSE",
        higher_is_better=False,
        format="{:.3g}",
        tolerance=Tolerance(rel=0.25, abs=1e-4),
        definition={"formula": "mean over (C, H, W) of (x - y)^2", "range": "[0, 1] images", "library": "torch"},
    ),
)


@METRICS.register("psnr")
def psnr(batch: MatchedBatch) -> Tensor:
    value = peak_signal_noise_ratio(batch.images, batch.truth_images, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return value.clamp(max=PSNR_CAP)


describe(
    "psnr",
    MetricInfo(
        title="PSNR (dB)",
        higher_is_better=True,
        format="{:.2f}",
        tolerance=Tolerance(rel=0.05, abs=0.5),
        packages=("torchmetrics",),
        definition={
            "formula": "10 log10(1 / MSE)",
            "library": "torchmetrics",
            "function": "peak_signal_noise_ratio",
            "data_range": 1.0,
            "per_image_over": "C, H, W",
            "cap_db": PSNR_CAP,
        },
    ),
)


def _too_small(batch: MatchedBatch, window: int, name: str) -> None:
    height, width = batch.images.shape[-2:]
    if min(height, width) < window:
        raise MetricUnavailableError(f"{name}: {height}×{width} images are smaller than its {window}×{window} window")


@METRICS.register("ssim")
def ssim(batch: MatchedBatch) -> Tensor:
    """Reference SSIM (see the module docstring): the mean of the SSIM map over its valid region."""
    _too_small(batch, SSIM_WINDOW, "SSIM")
    _, full = structural_similarity_index_measure(
        batch.images,
        batch.truth_images,
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_WINDOW,
        data_range=1.0,
        k1=SSIM_K[0],
        k2=SSIM_K[1],
        reduction="none",
        return_full_image=True,
    )
    border = SSIM_WINDOW // 2
    return full[..., border:-border, border:-border].mean(dim=(1, 2, 3))


describe(
    "ssim",
    MetricInfo(
        title="SSIM",
        higher_is_better=True,
        format="{:.3f}",
        tolerance=Tolerance(rel=0.05, abs=0.02),
        packages=("torchmetrics",),
        definition={
            "reference": "Wang et al., IEEE TIP 2004 (authors' MATLAB ssim_index)",
            "library": "torchmetrics",
            "function": "structural_similarity_index_measure(return_full_image=True), map cropped",
            "window": "gaussian 11x11",
            "sigma": SSIM_SIGMA,
            "k1": SSIM_K[0],
            "k2": SSIM_K[1],
            "data_range": 1.0,
            "covariance": "population",
            "mean_over": "valid region, then channels",
            "equals": "skimage structural_similarity(gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, data_range=1)",
        },
    ),
)


def as_png_bytes(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] → (N, H, W, C) uint8 as FedKL's scripts save them: torchvision's
    ``ToPILImage`` on the float32 image, ⌊255·x⌋."""
    return images.float().mul(255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@METRICS.register("ssim_skimage7")
def ssim_skimage7(batch: MatchedBatch) -> Tensor:
    """scikit-image's default SSIM on 8-bit images, as the FedKL code measures it (see the module docstring)."""
    _too_small(batch, 7, "SSIM (scikit-image defaults)")
    images, truth = as_png_bytes(batch.images), as_png_bytes(batch.truth_images)
    return torch.tensor(
        [structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(truth, images)],
        dtype=torch.float64,
    )


describe(
    "ssim_skimage7",
    MetricInfo(
        title="SSIM (skimage 7×7, FedKL)",
        higher_is_better=True,
        format="{:.3f}",
        tolerance=Tolerance(rel=0.05, abs=0.02),
        board=False,
        packages=("scikit-image",),
        definition={
            "reference": "Rand2AI/FedKL evaluation_metrics.py Quantitation.SSIM (GRNN's authors)",
            "library": "scikit-image",
            "function": "structural_similarity",
            "window": "uniform 7x7",
            "covariance": "sample",
            "input": "8-bit images, floor(255 x) of float32 (torchvision ToPILImage)",
            "data_range": 255,
            "mean_over": "valid region, then channels",
        },
    ),
)


@METRICS.register("label_accuracy")
def label_accuracy(batch: MatchedBatch) -> Tensor:
    """1 where a true label is among the recovered ones, each recovered label used once (order-free,
    so it does not depend on how well the images matched)."""
    remaining = Counter(batch.labels.tolist())
    hits = []
    for label in batch.truth_labels.tolist():
        hits.append(remaining[label] > 0)
        remaining[label] -= 1
    return torch.tensor(hits, dtype=torch.float64)


describe(
    "label_accuracy",
    MetricInfo(
        title="label acc.",
        higher_is_better=True,
        percent=True,
        tolerance=Tolerance(rel=0.0, abs=0.0),
        definition={"formula": "share of true labels matched one-to-one by recovered labels (multiset, order-free)"},
    ),
)
