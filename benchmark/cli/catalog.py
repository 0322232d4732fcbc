"""The commands that show what the benchmark holds: ``ls`` lists the registered attacks (with the
plugins that failed to load), the label-recovery rules, or the tasks (with whether their data is here), and ``spec`` validates a
task and prints its resolved spec and hash, or records that hash under the task's version.
"""

from __future__ import annotations

import argparse

from benchmark.core.tables import format_table


def add_ls_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["attacks", "label-rules", "tasks"])
    p.set_defaults(func=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "attacks":
        from benchmark.attacks import ATTACKS

        rows = [
            {"attack": name, "description": ((cls.__doc__ or "").strip().splitlines() or [""])[0]}
            for name, cls in ATTACKS
        ]
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
        from benchmark.data import data_available
        from benchmark.pipeline.tasks import load_task
        from benchmark.protocol.loading import TASKS
        from benchmark.protocol.spec import threat_model

        rows = []
        for name in TASKS.names():
            spec = load_task(name)
            rows.append(
                {
                    "task": name,
                    "version": spec.version,
                    "dataset": spec.data.dataset,
                    "model": spec.victim.model,
                    "batch": spec.fl.batch_size,
                    "threat": threat_model(spec),
                    "targets": spec.targets.count,
                    "data here": "yes" if data_available(spec) else "no",
                }
            )
        print(format_table(rows, ("task", "version", "dataset", "model", "batch", "threat", "targets", "data here")))
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
