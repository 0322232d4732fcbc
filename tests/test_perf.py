"""The performance benchmark runs and reports its ratios (its numbers are measured, not asserted)."""

from benchmark import perf


def test_perf_reports_speedup_overhead_and_memory_per_batch_size():
    report = perf.measure(perf.PerfSetting(steps=2, sizes=(1, 2), repeats=2, processes=2, process_steps=2))
    assert [row["problems"] for row in report["rows"]] == [1, 2]
    assert report["batched_speedup_k2"] == report["rows"][-1]["speedup"] > 0
    assert report["lightning_overhead"] > 0 and all(row["lightning_setup_s"] > 0 for row in report["rows"])
    assert all(row["peak_memory_mib"] > 100 for row in report["rows"])  # a process holding torch
    assert report["processes"]["process_speedup"] > 0
    assert "problems" in perf.format_report(report) and "2_processes_s" in perf.format_report(report)
