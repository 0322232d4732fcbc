import json
from pathlib import Path

import pytest
from synthetic import fake_entry, fake_result

from benchmark.apps.leaderboard import load_entry, submit, verify
from benchmark.apps.leaderboard.provenance import CodeComparison
from benchmark.apps.leaderboard.schema import FaceEncoder, Spread, rows_of, write_entry
from benchmark.apps.leaderboard.submit import face_encoder_of
from benchmark.apps.leaderboard.verify import (
    Difference,
    Verdict,
    compare,
    encoder_difference,
    format_verdict,
    largest_moves,
    measured_spread,
)
from benchmark.core.errors import LeakBenchError
from benchmark.metrics import metric_info
from benchmark.pipeline.isolation import Isolation


def _rows(psnr):
    return rows_of(fake_result(psnr=psnr), len(psnr))


def test_values_within_tolerance_pass():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    assert metric_info("psnr").tolerance.allowed(20.0) == 1.0 and metric_info("psnr").tolerance.allowed(2.0) == 0.5
    assert compare(entry, _rows((20.9, 30.0, 40.0))) == []  # PSNR ±1 dB; MSE 0.01 → 0.0081 within 25 %


def test_a_re_identification_by_other_encoder_weights_is_a_difference():
    facenet, dlib = "281cebca" + "0" * 56, "55533b28" + "1" * 56
    assert face_encoder_of({"reid_backend": "facenet", "reid_weights_sha256": facenet}) == FaceEncoder(
        backend="facenet", weights_sha256=facenet
    )
    assert face_encoder_of({"psnr": 20.0}) is None  # a task without re-identification
    entry = fake_entry().model_copy(
        update={"face_encoder": face_encoder_of({"reid_backend": "facenet", "reid_weights_sha256": facenet})}
    )
    assert encoder_difference(entry, FaceEncoder(backend="facenet", weights_sha256=facenet)) == []
    assert encoder_difference(entry, FaceEncoder(backend="dlib", weights_sha256=dlib)) == [
        Difference("summary", "face encoder", "facenet 281cebca", "dlib 55533b28", None)
    ]
    assert encoder_difference(fake_entry(), None) == []


def test_a_moved_metric_and_a_new_failure_are_differences():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    differences = compare(entry, _rows((20.0, None, 46.0)))
    assert Difference("target 1", "failed", None, "FloatingPointError: NaN", None) in differences
    assert ("target 2", "psnr", 40.0, 46.0) in [(d.where, d.metric, d.recorded, d.measured) for d in differences]
    assert ("summary", "psnr") in [(d.where, d.metric) for d in differences]


def test_a_quick_check_compares_only_the_targets_it_ran():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    assert compare(entry, _rows((20.0,))) == []


def test_a_target_computed_in_another_group_than_the_entrys_is_a_difference():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    for row in entry.rows:
        row.group = [0, 1, 2]
    rows = _rows((20.0, 30.0, 40.0))
    for row in rows:
        row.group = [0, 1, 2] if row.target else [0]
    assert compare(entry, rows) == [Difference("target 0", "group", "0-2", "0", None)]
    assert compare(fake_entry(psnr=(20.0, 30.0, 40.0)), rows) == []  # an entry that records no groups


SAME = CodeComparison("a" * 40, "a" * 40, (), None, "benchmark/attacks/dlg.py", "leakbench 0.1.0", "leakbench 0.1.0")
ENVIRONMENT = "environment: as the entry's environments/0123456789ab.txt"


def test_the_verdict_reads_as_a_table_under_the_code_it_ran():
    moved = Verdict(Path("e.json"), 3, True, [Difference("target 2", "psnr", 40.0, 46.0, 2.0)], SAME, ENVIRONMENT)
    assert format_verdict(moved).splitlines() == [
        "e.json: all 3 target(s) re-run: 1 value(s) moved beyond tolerance",
        "  code at aaaaaaaaaaaa: the same as the entry's commit aaaaaaaaaaaa under benchmark/",
        f"  {ENVIRONMENT}",
        "  where      metric               recorded     measured    allowed",
        "  target 2   psnr                       40           46         ±2",
    ]
    assert format_verdict(Verdict(Path("e.json"), 1, False, [], SAME, ENVIRONMENT)).splitlines() == [
        "e.json: first 1 target(s) re-run: every metric within tolerance",
        "  code at aaaaaaaaaaaa: the same as the entry's commit aaaaaaaaaaaa under benchmark/",
        f"  {ENVIRONMENT}",
    ]


