import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.core.errors import FileError
from benchmark.core.files import write_atomic
from benchmark.pipeline.result import Result, TargetResult, in_matched_order, save_comparison


def _result(psnrs):
    result = Result(task="t", task_version=1, spec_hash="h", attack="a", config={}, data_origin="o", environment={})
    for i, psnr in enumerate(psnrs):
        result.targets.append(
            TargetResult(
                target=i,
                indices=[i],
                labels=[0],
                recovered_labels=[0],
                metrics={"psnr": [psnr], "label_accuracy": [1.0]},
                loss=0.1,
                tries=1,
                seconds=2.0,
            )
        )
    return result


def test_summary_averages_finite_values_and_totals_seconds():
    summary = _result([10.0, 30.0, math.nan]).summary
    assert summary["psnr"] == 20.0 and summary["seconds"] == 6.0 and summary["targets"] == 3
    assert summary["ssim"] is None


def test_a_metric_measured_on_only_some_targets_has_no_mean_and_says_why():
    result = _result([10.0, 30.0])
    result.targets[1].metrics["lpips"] = [0.4]  # e.g. the backbone arrived between two sessions of a run
    result.evaluation = {"unavailable": {"reid": "no face encoder"}}
    summary = result.summary
    assert summary["lpips"] is None and summary["psnr"] == 20.0
    assert summary["unavailable"] == {"reid": "no face encoder", "lpips": summary["unavailable"]["lpips"]}
    assert (
        "measured on 1 of 2 targets" in summary["unavailable"]["lpips"] and "--fresh" in summary["unavailable"]["lpips"]
    )


def test_write_is_valid_json_with_the_documented_keys(tmp_path: Path):
    path = _result([10.0]).write(tmp_path / "run")
    data = json.loads(path.read_text())
    assert {"task", "attack", "config", "summary", "targets"} <= data.keys()
    assert {"psnr", "ssim", "mse", "label_accuracy", "seconds"} <= data["summary"].keys()
    assert data["targets"][0]["psnr"] == 10.0
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    path = write_atomic(tmp_path / "x.json", "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        write_atomic(path, Boom())  # type: ignore[arg-type]
    assert path.read_text() == "old"


def test_atomic_writes_get_the_permissions_of_an_ordinary_file(tmp_path: Path):
    mask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "shared.json", "{}")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_comparison_picture_has_truth_over_reconstruction(tmp_path: Path):
    truth, recon = torch.zeros(3, 3, 8, 8), torch.ones(3, 3, 8, 8)
    image = Image.open(save_comparison(truth, recon, tmp_path / "r.png", scale=1))
    assert image.size == (3 * 8 + 4 * 2, 2 * 8 + 3 * 2)
    pixels = torch.from_numpy(np.array(image.convert("L")))
    assert pixels[2 + 4, 2 + 4] == 0 and pixels[2 + 8 + 2 + 4, 2 + 4] == 255


def test_comparison_picture_columns_are_matched_pairs_with_the_recovered_label_under_each(tmp_path: Path):
    # Two targets of 4: the first reconstructed in a shuffled order, the second failed (grey, no labels).
    truth = (0.05 + 0.1 * torch.arange(8.0))[:, None, None, None].expand(8, 3, 8, 8).clone()
    shuffle = torch.tensor([2, 0, 3, 1])  # reconstruction i is truth image shuffle[i] with a little noise
    attack_order = torch.cat([truth[shuffle] + 0.01 * torch.randn(4, 3, 8, 8), torch.full((4, 3, 8, 8), 0.5)])
    stored = attack_order.clone()
    shown, labels = in_matched_order(truth, attack_order, [[10 + int(i) for i in shuffle], []])
    assert torch.equal(attack_order, stored)  # the attack's output (what the run folder stores) is left alone
    assert labels == [10, 11, 12, 13, None, None, None, None]
    image = Image.open(save_comparison(truth, shown, tmp_path / "r.png", labels=labels))
    pixels = np.asarray(image.convert("L"), dtype=np.float64) / 255
    side, pad = 16, 2  # 8 px images at the default scale 2, make_grid's padding
    assert image.size[1] > 2 * side + 3 * pad  # a row of labels under the grid

    def block(row, column):
        top, left = pad + row * (side + pad), pad + column * (side + pad)
        return pixels[top : top + side, left : left + side]

    strip = pixels[2 * (side + pad) + pad :]
    cells = [strip[:, pad + c * (side + pad) : pad + c * (side + pad) + side] for c in range(8)]
    for column in range(4):  # each column: truth image `column` over the reconstruction matched to it
        assert abs(block(0, column).mean() - truth[column].mean().item()) < 0.01
        assert abs(block(1, column).mean() - truth[column].mean().item()) < 0.02
        assert cells[column].min() < 0.5  # its label is drawn
    assert len({cells[c].tobytes() for c in range(4)}) == 4  # four different labels, four different texts
    for column in range(4, 8):  # the failed target: its placeholder, and no label
        assert abs(block(1, column).mean() - 0.5) < 0.01 and cells[column].min() == 1.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("target", -1),
        ("target", "0"),
        ("indices", [0.5]),
        ("labels", "0"),
        ("metrics", {"psnr": ["x"]}),
        ("metrics", []),
        ("loss", "low"),
        ("seconds", -1),
        ("tries", True),
        ("failed", 3),
        ("details", []),
    ],
)
def test_a_row_of_wrong_types_is_refused(field, value):
    row = _result([10.0]).targets[0].row()
    assert TargetResult.from_row(row).row() == row
    with pytest.raises(TypeError, match=f"field '{field}' of a target row has the wrong type or range"):
        TargetResult.from_row({**row, field: value})


def test_the_summary_says_which_targets_failed_for_which_reason():
    result = _result([10.0, 20.0, 30.0, 40.0])
    for number, reason in (
        (1, "FloatingPointError: NaN"),
        (3, "FloatingPointError: NaN"),
        (2, "AttackFailure: singular"),
    ):
        result.targets[number].failed = reason
    summary = result.summary
    assert summary["failed"] == 3 and summary["psnr"] == 10.0
    assert summary["failures"] == {"FloatingPointError: NaN": [1, 3], "AttackFailure: singular": [2]}
    assert "failures" not in _result([10.0]).summary


def test_an_unwritable_folder_is_one_line(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(
        FileError, match=r"^cannot write .*a-file/x.json: File exists; choose a folder that can hold it$"
    ):
        write_atomic(tmp_path / "a-file" / "x.json", "{}")
