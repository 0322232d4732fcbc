"""The performance benchmark runs and reports its ratios (its numbers are measured, not asserted)."""

import json

import pytest

from benchmark.apps import perf
from benchmark.cli import main
from benchmark.core.errors import SettingError


def test_perf_reports_speedup_overhead_and_memory_per_batch_size():
    report = perf.measure(perf.PerfSetting(steps=2, sizes=(1, 2), repeats=2, processes=2, process_steps=2))
    assert [row["problems"] for row in report["rows"]] == [1, 2]
    assert report["batched_speedup_k2"] == report["rows"][-1]["speedup"] > 0
    assert report["lightning_overhead"] > 0 and all(row["lightning_setup_s"] > 0 for row in report["rows"])
    assert all(row["peak_memory_mib"] > 100 for row in report["rows"])  # a process holding torch
    assert report["processes"]["process_speedup"] > 0
    assert "problems" in perf.format_report(report) and "2_processes_s" in perf.format_report(report)


def test_perf_against_breaching_prints_both_frameworks_and_the_ratios(monkeypatch, capsys):
    monkeypatch.setattr(perf, "peak_memory_mib", lambda setting, size, framework="leakbench": 1.0)  # measured below
    assert main(["perf", "--vs", "breaching", "--steps", "2", "--sizes", "1,2", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["problems"] for row in report["rows"]] == [1, 2] and report["vs"] == "breaching 0.1.2"
    first, last = report["rows"]
    assert report["breaching_step_ratio_k1"] == first["step_ratio"] > 0
    assert report["breaching_speedup_k2"] == last["speedup"] > 0
    assert last["leakbench_ms_per_problem_step"] == pytest.approx(1000 * last["leakbench_s"] / 4)
    assert report["breaching_steady_speedup_k2"] == last["steady_speedup"] > 0
    assert 0 < last["leakbench_one_off_s"] < last["leakbench_s"] and last["leakbench_first_one_off_s"] > 0
    assert "breaching 0.1.2 attacking them one after another" in perf.format_report(report)


def test_breachings_peak_memory_is_measured_in_a_fresh_process():
    assert perf.peak_memory_mib(perf.PerfSetting(steps=1), 1, "breaching") > 100  # a process holding torch


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"attack": "ssras"}, "attack 'ssras' is solved in closed form"),
        ({"vs": "inversefed"}, "perf compares LeakBench with breaching, not with 'inversefed'"),
        ({"repeats": 0}, "repeats must be a whole number >= 1, got 0"),
        ({"steps": -1}, "steps must be a whole number >= 1, got -1"),
        ({"compile": True}, "--compile is timed against breaching \\(--vs breaching\\)"),
    ],
)
def test_a_setting_perf_cannot_measure_is_refused_before_any_work(setting, message):
    with pytest.raises(SettingError, match=message):
        perf.PerfSetting(**setting)


def test_perf_errors_are_one_line(capsys):
    assert main(["perf", "--attack", "ssras"]) == 2
    assert capsys.readouterr().err.strip() == (
        "leakbench: error: attack 'ssras' is solved in closed form, with no optimisation loop to time; perf measures "
        "one of dlg, gradinversion, grnn, idlg, inverting_gradients"
    )
    with pytest.raises(SystemExit):
        main(["perf", "--repeats", "0"])
    assert capsys.readouterr().err.strip() == (
        "leakbench: error: argument --repeats: must be a whole number >= 1, got 0; see `leakbench perf --help`"
    )
