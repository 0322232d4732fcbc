"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018) through the ``lpips`` package: AlexNet features, the package's learned linear heads.

The package ships the heads; the AlexNet ImageNet backbone comes from torchvision's model store
(its cache, a download, or a file the user gives with ``--lpips-weights``). Without it the metric
is unavailable, never computed on a random backbone. AlexNet needs inputs of at least 32 pixels and
its deep layers see little below 64, so smaller images are resized to 64×64 (bilinear) first; grey
images are repeated to three channels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lpips
import torch
import torchvision
from torch import Tensor
from torch.nn import functional as F

from benchmark.data import downloads_allowed
from benchmark.metrics import METRICS, EvaluationSettings, MatchedBatch, MetricUnavailableError

BACKBONE = torchvision.models.AlexNet_Weights.IMAGENET1K_V1
MIN_SIZE = 64
_failed_downloads: list[str] = []  # a download that failed in this process is not tried again (a bench's cells)


def cached_backbone() -> Path:
    """Where torchvision keeps the AlexNet weights once downloaded ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(BACKBONE.url).name


def _from_file(path: Path) -> lpips.LPIPS:
    """The package's model with its backbone read from ``path`` (a torchvision AlexNet state dict)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecation of lpips's ``pretrained=``
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # lpips splits AlexNet's ``features`` into slices whose modules keep their index as their name.
        model.net.load_state_dict({f"{slice_name}.{key}": state[f"features.{key}"]
                                   for slice_name, part in model.net.named_children() for key in part.state_dict()})
    except Exception as err:  # unpickling and key errors alike: not the file LPIPS needs
        raise MetricUnavailableError(
            f"LPIPS: cannot read backbone weights {path} ({type(err).__name__}: {str(err).splitlines()[0][:80]}); "
            f"give torchvision's AlexNet file {Path(BACKBONE.url).name} with --lpips-weights") from None
    return model.eval()


def load_lpips(weights: Path | None) -> lpips.LPIPS:
    """LPIPS-AlexNet: from ``weights`` if given, else by the package's own loading (torchvision's cache,
    or a download where allowed). Raises :class:`MetricUnavailableError` saying how to get the weights."""
    if weights is not None:
        return _from_file(weights)
    cached = cached_backbone()
    reason = f"the AlexNet ImageNet weights are not in {cached.parent}"
    failure = None
    if cached.is_file() or (downloads_allowed() and not _failed_downloads):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return lpips.LPIPS(net="alex", verbose=False).eval()
        except Exception as err:  # network errors come in many types; all mean the same here
            failure = f" and loading or downloading them failed ({type(err).__name__}: {str(err)[:100]})"
            _failed_downloads.append(failure)
    elif downloads_allowed():
        failure = _failed_downloads[-1]
    reason += failure or " and downloads are disabled by LEAKBENCH_OFFLINE"
    raise MetricUnavailableError(
        f"LPIPS: {reason}. Run once with internet access (torchvision caches {cached.name}), copy that file "
        f"to {cached.parent}, or pass --lpips-weights PATH")


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
