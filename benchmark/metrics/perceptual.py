"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018) through the ``lpips`` package: AlexNet features, the package's learned linear heads (v0.1).

The package ships the heads; the AlexNet ImageNet backbone comes from torchvision's model store
(its cache, a download, or a file the user gives with ``--lpips-weights``), and is used only when
its sha256 starts with the prefix torchvision publishes in its file name (``alexnet-owt-7be5be79``);
without it the metric is unavailable, never computed on a random or altered backbone.

Images are scored at their own resolution, as the GRNN group's code scores 32×32 images. AlexNet's
second pooling needs at least 31 pixels, so smaller images (25×25 LFW faces, 8×8 digits) are
upsampled bilinearly to 32×32 first, and grey images are repeated to three channels; inputs are
mapped from [0, 1] to [-1, 1] (``normalize=True``).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import lpips
import torch
import torchvision
from torch import Tensor
from torch.nn import functional as F

from benchmark.core.downloads import downloads_allowed
from benchmark.core.errors import first_line
from benchmark.metrics import (
    METRICS,
    EvaluationSettings,
    MatchedBatch,
    MetricInfo,
    MetricUnavailableError,
    Tolerance,
    describe,
)

BACKBONE = torchvision.models.AlexNet_Weights.IMAGENET1K_V1
BACKBONE_FILE = Path(BACKBONE.url).name  # alexnet-owt-7be5be79.pth
BACKBONE_SHA256_PREFIX = BACKBONE_FILE.rsplit("-", 1)[1].split(".")[0]  # torchvision's published hash prefix
MIN_SIZE = 32
_failed_downloads: list[str] = []  # a download that failed in this process is not tried again (a bench's cells)


def cached_backbone() -> Path:
    """Where torchvision keeps the AlexNet weights once downloaded ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILE


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_backbone_file(path: Path) -> None:
    """Refuse ``path`` (MetricUnavailableError, saying why) unless it is readable and its sha256 has
    torchvision's published prefix for the AlexNet ImageNet weights."""
    try:
        digest = sha256(path)
    except OSError as err:
        raise MetricUnavailableError(
            f"LPIPS: cannot read backbone weights {path} ({err.strerror}); "
            f"give torchvision's AlexNet file {BACKBONE_FILE} with --lpips-weights"
        ) from None
    if not digest.startswith(BACKBONE_SHA256_PREFIX):
        raise MetricUnavailableError(
            f"LPIPS: {path} is not torchvision's AlexNet weights (sha256 {digest[:16]}…, the published file's starts "
            f"with {BACKBONE_SHA256_PREFIX}); give the file {BACKBONE_FILE} with --lpips-weights"
        )


def _from_file(path: Path) -> lpips.LPIPS:
    """The package's model with its backbone read from ``path`` (torchvision's AlexNet state dict)."""
    check_backbone_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecation of lpips's ``pretrained=``
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # lpips splits AlexNet's ``features`` into slices whose modules keep their index as their name.
        model.net.load_state_dict(
            {
                f"{slice_name}.{key}": state[f"features.{key}"]
                for slice_name, part in model.net.named_children()
                for key in part.state_dict()
            }
        )
    except Exception as err:  # unpickling and key errors alike: not the file LPIPS needs
        raise MetricUnavailableError(
            f"LPIPS: cannot read backbone weights {path} ({type(err).__name__}: {first_line(err, 80)}); "
            f"give torchvision's AlexNet file {BACKBONE_FILE} with --lpips-weights"
        ) from None
    return model.eval()


def load_lpips(weights: Path | None) -> lpips.LPIPS:
    """LPIPS-AlexNet: from ``weights`` if given, else from torchvision's cache (downloaded into it
    where allowed). Raises :class:`MetricUnavailableError` saying how to get the weights."""
    if weights is not None:
        return _from_file(weights)
    cached = cached_backbone()
    if not cached.is_file() and downloads_allowed() and not _failed_downloads:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                BACKBONE.url, str(cached), hash_prefix=BACKBONE_SHA256_PREFIX, progress=False
            )
        except Exception as err:  # network errors come in many types; all mean the same here
            _failed_downloads.append(f"downloading them failed ({type(err).__name__}: {str(err)[:100]})")
    if cached.is_file():
        return _from_file(cached)
    reason = _failed_downloads[-1] if downloads_allowed() else "downloads are disabled by LEAKBENCH_OFFLINE"
    raise MetricUnavailableError(
        f"LPIPS: the AlexNet ImageNet weights are not in {cached.parent} and {reason}. Run once with internet access "
        f"(torchvision caches {cached.name}), copy that file to {cached.parent}, or pass --lpips-weights PATH"
    )


@METRICS.register("lpips")
class LPIPS:
    """Per-image LPIPS distance (lower is closer; 0 for identical images)."""

    def __init__(self, settings: EvaluationSettings) -> None:
        self.model = load_lpips(settings.lpips_weights)

    def __call__(self, batch: MatchedBatch) -> Tensor:
        images, truth = (_prepare(x) for x in (batch.images, batch.truth_images))
        with torch.no_grad():
            return self.model(images, truth, normalize=True).flatten().to(torch.float64)


def _prepare(images: Tensor) -> Tensor:
    images = images.float()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if min(images.shape[-2:]) < MIN_SIZE:
        images = F.interpolate(images, size=(MIN_SIZE, MIN_SIZE), mode="bilinear", align_corners=False)
    return images


describe(
    "lpips",
    MetricInfo(
        title="LPIPS",
        higher_is_better=False,
        format="{:.3f}",
        tolerance=Tolerance(rel=0.05, abs=0.01),
        packages=("lpips", "torchvision"),
        definition={
            "reference": "Zhang et al., CVPR 2018",
            "library": "lpips",
            "net": "alex",
            "heads": "v0.1 (shipped with the package)",
            "backbone": f"torchvision {BACKBONE_FILE} (sha256 {BACKBONE_SHA256_PREFIX}…)",
            "resolution": f"native; images under {MIN_SIZE} px upsampled bilinearly to {MIN_SIZE}x{MIN_SIZE}",
            "input": "[0, 1] mapped to [-1, 1]; grey repeated to 3 channels",
        },
    ),
)
