import json
from pathlib import Path

from synthetic import fake_entry, fake_result

from benchmark.apps.leaderboard import load_entry, submit, verify
from benchmark.apps.leaderboard.provenance import CodeComparison
from benchmark.apps.leaderboard.schema import FaceEncoder, rows_of
from benchmark.apps.leaderboard.submit import face_encoder_of
from benchmark.apps.leaderboard.verify import Difference, Verdict, compare, encoder_difference, format_verdict
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