def test_a_well_behaved_attack_verifies_isolated_exactly_as_unisolated(mini: Path, clean_checkout: Path):
    (path,) = submit("idlg", "mini", tasks=["tiny-cifar"], logger=None, isolation=Isolation())  # on someone's behalf
    plain = verify(path, runs=Path("plain"))
    isolated = verify(path, runs=Path("isolated"), isolation=Isolation(), record=True)
    assert plain.differences == isolated.differences == [] and isolated.complete and load_entry(path).verified
    rows = [
        [
            {key: value for key, value in row.items() if key != "seconds"}
            for row in json.loads((runs / "tiny-cifar" / "idlg" / "results.json").read_text())["targets"]
        ]
        for runs in (Path("runs/submit-mini"), Path("plain/verify-mini"), Path("isolated/verify-mini"))
    ]
    assert len(rows[0]) == 2 and rows[0] == rows[1] == rows[2]


def test_a_recorded_spread_widens_the_tolerance_of_its_metric_and_no_other():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    moved = _rows((20.0, 30.0, 43.0))
    assert ("target 2", "psnr") in [(d.where, d.metric) for d in compare(entry, moved)]  # ±2 dB at 40 dB
    spread = Spread(
        date=entry.date, environment=entry.environment, differs_in=["torch 2.15.0 (the entry's: 2.14.1)"], moves={}
    )
    wide = entry.model_copy(update={"spreads": [spread.model_copy(update={"moves": {"psnr": 3.5, "ssim": 0.5}})]})
    assert wide.spread("psnr", "target 0") == 3.5 and wide.spread("mse", "target 0") == 0.0
    assert compare(wide, moved) == []
    assert ("target 2", "psnr") in [(d.where, d.metric) for d in compare(wide, _rows((20.0, 30.0, 44.0)))]


def test_a_spread_recorded_per_place_widens_only_the_target_that_moved():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    moves_at = measured_spread(entry, _rows((20.0, 30.0, 10.0)))  # target 2 diverged elsewhere: 30 dB
    spread = Spread(
        date=entry.date,
        environment=entry.environment,
        differs_in=["device another CPU"],
        moves=largest_moves(moves_at),
        moves_at=moves_at,
    )
    wide = entry.model_copy(update={"spreads": [spread]})
    assert wide.spread("psnr", "target 2") == pytest.approx(30.0) and wide.spread("psnr", "target 0") == 0.0
    assert wide.spread("psnr", "summary") == pytest.approx(10.0)
    assert compare(wide, _rows((20.0, 30.0, 12.0))) == []  # the chaotic target may land anywhere it was seen
    moved = [(d.where, d.metric) for d in compare(wide, _rows((14.0, 30.0, 40.0)))]
    assert ("target 0", "psnr") in moved  # a stable target keeps its own tolerance
    assert ("summary", "psnr") not in moved  # 28 against 30: within the summary's own move of 10
    assert ("summary", "psnr") in [(d.where, d.metric) for d in compare(wide, _rows((5.0, 15.0, 10.0)))]


def test_the_measured_spread_is_each_target_s_and_the_summary_s_move():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    moves_at = measured_spread(entry, _rows((20.5, 30.0, 37.0)))
    assert moves_at["target 0"]["psnr"] == pytest.approx(0.5) and moves_at["target 1"]["psnr"] == 0.0
    assert moves_at["target 2"]["psnr"] == pytest.approx(3.0)
    assert moves_at["summary"]["psnr"] == pytest.approx(2.5 / 3)
    assert largest_moves(moves_at)["psnr"] == pytest.approx(3.0)
    assert moves_at["summary"]["label_accuracy"] == 0.0 and set(moves_at["summary"]) <= set(entry.summary.metrics)
    with pytest.raises(LeakBenchError, match="another computation, not a spread"):
        measured_spread(entry, _rows((20.0, None, 40.0)))  # a target that failed on one side only


def test_a_spread_is_measured_only_in_another_environment_and_over_every_target(mini: Path, clean_checkout: Path):
    (path,) = submit("idlg", "mini", tasks=["tiny-cifar"], logger=None)
    with pytest.raises(LeakBenchError, match="this environment is the entry's, where re-runs are bit-identical"):
        verify(path, record_spread=True)
    entry = load_entry(path)
    elsewhere = entry.environment.model_copy(update={"device": "another CPU (64 cores)"})
    write_entry(path.parents[2], entry.model_copy(update={"environment": elsewhere}), None)
    with pytest.raises(LeakBenchError, match="a spread needs every target re-run"):
        verify(path, targets=1, record_spread=True)
    with pytest.raises(LeakBenchError, match="give one of them"):
        verify(path, record=True, record_spread=True)
    verdict = verify(path, record_spread=True)
    (spread,) = load_entry(path).spreads
    assert verdict.differences == [] and not load_entry(path).verified  # recording a spread verifies nothing
    assert spread.differs_in[-1].startswith("device ") and "another CPU (64 cores)" in spread.differs_in[-1]
    assert spread.moves["psnr"] == 0.0 and set(spread.moves) >= {"psnr", "mse", "label_accuracy"}
    assert set(spread.moves_at) == {"target 0", "target 1", "summary"} and spread.moves_at["summary"]["psnr"] == 0.0
