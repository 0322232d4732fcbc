"""The commands that attack and evaluate: ``run`` (one attack on one task), ``rescore`` (the metrics of
finished run folders again, from their stored reconstructions) and ``bench`` (every attack on every task
of a suite it applies to), each a thin layer over :func:`benchmark.run` or
:func:`benchmark.apps.rescore.rescore` that prints the results table and the evaluation notes.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from benchmark.cli.arguments import (
    COUNT,
    SEED,
    add_evaluation_arguments,
    add_scale_arguments,
    defense_spec,
    existing_file,
)
from benchmark.cli.output import COLUMNS, describe_defense, print_evaluation, progress, summary_row
from benchmark.core.errors import LeakBenchError, NotApplicableError
from benchmark.core.tables import format_table, format_value

log = logging.getLogger("benchmark")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    from benchmark.defenses import DEFENSES
    from benchmark.pipeline.loggers import LOGGERS

    p.add_argument("--task", required=True, help="task name (leakbench ls tasks) or YAML path")
    p.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
    p.add_argument("--targets", type=COUNT, help="number of targets (default: the task's)")
    p.add_argument("--seed", type=SEED, default=0, help="attack seed (default 0)")
    p.add_argument("--max-steps", type=COUNT, help="optimisation steps (default: the task's budget or the paper's)")
    p.add_argument("--restarts", type=COUNT, help="attempts per target, best loss kept (default: the task's)")
    p.add_argument("--out", help="output folder (default runs/TASK/ATTACK)")
    p.add_argument("--logger", default="csv", choices=[*LOGGERS.names(), "none"])
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal only)")
    p.add_argument("--fresh", action="store_true", help="discard what --out holds instead of resuming it")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="recompute the targets --out holds as failed, keeping the finished ones",
    )
    p.add_argument(
        "--problems",
        type=COUNT,
        default=32,
        help="problems (targets x restarts) solved together in one batched fit (default 32); it "
        "fixes which targets share a fit, so it is part of what defines the --out folder",
    )
    p.add_argument(
        "--images-every", type=COUNT, help="log the current reconstructions every N steps (tensorboard, wandb)"
    )
    p.add_argument(
        "--defense",
        type=defense_spec,
        metavar="NAME[:KEY=VALUE,...]",
        help=f"the client's defence, replacing the task's (e.g. gaussian:sigma=1e-3; names: "
        f"{', '.join(DEFENSES.names())})",
    )
    p.add_argument(
        "--labels",
        metavar="RULE",
        help="read the labels with this label-recovery rule before the attack optimises (leakbench ls "
        "label-rules; tasks whose labels are unknown); default: the attack's own, as its paper",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile each fit's objective with torch.compile: faster steps after a one-off compilation "
        "(seconds to a minute), rounded otherwise than an eager run's, so part of what defines the --out folder",
    )
    add_scale_arguments(p)
    add_evaluation_arguments(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    from benchmark.pipeline.run import run

    out = Path(args.out) if args.out else Path("runs") / Path(args.task).stem / args.attack
    result = run(
        args.task,
        args.attack,
        targets=args.targets,
        seed=args.seed,
        max_steps=args.max_steps,
        restarts=args.restarts,
        out=out,
        logger=None if args.logger == "none" else args.logger,
        accelerator=args.accelerator,
        progress=progress(args),
        fresh=args.fresh,
        problems=args.problems,
        images_every=args.images_every,
        devices=args.devices,
        num_nodes=args.num_nodes,
        lpips_weights=args.lpips_weights,
        reid=args.reid,
        defense=args.defense,
        retry_failed=args.retry_failed,
        attack_options=None if args.labels is None else {"labels": args.labels},
        compile=args.compile,
    )
    if rank_zero_only.rank == 0:  # under torchrun or SLURM every process returns here; one reports
        print(format_table([summary_row(result)], COLUMNS))
        print_evaluation([summary_row(result)])
        if (defense := result.config.get("defense")) is not None:
            print(f"\ndefense: {describe_defense(defense)}")
        print(f"\nresults: {out / 'results.json'}\npicture: {out / 'reconstructions.png'}")
    return 0


def add_rescore_arguments(p: argparse.ArgumentParser) -> None:
    from benchmark.metrics.reid import ENCODERS

    p.add_argument("folders", nargs="+", metavar="RUN_FOLDER", help="run folders (with run.json and results.json)")
    p.add_argument("--task", help="the task's YAML, for a run of a spec that is not registered by name")
    p.add_argument(
        "--lpips-weights",
        type=existing_file,
        metavar="PATH",
        help="torchvision's AlexNet ImageNet weights for LPIPS (default: torchvision's cache)",
    )
    p.add_argument("--reid", choices=ENCODERS.names(), help="face encoder (default: the one the run recorded)")
    p.set_defaults(func=cmd_rescore)


def cmd_rescore(args: argparse.Namespace) -> int:
    from benchmark.apps.rescore import rescore

    results = [
        rescore(folder, task=args.task, lpips_weights=args.lpips_weights, reid=args.reid) for folder in args.folders
    ]
    print(format_table([summary_row(result) for result in results], COLUMNS))
    print_evaluation([summary_row(result) for result in results])
    print("\nrescored: " + ", ".join(str(Path(folder) / "results.json") for folder in args.folders))
    return 0


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="quick", help="suite name from tasks/suites.yaml (default quick)")
    p.add_argument(
        "--attacks", help="comma-separated attack names: only these of the suite's (default: all the suite runs)"
    )
    p.add_argument(
        "--problems",
        type=COUNT,
        default=32,
        help="problems solved together in one batched fit (default 32; part of what defines a run folder)",
    )
    p.add_argument("--out", help="output folder (default runs/bench-SUITE)")
    p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    p.add_argument("--retry-failed", action="store_true", help="recompute the failed targets of the cells' run folders")
    add_scale_arguments(p)
    add_evaluation_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    from benchmark.attacks import ATTACKS
    from benchmark.core.files import write_atomic
    from benchmark.pipeline.run import run
    from benchmark.protocol.loading import load_suite

    suite = load_suite(args.suite)
    chosen = args.attacks.split(",") if args.attacks else None
    cells = [
        (task, attack)
        for task in suite.tasks
        for attack in suite.attacks_of(task) or ATTACKS.names()
        if chosen is None or attack in chosen
    ]
    for name in {*(chosen or ()), *(attack for _, attack in cells)}:
        ATTACKS.get(name)  # fail on an unknown name before any work
    if not cells:
        raise LeakBenchError(f"suite '{args.suite}' runs none of {args.attacks}; see its attacks in tasks/suites.yaml")
    out = Path(args.out) if args.out else Path("runs") / f"bench-{args.suite}"
    rows = []
    for number, (task, attack) in enumerate(cells, 1):
        log.info("[%d/%d] %s on %s", number, len(cells), attack, task)
        try:
            result = run(
                task,
                attack,
                targets=suite.targets,
                max_steps_cap=suite.max_steps,
                out=out / task / attack,
                accelerator=args.accelerator,
                problems=args.problems,
                devices=args.devices,
                num_nodes=args.num_nodes,
                lpips_weights=args.lpips_weights,
                reid=args.reid,
                retry_failed=args.retry_failed,
            )
        except NotApplicableError as err:
            log.info("  skipped: %s", err)
            continue
        rows.append(summary_row(result))
        log.info(
            "  psnr %s dB, label accuracy %s, %s s, %d of %d targets failed",
            *(format_value(result.summary[key]) for key in ("psnr", "label_accuracy", "seconds")),
            result.summary["failed"],
            result.summary["targets"],
        )
    if rank_zero_only.rank == 0:  # under torchrun or SLURM every process returns here; one reports
        write_atomic(out / "bench.json", json.dumps({"suite": args.suite, "rows": rows}, indent=2))
        print(format_table(rows, COLUMNS))
        print_evaluation(rows)
        print(f"\nper-cell results and pictures under {out}/<task>/<attack>/")
    return 0
