"""One-to-one assignment of reconstructions to ground-truth images (Hungarian algorithm)."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def match(images: Tensor, truth_images: Tensor) -> Tensor:
    """Permutation p such that images[p[i]] is the reconstruction assigned to truth_images[i].

    Minimises the total MSE over all one-to-one assignments; images (N, C, H, W).
    """
    cost = torch.cdist(truth_images.flatten(1), images.flatten(1)).pow(2)
    truth_rows, image_rows = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(image_rows[truth_rows.argsort()])
