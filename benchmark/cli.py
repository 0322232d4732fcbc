"""The ``leakbench`` command: a thin layer over :func:`benchmark.run` and the registries."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from benchmark.attacks import ATTACKS
from benchmark.errors import LeakBenchError, NotApplicableError
from benchmark.result import write_atomic
from benchmark.loggers import LOGGERS
from benchmark.runner import run
from benchmark.spec import TASKS, load_suite, load_task, spec_hash

log = logging.getLogger("benchmark")

COLUMNS = ("task", "attack", "targets", "failed", "psnr", "ssim", "mse", "label_accuracy", "seconds")


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Plain-text table; floats get 4 significant digits, missing values '-'."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _summary_row(result) -> dict[str, Any]:
    return {"task": result.task, "attack": result.attack, **result.summary}


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path("runs") / Path(args.task).stem / args.attack
    result = run(args.task, args.attack, targets=args.targets, seed=args.seed, max_steps=args.max_steps,
                 restarts=args.restarts, out=out, logger=None if args.logger == "none" else args.logger,
                 accelerator=args.accelerator, progress=not args.no_progress, fresh=args.fresh)
    print(format_table([_summary_row(result)], COLUMNS))
    print(f"\nresults: {out / 'results.json'}\npicture: {out / 'reconstructions.png'}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "attacks":
        rows = [{"attack": name, "description": (cls.__doc__ or "").strip().splitlines()[0]} for name, cls in ATTACKS]
        print(format_table(rows, ("attack", "description")))
    else:
        rows = []
        for name in TASKS.names():
            spec = load_task(name)
            rows.append({"task": name, "version": spec.version, "dataset": spec.data.dataset, "model": spec.victim.model,
                         "batch": spec.fl.batch_size, "labels": spec.threat.labels, "targets": spec.targets.count})
        print(format_table(rows, ("task", "version", "dataset", "model", "batch", "labels", "targets")))
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    spec = load_task(args.task)
    print(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).rstrip())
    print(f"# spec_hash: {spec_hash(spec)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    attacks = args.attacks.split(",") if args.attacks else ATTACKS.names()
    for name in attacks:
        ATTACKS.get(name)  # fail on an unknown name before any work
    out = Path(args.out) if args.out else Path("runs") / f"bench-{args.suite}"
    rows = []
    cells = [(task, attack) for task in suite.tasks for attack in attacks]
    for number, (task, attack) in enumerate(cells, 1):
        log.info("[%d/%d] %s on %s", number, len(cells), attack, task)
        try:
            result = run(task, attack, targets=suite.targets, max_steps=suite.max_steps, out=out / task / attack,
                         accelerator=args.accelerator)
        except NotApplicableError as err:
            log.info("  skipped: %s", err)
            continue
        rows.append(_summary_row(result))
        log.info("  psnr %.2f dB, label accuracy %.2f, %.1f s", result.summary["psnr"],
                 result.summary["label_accuracy"], result.summary["seconds"])
    write_atomic(out / "bench.json", json.dumps({"suite": args.suite, "rows": rows}, indent=2))
    print(format_table(rows, COLUMNS))
    print(f"\nper-cell results and pictures under {out}/<task>/<attack>/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leakbench", description="Benchmark gradient inversion attacks.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("run", help="attack the targets of one task and evaluate")
    p.add_argument("--task", required=True, help="task name (leakbench ls tasks) or YAML path")
    p.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
    p.add_argument("--targets", type=int, help="number of targets (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="attack seed (default 0)")
    p.add_argument("--max-steps", type=int, help="optimisation steps (default: the task's budget or the paper's)")
    p.add_argument("--restarts", type=int, help="attempts per target, best loss kept (default: the task's)")
    p.add_argument("--out", help="output folder (default runs/TASK/ATTACK)")
    p.add_argument("--logger", default="csv", choices=[*LOGGERS.names(), "none"])
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--fresh", action="store_true", help="discard what --out holds instead of resuming it")
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("ls", help="list attacks or tasks")
    p.add_argument("what", choices=["attacks", "tasks"])
    p.set_defaults(func=cmd_ls)

    p = commands.add_parser("spec", help="validate a task and print its resolved spec and hash")
    p.add_argument("task", help="task name or YAML path")
    p.set_defaults(func=cmd_spec)

    p = commands.add_parser("bench", help="run every attack on every task of a suite it applies to")
    p.add_argument("--suite", default="quick", help="suite name from tasks/suites.yaml (default quick)")
    p.add_argument("--attacks", help="comma-separated attack names (default: all registered)")
    p.add_argument("--out", help="output folder (default runs/bench-SUITE)")
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.set_defaults(func=cmd_bench)
    return parser


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.func(args)
    except LeakBenchError as err:
        print(f"leakbench: error: {' '.join(str(err).split())}", file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("leakbench: interrupted; finished results are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
