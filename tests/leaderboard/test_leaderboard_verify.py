from pathlib import Path

from benchmark.leaderboard.schema import rows_of
from benchmark.leaderboard.verify import TOLERANCES, Difference, Verdict, compare, format_verdict

from synthetic import fake_entry, fake_result


def _rows(psnr):
    return rows_of(fake_result(psnr=psnr), len(psnr))


def test_values_within_tolerance_pass():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    assert TOLERANCES["psnr"].allowed(20.0) == 1.0 and TOLERANCES["psnr"].allowed(2.0) == 0.5
    assert compare(entry, _rows((20.9, 30.0, 40.0))) == []  # PSNR ±1 dB; MSE 0.01 → 0.0081 within 25 %


def test_a_moved_metric_and_a_new_failure_are_differences():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    differences = compare(entry, _rows((20.0, None, 46.0)))
    assert Difference("target 1", "failed", None, "FloatingPointError: NaN", None) in differences
    assert ("target 2", "psnr", 40.0, 46.0) in [(d.where, d.metric, d.recorded, d.measured) for d in differences]
    assert ("summary", "psnr") in [(d.where, d.metric) for d in differences]


def test_a_quick_check_compares_only_the_targets_it_ran():
    entry = fake_entry(psnr=(20.0, 30.0, 40.0))
    assert compare(entry, _rows((20.0,))) == []


def test_the_verdict_reads_as_a_table():
    moved = Verdict(Path("e.json"), 3, True, [Difference("target 2", "psnr", 40.0, 46.0, 2.0)])
    assert format_verdict(moved).splitlines() == [
        "e.json: all 3 target(s) re-run: 1 value(s) moved beyond tolerance",
        "  where      metric               recorded     measured    allowed",
        "  target 2   psnr                       40           46         ±2"]
    assert format_verdict(Verdict(Path("e.json"), 1, False, [])) == "e.json: first 1 target(s) re-run: every metric within tolerance"
