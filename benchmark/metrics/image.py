"""Image and label metrics through torchmetrics, per image, on [0, 1] images.

PSNR = 10·log10(1 / MSE) with data range 1, capped at 120 dB; SSIM is the standard Gaussian-window SSIM
(σ = 1.5, 11×11), not CW-SSIM.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from benchmark.metrics import METRICS, MatchedBatch


@METRICS.register("mse")
def mse(batch: MatchedBatch) -> Tensor:
    return (batch.images - batch.truth_images).pow(2).flatten(1).mean(1)


PSNR_CAP = 120.0  # dB: an exact reconstruction (MSE = 0) scores this, not infinity


@METRICS.register("psnr")
def psnr(batch: MatchedBatch) -> Tensor:
    value = peak_signal_noise_ratio(batch.images, batch.truth_images, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return value.clamp(max=PSNR_CAP)


@METRICS.register("ssim")
def ssim(batch: MatchedBatch) -> Tensor:
    return structural_similarity_index_measure(batch.images, batch.truth_images, data_range=1.0, reduction="none")


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
