"""The leaderboard commands: ``submit`` runs an attack under a suite's fixed protocols and writes its
entries, ``verify`` re-runs entries and fails when a metric moved beyond tolerance, and ``leaderboard``
renders the boards (``build``), checks the entries and boards (``check``) or writes entries from the runs
of a W&B project (``pull``); :mod:`benchmark.apps.leaderboard` does the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.arguments import COUNT, add_isolation_arguments, isolation_of
from benchmark.cli.output import COLUMNS
from benchmark.core.tables import format_table


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    from benchmark.pipeline.loggers import LOGGERS

    p.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
    p.add_argument("--suite", required=True, help="suite name from tasks/suites.yaml")
    p.add_argument("--tasks", nargs="+", help="only these tasks of the suite (default: all)")
    p.add_argument(
        "--targets", type=COUNT, help="only the first N targets, for a quick check: the entry is partial, not ranked"
    )
    p.add_argument("--root", default="leaderboards", help="leaderboard folder (default leaderboards)")
    p.add_argument("--out", default="runs", help="run folders go under OUT/submit-SUITE/TASK/ATTACK (default runs)")
    p.add_argument("--logger", default="csv", choices=[*LOGGERS.names(), "none"])
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.add_argument("--fresh", action="store_true", help="recompute the targets instead of resuming the run folders")
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="submit from a checkout with uncommitted changes: a local trial (git_dirty), which check refuses",
    )
    p.add_argument("--retry-failed", action="store_true", help="recompute the failed targets of the run folders")
    p.add_argument(
        "--allow-failed",
        action="store_true",
        help="publish entries with failed targets (counted as failed); refused by default",
    )
    add_isolation_arguments(p)
    p.set_defaults(func=cmd_submit)


def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build, load_entry, submit

    root = Path(args.root)
    paths = submit(
        args.attack,
        args.suite,
        tasks=args.tasks,
        targets=args.targets,
        root=root,
        runs=Path(args.out),
        logger=None if args.logger == "none" else args.logger,
        accelerator=args.accelerator,
        fresh=args.fresh,
        allow_dirty=args.allow_dirty,
        retry_failed=args.retry_failed,
        allow_failed=args.allow_failed,
        isolation=isolation_of(args),
    )
    entries = [load_entry(path) for path in paths]
    if not entries:
        print(f"no entries: {args.attack} applies to no task of suite {args.suite}")
        return 0
    print(
        format_table(
            [
                {
                    "task": e.task,
                    "attack": e.attack,
                    "targets": e.targets,
                    "failed": e.summary.failed,
                    **e.summary.metrics,
                    "seconds": e.summary.seconds,
                }
                for e in entries
            ],
            COLUMNS,
        )
    )
    for path, entry in zip(paths, entries):
        print(f"entry: {path}" + (" (partial: not ranked)" if entry.partial else ""))
    for board in build(root):
        print(f"board: {board}")
    return 0


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="entry files (leaderboards/SUITE/TASK/ATTACK.json)")
    p.add_argument("--targets", type=COUNT, help="re-run only the first N targets (a quick check)")
    p.add_argument("--out", default="runs", help="re-runs go under OUT/verify-SUITE/TASK/ATTACK (default runs)")
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.add_argument("--record", action="store_true", help="mark entries verified after a full re-run within tolerance")
    p.add_argument(
        "--record-spread",
        action="store_true",
        help="record how far a full re-run of the entry's own code in another environment (torch, CPU, GPU) moved each "
        "metric; verify then allows that spread",
    )
    add_isolation_arguments(p)
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build, format_verdict, load_entry, verify

    failed, isolation = 0, isolation_of(args)
    for path in map(Path, args.paths):
        verdict = verify(
            path,
            targets=args.targets,
            runs=Path(args.out),
            accelerator=args.accelerator,
            record=args.record,
            record_spread=args.record_spread,
            isolation=isolation,
        )
        print(format_verdict(verdict))
        if args.record_spread:
            spread = load_entry(path).spreads[-1]
            for label, moves in (("largest move", spread.moves), ("the summary's", spread.moves_at["summary"])):
                print(f"  spread recorded, {label}: " + ", ".join(f"{m} {v:.3g}" for m, v in sorted(moves.items())))
            build(path.parents[2])
            continue
        failed += bool(verdict.differences)
        if args.record and verdict.complete and not verdict.differences:
            build(path.parents[2])
    return 1 if failed else 0


def add_leaderboard_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("build", help="render README.md and site/index.html from the entries")
    a.set_defaults(func=cmd_leaderboard_build)
    a = actions.add_parser(
        "check", help="fail when an entry is invalid, untraceable or unverified, or the boards are stale"
    )
    a.set_defaults(func=cmd_leaderboard_check)
    a = actions.add_parser("pull", help="write entries from the runs of a W&B project")
    a.add_argument("--wandb", required=True, metavar="ENTITY/PROJECT", help="the W&B project")
    a.add_argument("--suite", required=True, help="the suite whose protocols the runs must follow")
    a.add_argument("--replace", action="store_true", help="overwrite existing entries")
    a.set_defaults(func=cmd_leaderboard_pull)
    for a in actions.choices.values():
        a.add_argument("--root", default="leaderboards", help="leaderboard folder (default leaderboards)")


def cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build

    for path in build(Path(args.root)):
        print(f"wrote {path}")
    return 0


def cmd_leaderboard_check(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import check

    problems = check(Path(args.root))
    for problem in problems:
        print(f"leakbench: check: {' '.join(problem.split())}", file=sys.stderr)
    if not problems:
        print(f"{args.root}: every entry valid, boards up to date")
    return 1 if problems else 0


def cmd_leaderboard_pull(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build, pull

    root = Path(args.root)
    paths = pull(args.wandb, args.suite, root=root, replace=args.replace)
    for path in paths:
        print(f"entry: {path}")
    if paths:
        build(root)
    print(f"{len(paths)} entr{'y' if len(paths) == 1 else 'ies'} pulled from W&B project {args.wandb}")
    return 0
