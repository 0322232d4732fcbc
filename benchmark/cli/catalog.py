"""The commands that show what the benchmark holds: ``ls`` lists the registered attacks (with the
plugins that failed to load), the label-recovery rules, or the tasks (``--data``: with whether their
data is here), and ``spec`` validates a task and prints its resolved spec and hash, or records that
hash under the task's version. ``ls attacks`` and ``ls tasks`` read sources and specs without importing
torch, so they answer in a fraction of a second (docs/performance.md, "Start-up time").
"""

from __future__ import annotations

import argparse

from benchmark.core.errors import SettingError, first_line
from benchmark.core.tables import format_table


def add_ls_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["attacks", "label-rules", "tasks"])
    p.add_argument(
        "--data",
        action="store_true",
        help="tasks: also say whether each task's images are here (reads them, so it takes seconds)",
    )
    p.set_defaults(func=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    if args.data and args.what != "tasks":
        raise SettingError(f"--data says whether tasks' images are here; `ls {args.what}` takes no --data")
    if args.what == "attacks":
        from benchmark.attacks import ATTACKS, builtin_summaries

        rows = [{"attack": name, "description": summary} for name, summary in builtin_summaries().items()]
        if ATTACKS.entry_points():  # plugins are imported to list them: whether one loads is only known so
            rows += [{"attack": name, "description": first_line(cls.__doc__ or "")} for name, cls in ATTACKS.plugins()]
            rows += [{"attack": name, "description": f"BROKEN: {why}"} for name, why in ATTACKS.broken().items()]
        rows.sort(key=lambda row: row["attack"])
        print(format_table(rows, ("attack", "description")))
    elif args.what == "label-rules":
        from benchmark.attacks.labels import LABEL_RULES

        rows = [
            {
                "rule": name,
                "reads": ", ".join(rule.protocols),
                "description": ((rule.__doc__ or "").strip().splitlines() or [""])[0],
            }
            for name, rule in LABEL_RULES
        ]
        rows += [
            {"rule": name, "reads": "", "description": f"BROKEN: {why}"} for name, why in LABEL_RULES.broken().items()
        ]
        print(format_table(sorted(rows, key=lambda row: row["rule"]), ("rule", "reads", "description")))
    else:
        from benchmark.protocol.loading import TASKS, load_spec
        from benchmark.protocol.spec import threat_model

        columns = ["task", "version", "dataset", "model", "batch", "threat", "targets"]
        rows = []
        for name in TASKS.names():
            spec = load_spec(name)
            rows.append(
                {
                    "task": name,
                    "version": spec.version,
                    "dataset": spec.data.dataset,
                    "model": spec.victim.model,
                    "batch": spec.fl.batch_size,
                    "threat": threat_model(spec),
                    "targets": spec.targets.count,
                }
            )
        if args.data:  # reads each task's first and last target: the data loaders and torch
            from benchmark.data import data_available
            from benchmark.pipeline.tasks import load_task

            columns.append("data here")
            for row in rows:
                row["data here"] = "yes" if data_available(load_task(row["task"])) else "no"
        print(format_table(rows, columns))
    return 0


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help="task name or YAML path")
    p.add_argument(
        "--record",
        action="store_true",
        help="record the spec's hash under its version in tasks/versions.json (after a version bump)",
    )
    p.set_defaults(func=cmd_spec)


def cmd_spec(args: argparse.Namespace) -> int:
    import yaml

    from benchmark.pipeline.tasks import load_task
    from benchmark.protocol.loading import record_version, spec_hash

    spec = load_task(args.task)
    if args.record:
        print(f"recorded {spec.name} version {spec.version} in {record_version(spec)}")
        return 0
    print(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).rstrip())
    print(f"# spec_hash: {spec_hash(spec)}")
    return 0
