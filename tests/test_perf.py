"""The performance benchmark runs and reports its ratios (its numbers are measured, not asserted)."""

import pytest

from benchmark import perf
from benchmark.cli import main
from benchmark.errors import SettingError


def test_perf_reports_speedup_overhead_and_memory_per_batch_size():
    report = perf.measure(perf.PerfSetting(steps=2, sizes=(1, 2), repeats=2, processes=2, process_steps=2))
    assert [row["problems"] for row in report["rows"]] == [1, 2]
    assert report["batched_speedup_k2"] == report["rows"][-1]["speedup"] > 0
    assert report["lightning_overhead"] > 0 and all(row["lightning_setup_s"] > 0 for row in report["rows"])
    assert all(row["peak_memory_mib"] > 100 for row in report["rows"])  # a process holding torch
    assert report["processes"]["process_speedup"] > 0
    assert "problems" in perf.format_report(report) and "2_processes_s" in perf.format_report(report)


@pytest.mark.parametrize("setting, message", [({"attack": "ssras"}, "attack 'ssras' is solved in closed form"),
                                              ({"repeats": 0}, "repeats must be a whole number >= 1, got 0"),
                                              ({"steps": -1}, "steps must be a whole number >= 1, got -1")])
def test_a_setting_perf_cannot_measure_is_refused_before_any_work(setting, message):
    with pytest.raises(SettingError, match=message):
        perf.PerfSetting(**setting)


def test_perf_errors_are_one_line(capsys):
    assert main(["perf", "--attack", "ssras"]) == 2
    assert capsys.readouterr().err.strip() == (
        "leakbench: error: attack 'ssras' is solved in closed form, with no optimisation loop to time; perf measures "
        "one of dlg, grnn, idlg, inverting_gradients")
    with pytest.raises(SystemExit):
        main(["perf", "--repeats", "0"])
    assert capsys.readouterr().err.strip() == ("leakbench: error: argument --repeats: must be a whole number >= 1, "
                                               "got 0; see `leakbench perf --help`")
