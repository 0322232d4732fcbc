"""The ``study`` commands: how attacks fare across one protocol setting, each a grid of runs that
:mod:`benchmark.apps.study` resumes, tabulates and plots: ``batch-size`` (success rate against batch size
over a task family), ``defense`` (attack metrics and the victim's utility across a defence's strengths),
``training`` (attack metrics against the victim's training epochs) and ``labels`` (every label-recovery
rule's accuracy against the batch size, :mod:`benchmark.apps.label_study`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.arguments import COUNT, add_cell_arguments, defense_spec, floats, integers
from benchmark.cli.output import progress, study_row
from benchmark.core.tables import format_table


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    from benchmark.apps.study import CRITERIA, DEFAULT_CRITERIA
    from benchmark.apps.utility import UtilitySetting

    studies = p.add_subparsers(dest="study", required=True)
    a = studies.add_parser("batch-size", help="success rate against batch size over a task family (GRNN's Table 3)")
    a.add_argument("--attacks", required=True, help="comma-separated attack names, e.g. grnn,dlg")
    a.add_argument(
        "--task-family", required=True, help="tasks FAMILY-bB, e.g. mnist-lenet5 (mnist-lenet5-b1, -b4, ...)"
    )
    a.add_argument(
        "--batch-sizes", type=integers, help="comma-separated subset of the family's batch sizes (default: all)"
    )
    a.add_argument(
        "--criteria",
        default=",".join(DEFAULT_CRITERIA),
        help=f"comma-separated success criteria, the first plotted: {', '.join(CRITERIA.names())} "
        f"(default {','.join(DEFAULT_CRITERIA)})",
    )
    a.add_argument(
        "--seeds", type=integers, default=[0], help="comma-separated attack seeds, one run per seed (default 0)"
    )
    add_cell_arguments(a, "runs/study-batch-size-FAMILY", seed=False)
    a.set_defaults(func=cmd_study_batch_size)
    a = studies.add_parser("defense", help="attack metrics and the victim's utility across a defence's strengths")
    a.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
    a.add_argument("--task", required=True, help="task name or YAML path")
    a.add_argument(
        "--defense",
        required=True,
        type=defense_spec,
        metavar="NAME[:KEY=VALUE,...]",
        help="the defence, with any parameters held fixed (e.g. dpsgd:max_grad_norm=0.5)",
    )
    a.add_argument(
        "--strengths",
        required=True,
        type=floats,
        help="comma-separated values of the defence's strength parameter, e.g. 0,1e-3,1e-2",
    )
    a.add_argument(
        "--utility-steps",
        type=COUNT,
        default=UtilitySetting.steps,
        help=f"defended SGD steps of the utility training run (default {UtilitySetting.steps})",
    )
    a.add_argument(
        "--utility-train-images",
        type=COUNT,
        default=UtilitySetting.train_images,
        help=f"training images it samples from (default {UtilitySetting.train_images})",
    )
    a.add_argument(
        "--utility-test-images",
        type=COUNT,
        default=UtilitySetting.test_images,
        help=f"test images of its accuracy (default {UtilitySetting.test_images})",
    )
    add_cell_arguments(a, "runs/study-defense-TASK-ATTACK-DEFENSE")
    a.set_defaults(func=cmd_study_defense)
    a = studies.add_parser(
        "training", help="attack metrics against the victim's training epochs, with its test accuracy"
    )
    a.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
    a.add_argument("--task", required=True, help="task name or YAML path")
    a.add_argument(
        "--epochs",
        type=integers,
        default=[0, 1, 2, 5],
        help="comma-separated training epochs, 0 for the untrained victim (default 0,1,2,5)",
    )
    add_cell_arguments(a, "runs/study-training-TASK-ATTACK")
    a.set_defaults(func=cmd_study_training)
    a = studies.add_parser("labels", help="every label-recovery rule's accuracy against the batch size")
    a.add_argument(
        "--task-family", required=True, help="a task family FAMILY-bB, e.g. mnist-lenet5: its protocol at every size"
    )
    a.add_argument("--rules", help="comma-separated label rules (leakbench ls label-rules; default: all)")
    a.add_argument(
        "--batch-sizes", type=integers, default=[1, 4, 8, 16], help="comma-separated batch sizes (default 1,4,8,16)"
    )
    a.add_argument("--targets", type=COUNT, help="targets per batch size (default: the task's, or what the data holds)")
    a.add_argument("--out", help="output folder (default runs/study-labels-FAMILY)")
    a.add_argument(
        "--record",
        metavar="ROOT",
        nargs="?",
        const="leaderboards",
        help="also write the label board ROOT/labels/FAMILY.json (default root leaderboards), from a clean commit",
    )
    a.set_defaults(func=cmd_study_labels)


def cmd_study_batch_size(args: argparse.Namespace) -> int:
    from benchmark.apps.study import batch_size_study

    out = Path(args.out) if args.out else Path("runs") / f"study-batch-size-{args.task_family}"
    study = batch_size_study(
        args.task_family,
        args.attacks.split(","),
        batch_sizes=args.batch_sizes,
        criteria=args.criteria.split(","),
        seeds=args.seeds,
        out=out,
        targets=args.targets,
        max_steps=args.max_steps,
        accelerator=args.accelerator,
        progress=progress(args),
    )
    print(f"{args.task_family}, seeds {', '.join(map(str, study.seeds))}; an image counts as recovered at")
    for criterion in study.criteria:
        print(f"  {criterion.name}: {criterion.describe()} ({criterion.source})")
    print("success rates in %, mean [min-max] over the seeds\n")
    rows = sorted(study.summary(), key=lambda row: (row["batch_size"], row["attack"]))
    print(
        format_table(
            [study_row(row, study.criteria) for row in rows],
            (
                "batch_size",
                "attack",
                "seeds",
                "images",
                *(c.name for c in study.criteria),
                "psnr",
                "ssim",
                "label_accuracy",
                "note",
            ),
        )
    )
    for criterion in study.criteria:
        largest = study.as_dict()["largest_batch_recovered"][criterion.name]
        print(
            f"\nlargest batch size with at least half of the images recovered ({criterion.name}): "
            + ", ".join(f"{attack} {size if size is not None else 'none'}" for attack, size in largest.items())
        )
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'success-rate.png'}")
    return 0


def cmd_study_defense(args: argparse.Namespace) -> int:
    from benchmark.apps.study import defense_study
    from benchmark.apps.utility import UtilitySetting

    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"study-defense-{Path(args.task).stem}-{args.attack}-{args.defense.name}"
    )
    setting = UtilitySetting(
        steps=args.utility_steps, train_images=args.utility_train_images, test_images=args.utility_test_images
    )
    study = defense_study(
        args.task,
        args.attack,
        args.defense,
        args.strengths,
        out=out,
        targets=args.targets,
        max_steps=args.max_steps,
        seed=args.seed,
        utility=setting,
        accelerator=args.accelerator,
        progress=progress(args),
    )
    rows = [
        {
            **vars(cell),
            "utility": None if cell.utility is None else 100 * cell.utility,
            "epsilon": (cell.defense.get("privacy") or {}).get("epsilon"),
            "note": "; ".join(
                f"{what} unavailable: {why.split(':')[0]}"
                for what, why in (("attack", cell.unavailable), ("utility", cell.utility_unavailable))
                if why
            ),
        }
        for cell in study.cells
    ]
    used = study.utility_setting
    print(
        f"{study.attack} on {study.task} under {study.defense}, varying {study.strength}; utility: test accuracy (%) "
        f"on {used['test_images']} test images after {used['steps']} defended SGD steps on {used['train_images']} "
        f"training images\n"
    )
    columns = ("strength", "targets", "failed", "psnr", "ssim", "mse", "label_accuracy", "utility")
    print(
        format_table(rows, columns + (("epsilon",) if any(r["epsilon"] is not None for r in rows) else ()) + ("note",))
    )
    reasons = dict.fromkeys(cell.utility_unavailable for cell in study.cells if cell.utility_unavailable)
    for reason in reasons:
        print(f"\nutility unavailable: {reason}")
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'privacy-utility.png'}")
    return 0


def cmd_study_training(args: argparse.Namespace) -> int:
    from benchmark.apps.study import training_study

    out = Path(args.out) if args.out else Path("runs") / f"study-training-{Path(args.task).stem}-{args.attack}"
    study = training_study(
        args.task,
        args.attack,
        args.epochs,
        out=out,
        targets=args.targets,
        max_steps=args.max_steps,
        seed=args.seed,
        accelerator=args.accelerator,
        progress=progress(args),
    )
    rows = [
        {
            **vars(cell),
            "test_accuracy": None if cell.test_accuracy is None else 100 * cell.test_accuracy,
            "note": "unavailable: " + cell.unavailable.split(":")[0] if cell.unavailable else "",
        }
        for cell in study.cells
    ]
    print(
        f"{study.attack} on {study.task}, the victim untrained and trained for E epochs (SGD, batch "
        f"{study.training['batch_size']}, lr {study.training['lr']:g}, momentum {study.training['momentum']:g}); "
        f"test accuracy (%) on the whole test split\n"
    )
    print(
        format_table(
            rows, ("epochs", "test_accuracy", "targets", "failed", "psnr", "ssim", "mse", "label_accuracy", "note")
        )
    )
    for reason in dict.fromkeys(cell.unavailable for cell in study.cells if cell.unavailable):
        print(f"\nunavailable: {reason}")
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'leakage-training.png'}")
    return 0


def cmd_study_labels(args: argparse.Namespace) -> int:
    import shlex

    from benchmark.apps.label_study import PAPER_ACCURACY, label_study
    from benchmark.apps.leaderboard import build
    from benchmark.apps.leaderboard.labels import record, require_clean_tree

    commit = require_clean_tree(Path(args.record)) if args.record else None  # before any work
    out = Path(args.out) if args.out else Path("runs") / f"study-labels-{args.task_family}"
    study = label_study(
        args.task_family,
        rules=args.rules.split(",") if args.rules else None,
        batch_sizes=args.batch_sizes,
        targets=args.targets,
        out=out,
    )
    print(f"label rules on {study.task}'s protocol (labels unknown to the server); accuracy: multiset, in %\n")
    rows = [
        {
            "batch_size": c.batch_size,
            "rule": c.rule,
            "targets": c.targets,
            "repeated": c.repeated,
            "accuracy": None if c.accuracy is None else f"{100 * c.accuracy:.1f}",
            "exact": None if c.exact is None else f"{100 * c.exact:.0f}",
            "seconds": None if c.seconds is None else f"{c.seconds:.3f}",
            "note": c.unavailable.split(": ", 1)[-1]
            if c.unavailable
            else PAPER_ACCURACY.get((c.rule, c.batch_size), ""),
        }
        for c in sorted(study.cells, key=lambda c: (c.batch_size, c.rule))
    ]
    print(format_table(rows, ("batch_size", "rule", "targets", "repeated", "accuracy", "exact", "seconds", "note")))
    print("\nrepeated: targets whose labels repeat a class; exact: % of targets whose label multiset is recovered")
    print("as their papers report: " + "; ".join(f"{rule} {text}" for rule, text in PAPER_ACCURACY.items()))
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'label-accuracy.png'}")
    if commit is not None:
        command = shlex.join(
            ["leakbench", "study", "labels", "--task-family", args.task_family]
            + (["--rules", args.rules] if args.rules else [])
            + ["--batch-sizes", ",".join(map(str, args.batch_sizes))]
            + (["--targets", str(args.targets)] if args.targets else [])
        )
        path = record(study, Path(args.record), command, commit)
        build(Path(args.record))
        print(f"label board: {path} (boards rebuilt)")
    return 0
