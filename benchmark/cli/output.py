"""What the commands print, where more than one prints it or it takes more than a line: the columns of
a results table and the row of one run, the evaluation notes beneath (face re-identification, the
unavailable metrics, the failed targets), a defence's description, a row of the batch-size study, and
whether to show Lightning's progress bar.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchmark.core.tables import format_table

COLUMNS = ("task", "attack", "targets", "failed", "psnr", "ssim", "mse", "lpips", "label_accuracy", "seconds")
REID_ROWS = (("reconstructions", ""), ("originals (ceiling)", "_ceiling"), ("noise images (chance)", "_chance"))


def summary_row(result) -> dict[str, Any]:
    return {"task": result.task, "attack": result.attack, **result.summary}


def print_evaluation(summaries: list[dict[str, Any]]) -> None:
    """Face re-identification beside its ceiling and chance, each unavailable metric's reason once,
    and the targets that failed with their reasons."""
    for summary in summaries:
        if summary.get("reid_backend") is None:
            continue
        aligned = summary.get("reid_aligned")
        print(
            f"\nface re-identification, {summary['task']} / {summary['attack']}: {summary['reid_backend']} encoder, "
            f"gallery of {summary['reid_gallery']}"
            + (f"; MTCNN found a face in {aligned:.0%} of the reconstructions" if aligned is not None else "")
        )
        rows = [
            {"images": what, "top-1": summary.get(f"reid_top1{suffix}"), "top-5": summary.get(f"reid_top5{suffix}")}
            for what, suffix in REID_ROWS
        ]
        print(format_table(rows, ("images", "top-1", "top-5")))
    reasons = {name: reason for summary in summaries for name, reason in summary.get("unavailable", {}).items()}
    for name, reason in reasons.items():
        print(f"\n{name} unavailable: {reason}")
    failures = [
        (summary, reason, targets) for summary in summaries for reason, targets in summary.get("failures", {}).items()
    ]
    for summary, reason, targets in failures:
        print(f"\n{summary['task']} / {summary['attack']}: target(s) {', '.join(map(str, targets))} failed: {reason}")
    if failures:
        print("(failed targets are counted, never averaged in; --retry-failed recomputes them)")


def progress(args: argparse.Namespace) -> bool:
    """Lightning's progress bar: on a terminal only (piped or redirected output gets none), unless --no-progress."""
    return not args.no_progress and sys.stdout.isatty()


def study_row(row: dict[str, Any], criteria) -> dict[str, Any]:
    def spread(values: dict[str, float | None], scale: float = 1.0, digits: int = 3) -> str | None:
        if values["mean"] is None:
            return None
        mean, low, high = (f"{scale * values[k]:.{digits}g}" for k in ("mean", "min", "max"))
        return mean if low == high else f"{mean} [{low}-{high}]"

    return {
        "batch_size": row["batch_size"],
        "attack": row["attack"],
        "seeds": row["seeds"],
        "images": row["images"],
        **{c.name: spread(row[c.name], 100) for c in criteria},
        "psnr": spread(row["psnr"], digits=4),
        "ssim": spread(row["ssim"]),
        "label_accuracy": spread(row["label_accuracy"], 100),
        "note": "unavailable: " + row["unavailable"].split(":")[0] if row["unavailable"] else "",
    }


def describe_defense(record: dict[str, Any]) -> str:
    params = ", ".join(f"{key}={value}" for key, value in record["params"].items())
    privacy = record.get("privacy")
    guarantee = f"; ({privacy['epsilon']:.4g}, {privacy['delta']:g})-DP for the attacked round" if privacy else ""
    return f"{record['name']}({params}){guarantee}"
