import copy
from pathlib import Path

import lpips
import pytest
import torch
import torchvision

from benchmark.metrics import EvaluationSettings, Evaluator, MatchedBatch, MetricUnavailableError, perceptual
from benchmark.metrics.perceptual import LPIPS, load_lpips, sha256


@pytest.fixture
def alexnet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, torch.nn.Module]:
    """A torchvision AlexNet state dict on disk (random weights: ImageNet's cannot be downloaded here),
    standing in for the published file: its hash is taken as the published prefix."""
    torch.manual_seed(3)
    model = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save(model.state_dict(), path)
    monkeypatch.setattr(perceptual, "BACKBONE_SHA256_PREFIX", sha256(path)[:8])
    return path, model


def test_lpips_from_a_weights_file_equals_the_lpips_package_at_native_32_px(alexnet_file, monkeypatch):
    path, alexnet = alexnet_file
    metric = LPIPS(EvaluationSettings(lpips_weights=path))
    # The package's own loading, with torchvision handing it the same backbone.
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **kwargs: copy.deepcopy(alexnet))
    package = lpips.LPIPS(net="alex", verbose=False).eval()
    torch.manual_seed(0)
    images, truth = torch.rand(3, 3, 32, 32, dtype=torch.float64), torch.rand(3, 3, 32, 32, dtype=torch.float64)
    ours = metric(MatchedBatch(images, torch.zeros(3), truth, torch.zeros(3)))
    with torch.no_grad():  # no resize: the package on the 32×32 images themselves
        expected = package(images.float(), truth.float(), normalize=True).flatten().double()
    assert ours.shape == (3,) and (ours > 0).all()
    torch.testing.assert_close(ours, expected)
    same = metric(MatchedBatch(truth, torch.zeros(3), truth, torch.zeros(3)))
    assert same.abs().max() < 1e-6


def test_small_and_grey_images_are_upsampled_to_the_backbones_minimum(alexnet_file):
    metric = LPIPS(EvaluationSettings(lpips_weights=alexnet_file[0]))
    grey = torch.rand(2, 1, 25, 25, dtype=torch.float64)
    values = metric(MatchedBatch(grey, torch.zeros(2), grey.flip(0), torch.zeros(2)))
    assert values.shape == (2,) and torch.isfinite(values).all()
    upsampled = torch.nn.functional.interpolate(grey.repeat(1, 3, 1, 1), size=(32, 32), mode="bilinear")
    torch.testing.assert_close(
        values, metric(MatchedBatch(upsampled, torch.zeros(2), upsampled.flip(0), torch.zeros(2)))
    )


def test_a_backbone_file_that_is_not_the_published_one_is_refused(alexnet_file):
    path, _ = alexnet_file
    tampered = path.with_name("alexnet-owt-7be5be79.pth")
    state = torch.load(path, weights_only=True)
    state["features.0.weight"][0, 0, 0, 0] += 1e-3  # the right shapes, other numbers
    torch.save(state, tampered)
    with pytest.raises(MetricUnavailableError, match="is not torchvision's AlexNet weights .sha256"):
        load_lpips(tampered)


def test_a_tampered_cached_backbone_is_refused_too(alexnet_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    perceptual.cached_backbone().parent.mkdir(parents=True)
    perceptual.cached_backbone().write_bytes(alexnet_file[0].read_bytes() + b"\0")
    with pytest.raises(MetricUnavailableError, match="is not torchvision's AlexNet weights"):
        load_lpips(None)


def test_without_weights_offline_lpips_is_unavailable_and_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    evaluator = Evaluator(("mse", "lpips"), EvaluationSettings())
    images = torch.rand(2, 3, 32, 32)
    values = evaluator(images, torch.zeros(2), images, torch.zeros(2))
    assert set(values) == {"mse"}
    reason = evaluator.unavailable["lpips"]
    assert "--lpips-weights" in reason and "alexnet-owt" in reason and "LEAKBENCH_OFFLINE" in reason
    assert evaluator.summary() == {"lpips": None, "unavailable": {"lpips": reason}}


def test_an_unreadable_weights_file_is_unavailable_not_a_crash(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_text("not a state dict")
    with pytest.raises(MetricUnavailableError, match="is not torchvision's AlexNet weights"):
        load_lpips(broken)
    with pytest.raises(MetricUnavailableError, match="cannot read backbone weights"):
        load_lpips(tmp_path / "absent.pth")


def test_a_failed_download_is_reported_and_not_tried_again_in_the_process(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    monkeypatch.setattr(perceptual, "_failed_downloads", [])
    attempts = []

    def no_network(url, destination, **kwargs):
        attempts.append(url)
        assert kwargs["hash_prefix"] == "7be5be79"  # torch.hub checks the download against the published prefix
        raise ConnectionError("no route to host")

    monkeypatch.setattr(perceptual.torch.hub, "download_url_to_file", no_network)
    for _ in range(2):
        with pytest.raises(MetricUnavailableError, match="downloading them failed .ConnectionError: no route to host"):
            load_lpips(None)
    assert len(attempts) == 1


def test_an_earlier_failed_download_does_not_hide_that_downloads_are_now_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(perceptual, "_failed_downloads", ["downloading them failed (URLError)"])
    with pytest.raises(MetricUnavailableError, match="downloads are disabled by LEAKBENCH_OFFLINE"):
        load_lpips(None)
