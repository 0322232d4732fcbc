"""The ``victim`` commands: ``train`` trains a task's victim on its training split and stores the weights
in the cache, where a spec's ``victim: {state: trained@EPOCHS}`` finds them
(:func:`benchmark.apps.training.train_victim` does the work).
"""

from __future__ import annotations

import argparse

from benchmark.cli.arguments import COUNT
from benchmark.cli.output import progress


def add_victim_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("train", help="train a task's victim on its training split and store it in the cache")
    a.add_argument("--task", required=True, help="task name (leakbench ls tasks) or YAML path")
    a.add_argument("--epochs", type=COUNT, default=1, help="passes over the training split (default 1)")
    a.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    a.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal only)")
    a.set_defaults(func=cmd_victim_train)


def cmd_victim_train(args: argparse.Namespace) -> int:
    from benchmark.apps.training import separate_test_split, train_victim
    from benchmark.pipeline.tasks import load_task

    spec = load_task(args.task)
    trained = train_victim(spec, args.epochs, accelerator=args.accelerator, progress=progress(args))
    test = (
        f"{trained.test_accuracy:.4f}"
        if trained.test_accuracy is not None
        else "not measured ("
        + ("no test split here)" if separate_test_split(spec) else "an image folder holds no separate test split)")
    )
    print(
        f"trained {spec.victim.model} of task '{spec.name}' for {trained.epochs} epoch(s) on {trained.train_images} "
        f"images; training accuracy {trained.train_accuracy:.4f}, test accuracy {test}\nweights: {trained.path}\n"
        f"sha256: {trained.sha256}\na spec uses them with  victim: {{state: trained@{trained.epochs}}}"
    )
    return 0
