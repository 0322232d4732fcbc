"""The ``perf`` command: how fast the batched engine solves K problems at once, what the Lightning loop
costs over a plain one, optionally the gain of several processes, or LeakBench timed against breaching
(:mod:`benchmark.apps.perf` measures; this prints its report as text or JSON).
"""

from __future__ import annotations

import argparse
import json

from benchmark.cli.arguments import COUNT, integers


def add_perf_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="cifar10-lenetzhu-b1")
    p.add_argument("--attack", default="inverting_gradients")
    p.add_argument("--steps", type=COUNT, default=50, help="optimisation steps per fit (default 50)")
    p.add_argument(
        "--repeats",
        type=COUNT,
        default=3,
        help="alternated timings of the Lightning and plain loops, medians reported (default 3)",
    )
    p.add_argument(
        "--processes",
        type=COUNT,
        default=1,
        help="also time 20 targets with this many processes against one (default 1: not measured)",
    )
    p.add_argument("--process-steps", type=COUNT, default=2000, help="steps of that timed run (default 2000)")
    p.add_argument("--sizes", type=integers, help="comma-separated problem counts K, one fit each (default 1,8,32)")
    p.add_argument(
        "--vs",
        choices=["breaching"],
        help="time LeakBench against breaching attacking the same problems "
        "one after another, instead (needs pip install 'leakbench[peers]')",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="with --vs breaching: LeakBench's objective compiled (torch.compile), its compilation reported apart",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_perf)


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.apps import perf

    report = perf.measure(
        perf.PerfSetting(
            task=args.task,
            attack=args.attack,
            steps=args.steps,
            repeats=args.repeats,
            processes=args.processes,
            process_steps=args.process_steps,
            vs=args.vs,
            compile=args.compile,
            **({"sizes": tuple(args.sizes)} if args.sizes else {}),
        )
    )
    print(json.dumps(report, indent=2) if args.json else perf.format_report(report))
    return 0
