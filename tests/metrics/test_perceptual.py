import copy
from pathlib import Path

import lpips
import pytest
import torch
import torchvision

from benchmark.metrics import EvaluationSettings, Evaluator, MatchedBatch, MetricUnavailableError
from benchmark.metrics.perceptual import LPIPS, load_lpips


@pytest.fixture
def alexnet_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A torchvision AlexNet state dict on disk (random weights: ImageNet's cannot be downloaded here)."""
    torch.manual_seed(3)
    model = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_lpips_from_a_weights_file_equals_the_lpips_package(alexnet_file, monkeypatch):
    path, alexnet = alexnet_file
    metric = LPIPS(EvaluationSettings(lpips_weights=path))
    # The package's own loading, with torchvision handing it the same backbone.
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **kwargs: copy.deepcopy(alexnet))
    package = lpips.LPIPS(net="alex", verbose=False).eval()
    torch.manual_seed(0)
    images, truth = torch.rand(3, 3, 64, 64, dtype=torch.float64), torch.rand(3, 3, 64, 64, dtype=torch.float64)
    ours = metric(MatchedBatch(images, torch.zeros(3), truth, torch.zeros(3)))
    with torch.no_grad():
        expected = package(images.float(), truth.float(), normalize=True).flatten().double()
    assert ours.shape == (3,) and (ours > 0).all()
    torch.testing.assert_close(ours, expected)
    same = metric(MatchedBatch(truth, torch.zeros(3), truth, torch.zeros(3)))
    assert same.abs().max() < 1e-6


def test_small_and_grey_images_are_scored(alexnet_file):
    metric = LPIPS(EvaluationSettings(lpips_weights=alexnet_file[0]))
    grey = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    values = metric(MatchedBatch(grey, torch.zeros(2), grey.flip(0), torch.zeros(2)))
    assert values.shape == (2,) and torch.isfinite(values).all()


def test_without_weights_offline_lpips_is_unavailable_and_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    evaluator = Evaluator.for_task(("mse",), EvaluationSettings())
    images = torch.rand(2, 3, 32, 32)
    values = evaluator(images, torch.zeros(2), images, torch.zeros(2))
    assert set(values) == {"mse"}
    reason = evaluator.unavailable["lpips"]
    assert "--lpips-weights" in reason and "alexnet-owt" in reason and "LEAKBENCH_OFFLINE" in reason
    assert evaluator.summary() == {"lpips": None, "unavailable": {"lpips": reason}}


def test_an_unreadable_weights_file_is_unavailable_not_a_crash(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_text("not a state dict")
    with pytest.raises(MetricUnavailableError, match="cannot read backbone weights"):
        load_lpips(broken)


def test_a_failed_download_is_reported_and_not_tried_again_in_the_process(tmp_path, monkeypatch):
    from benchmark.metrics import perceptual

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    monkeypatch.setattr(perceptual, "_failed_downloads", [])
    attempts = []

    def no_network(**kwargs):
        attempts.append(kwargs)
        raise ConnectionError("no route to host")

    monkeypatch.setattr(perceptual.lpips, "LPIPS", no_network)
    for _ in range(2):
        with pytest.raises(MetricUnavailableError, match="downloading them failed .ConnectionError: no route to host"):
            load_lpips(None)
    assert len(attempts) == 1


def test_an_earlier_failed_download_does_not_hide_that_downloads_are_now_disabled(tmp_path, monkeypatch):
    from benchmark.metrics import perceptual

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(perceptual, "_failed_downloads", [" and loading or downloading them failed (URLError)"])
    with pytest.raises(MetricUnavailableError, match="downloads are disabled by LEAKBENCH_OFFLINE"):
        load_lpips(None)
