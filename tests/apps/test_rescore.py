"""Re-scoring a run folder from its stored reconstructions, against scikit-image's reference SSIM."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from benchmark import run
from benchmark.apps.rescore import rescore
from benchmark.cli import main
from benchmark.core.errors import LeakBenchError
from benchmark.data import load_samples, load_source
from benchmark.metrics.matching import match
from benchmark.pipeline.tasks import load_task


@pytest.fixture(scope="module")
def grnn_run(tmp_path_factory) -> Path:
    """A short GRNN run on a batch of four MNIST digits (black backgrounds: where SSIMs part ways)."""
    out = tmp_path_factory.mktemp("rescore") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAKBENCH_OFFLINE", "1")
        run("mnist-lenet5-b4", "grnn", targets=1, max_steps=10, out=out, logger=None)
    return out


def _reference(folder: Path) -> list[float]:
    """scikit-image's Gaussian valid-region SSIM of each matched pair of the stored reconstruction."""
    spec = load_task("mnist-lenet5-b4")
    truth = load_samples(load_source(spec.data), spec.target_indices(0)).images.double()
    images = torch.load(folder / "reconstructions" / "target-0000.pt", weights_only=True).double().clamp(0, 1)
    images = images[match(images, truth)]
    return [
        structural_similarity(
            a.numpy(),
            b.numpy(),
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
        )
        for a, b in zip(images, truth)
    ]


def test_a_run_reports_the_reference_ssim_of_its_saved_reconstruction(grnn_run):
    reported = json.loads((grnn_run / "results.json").read_text())["targets"][0]["metrics"]["ssim"]
    np.testing.assert_allclose(reported, _reference(grnn_run), atol=1e-3)
    definitions = json.loads((grnn_run / "results.json").read_text())["metric_definitions"]
    assert definitions["ssim"]["window"] == "gaussian 11x11" and definitions["ssim"]["versions"]["torchmetrics"]


def test_rescore_recomputes_metrics_from_stored_reconstructions_and_keeps_the_attacks_outputs(grnn_run, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    for item in grnn_run.iterdir():  # a copy whose rows hold stale numbers (an earlier SSIM, say)
        target = folder / item.name
        target.mkdir() if item.is_dir() else target.write_bytes(item.read_bytes())
        if item.is_dir():
            for inner in item.iterdir():
                (target / inner.name).write_bytes(inner.read_bytes())
    stale = [json.loads(line) for line in (folder / "targets.jsonl").read_text().splitlines()]
    for row in stale:
        row["metrics"] = {"ssim": [0.0] * 4}
    (folder / "targets.jsonl").write_text("".join(json.dumps(row) + "\n" for row in stale))
    results = json.loads((folder / "results.json").read_text())
    results["targets"] = stale
    (folder / "results.json").write_text(json.dumps(results))

    result = rescore(folder)
    row = result.targets[0]
    np.testing.assert_allclose(row.metrics["ssim"], _reference(grnn_run), atol=1e-6)
    assert {"psnr", "mse", "ssim_skimage7", "label_accuracy"} <= set(row.metrics)
    assert row.recovered_labels == stale[0]["recovered_labels"] and row.loss == pytest.approx(stale[0]["loss"])
    written = json.loads((folder / "results.json").read_text())
    assert written["summary"]["ssim"] == pytest.approx(np.mean(_reference(grnn_run)), abs=1e-6)
    assert json.loads((folder / "targets.jsonl").read_text().splitlines()[0])["metrics"]["ssim"] == row.metrics["ssim"]
    assert written["metric_definitions"]["ssim"]["mean_over"] == "valid region, then channels"


def test_rescore_refuses_an_unfinished_or_changed_run(grnn_run, tmp_path, capsys):
    with pytest.raises(
        LeakBenchError,
        match=r"^cannot read run record .*run.json: No such file or directory; rescore reads finished run folders",
    ):
        rescore(tmp_path)
    changed = tmp_path / "changed"
    changed.mkdir()
    definition = json.loads((grnn_run / "run.json").read_text())
    (changed / "run.json").write_text(json.dumps({**definition, "spec_hash": "0" * 64}))
    (changed / "results.json").write_text((grnn_run / "results.json").read_text())
    assert main(["rescore", str(changed)]) != 0
    assert "is not the one this run measured" in capsys.readouterr().err
