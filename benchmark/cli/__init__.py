"""The ``leakbench`` command: a thin layer over :func:`benchmark.run` and the registries.

Torch, Lightning and what imports them are imported inside the commands (and inside the arguments of
the command that is asked for, :func:`build_parser`), so ``leakbench --help`` starts in a fraction of
a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

if TYPE_CHECKING:
    from benchmark.protocol.spec import DefenseSpec

from benchmark.core.errors import LeakBenchError, NotApplicableError, SettingError, integer_problem
from benchmark.core.registry import did_you_mean
from benchmark.core.tables import format_table, format_value
from benchmark.pipeline.sandbox import MEMORY_LIMIT, TIME_LIMIT

log = logging.getLogger("benchmark")

COLUMNS = ("task", "attack", "targets", "failed", "psnr", "ssim", "mse", "lpips", "label_accuracy", "seconds")
REID_ROWS = (("reconstructions", ""), ("originals (ceiling)", "_ceiling"), ("noise images (chance)", "_chance"))


def _summary_row(result) -> dict[str, Any]:
    return {"task": result.task, "attack": result.attack, **result.summary}


def _print_evaluation(summaries: list[dict[str, Any]]) -> None:
    """Face re-identification beside its ceiling and chance, each unavailable metric's reason once,
    and the targets that failed with their reasons."""
    for summary in summaries:
        if summary.get("reid_backend") is None:
            continue
        aligned = summary.get("reid_aligned")
        print(f"\nface re-identification, {summary['task']} / {summary['attack']}: {summary['reid_backend']} encoder, "
              f"gallery of {summary['reid_gallery']}"
              + (f"; MTCNN found a face in {aligned:.0%} of the reconstructions" if aligned is not None else ""))
        rows = [{"images": what, "top-1": summary.get(f"reid_top1{suffix}"), "top-5": summary.get(f"reid_top5{suffix}")}
                for what, suffix in REID_ROWS]
        print(format_table(rows, ("images", "top-1", "top-5")))
    reasons = {name: reason for summary in summaries for name, reason in summary.get("unavailable", {}).items()}
    for name, reason in reasons.items():
        print(f"\n{name} unavailable: {reason}")
    failures = [(summary, reason, targets) for summary in summaries for reason, targets in summary.get("failures", {}).items()]
    for summary, reason, targets in failures:
        print(f"\n{summary['task']} / {summary['attack']}: target(s) {', '.join(map(str, targets))} failed: {reason}")
    if failures:
        print("(failed targets are counted, never averaged in; --retry-failed recomputes them)")


def _progress(args: argparse.Namespace) -> bool:
    """Lightning's progress bar: on a terminal only (piped or redirected output gets none), unless --no-progress."""
    return not args.no_progress and sys.stdout.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    from benchmark.pipeline.run import run

    out = Path(args.out) if args.out else Path("runs") / Path(args.task).stem / args.attack
    result = run(args.task, args.attack, targets=args.targets, seed=args.seed, max_steps=args.max_steps,
                 restarts=args.restarts, out=out, logger=None if args.logger == "none" else args.logger,
                 accelerator=args.accelerator, progress=_progress(args), fresh=args.fresh, problems=args.problems,
                 images_every=args.images_every, devices=args.devices, num_nodes=args.num_nodes,
                 lpips_weights=args.lpips_weights, reid=args.reid, defense=args.defense,
                 retry_failed=args.retry_failed)
    if rank_zero_only.rank == 0:  # under torchrun or SLURM every process returns here; one reports
        print(format_table([_summary_row(result)], COLUMNS))
        _print_evaluation([_summary_row(result)])
        if (defense := result.config.get("defense")) is not None:
            print(f"\ndefense: {_describe_defense(defense)}")
        print(f"\nresults: {out / 'results.json'}\npicture: {out / 'reconstructions.png'}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from benchmark.attacks import ATTACKS

    if args.what == "attacks":
        rows = [{"attack": name, "description": ((cls.__doc__ or "").strip().splitlines() or [""])[0]}
                for name, cls in ATTACKS]
        rows += [{"attack": name, "description": f"BROKEN: {why}"} for name, why in ATTACKS.broken().items()]
        rows.sort(key=lambda row: row["attack"])
        print(format_table(rows, ("attack", "description")))
    else:
        from benchmark.pipeline.prepare import data_available
        from benchmark.pipeline.tasks import load_task
        from benchmark.protocol.loading import TASKS
        from benchmark.protocol.spec import threat_model

        rows = []
        for name in TASKS.names():
            spec = load_task(name)
            rows.append({"task": name, "version": spec.version, "dataset": spec.data.dataset, "model": spec.victim.model,
                         "batch": spec.fl.batch_size, "threat": threat_model(spec), "targets": spec.targets.count,
                         "data here": "yes" if data_available(spec) else "no"})
        print(format_table(rows, ("task", "version", "dataset", "model", "batch", "threat", "targets", "data here")))
    return 0


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


def cmd_rescore(args: argparse.Namespace) -> int:
    from benchmark.apps.rescore import rescore

    results = [rescore(folder, task=args.task, lpips_weights=args.lpips_weights, reid=args.reid) for folder in args.folders]
    print(format_table([_summary_row(result) for result in results], COLUMNS))
    _print_evaluation([_summary_row(result) for result in results])
    print("\nrescored: " + ", ".join(str(Path(folder) / "results.json") for folder in args.folders))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.apps import perf

    report = perf.measure(perf.PerfSetting(task=args.task, attack=args.attack, steps=args.steps, repeats=args.repeats,
                                           processes=args.processes, process_steps=args.process_steps,
                                           vs=args.vs, **({"sizes": tuple(args.sizes)} if args.sizes else {})))
    print(json.dumps(report, indent=2) if args.json else perf.format_report(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    from benchmark.attacks import ATTACKS
    from benchmark.core.files import write_atomic
    from benchmark.pipeline.run import run
    from benchmark.protocol.loading import load_suite

    suite = load_suite(args.suite)
    chosen = args.attacks.split(",") if args.attacks else None
    cells = [(task, attack) for task in suite.tasks for attack in suite.attacks_of(task) or ATTACKS.names()
             if chosen is None or attack in chosen]
    for name in {*(chosen or ()), *(attack for _, attack in cells)}:
        ATTACKS.get(name)  # fail on an unknown name before any work
    if not cells:
        raise LeakBenchError(f"suite '{args.suite}' runs none of {args.attacks}; see its attacks in tasks/suites.yaml")
    out = Path(args.out) if args.out else Path("runs") / f"bench-{args.suite}"
    rows = []
    for number, (task, attack) in enumerate(cells, 1):
        log.info("[%d/%d] %s on %s", number, len(cells), attack, task)
        try:
            result = run(task, attack, targets=suite.targets, max_steps_cap=suite.max_steps, out=out / task / attack,
                         accelerator=args.accelerator, problems=args.problems, devices=args.devices,
                         num_nodes=args.num_nodes, lpips_weights=args.lpips_weights, reid=args.reid,
                         retry_failed=args.retry_failed)
        except NotApplicableError as err:
            log.info("  skipped: %s", err)
            continue
        rows.append(_summary_row(result))
        log.info("  psnr %s dB, label accuracy %s, %s s, %d of %d targets failed",
                 *(format_value(result.summary[key]) for key in ("psnr", "label_accuracy", "seconds")),
                 result.summary["failed"], result.summary["targets"])
    if rank_zero_only.rank == 0:  # under torchrun or SLURM every process returns here; one reports
        write_atomic(out / "bench.json", json.dumps({"suite": args.suite, "rows": rows}, indent=2))
        print(format_table(rows, COLUMNS))
        _print_evaluation(rows)
        print(f"\nper-cell results and pictures under {out}/<task>/<attack>/")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build, load_entry, submit

    root = Path(args.root)
    paths = submit(args.attack, args.suite, tasks=args.tasks, targets=args.targets, root=root, runs=Path(args.out),
                   logger=None if args.logger == "none" else args.logger, accelerator=args.accelerator,
                   fresh=args.fresh, allow_dirty=args.allow_dirty, retry_failed=args.retry_failed,
                   allow_failed=args.allow_failed, isolation=_isolation(args))
    entries = [load_entry(path) for path in paths]
    if not entries:
        print(f"no entries: {args.attack} applies to no task of suite {args.suite}")
        return 0
    print(format_table([{"task": e.task, "attack": e.attack, "targets": e.targets, "failed": e.summary.failed,
                         **e.summary.metrics, "seconds": e.summary.seconds} for e in entries], COLUMNS))
    for path, entry in zip(paths, entries):
        print(f"entry: {path}" + (" (partial: not ranked)" if entry.partial else ""))
    for board in build(root):
        print(f"board: {board}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.apps.leaderboard import build, format_verdict, verify

    failed, isolation = 0, _isolation(args)
    for path in map(Path, args.paths):
        verdict = verify(path, targets=args.targets, runs=Path(args.out), accelerator=args.accelerator,
                         record=args.record, isolation=isolation)
        print(format_verdict(verdict))
        failed += bool(verdict.differences)
        if args.record and verdict.complete and not verdict.differences:
            build(path.parents[2])
    return 1 if failed else 0


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


def cmd_analyze(args: argparse.Namespace) -> int:
    from benchmark.apps.analysis import analyze_model
    from benchmark.attacks.components.rank import recoverable_by_rgap

    try:
        shape = tuple(int(part) for part in args.input_shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or shape[1] != shape[2] or min(shape) < 1:
        raise LeakBenchError(f"--input-shape '{args.input_shape}' is not C,H,W with H = W (square images); "
                             "give e.g. 3,32,32")
    rows = analyze_model(args.model, shape, args.num_classes, seed=args.seed)
    recoverable = recoverable_by_rgap(rows)
    if args.json:
        print(json.dumps({"model": args.model, "input_shape": list(shape), "num_classes": args.num_classes,
                          "seed": args.seed, "layers": [row.as_dict() for row in rows],
                          "rgap_recovers_input": recoverable}, indent=2))
        return 0
    table = [row.as_dict() | {"input": "x".join(map(str, row.input_shape))} for row in rows]
    print(format_table(table, ("layer", "kind", "input", "unknowns", "weight_constraints", "gradient_constraints",
                               "virtual_constraints", "rank", "deficiency", "ra_i", "verdict")))
    print(f"\nR-GAP recovers the input: {'yes' if recoverable else 'no'} (rank analysis at one random "
          f"{args.input_shape} input, seed {args.seed}; RA-I = deficiency - virtual constraints)")
    return 0


def cmd_victim_train(args: argparse.Namespace) -> int:
    from benchmark.apps.training import separate_test_split, train_victim
    from benchmark.pipeline.tasks import load_task

    spec = load_task(args.task)
    trained = train_victim(spec, args.epochs, accelerator=args.accelerator, progress=_progress(args))
    test = (f"{trained.test_accuracy:.4f}" if trained.test_accuracy is not None else
            "not measured (" + ("no test split here)" if separate_test_split(spec) else
                                "an image folder holds no separate test split)"))
    print(f"trained {spec.victim.model} of task '{spec.name}' for {trained.epochs} epoch(s) on {trained.train_images} "
          f"images; training accuracy {trained.train_accuracy:.4f}, test accuracy {test}\nweights: {trained.path}\n"
          f"sha256: {trained.sha256}\na spec uses them with  victim: {{state: trained@{trained.epochs}}}")
    return 0


def cmd_study_batch_size(args: argparse.Namespace) -> int:
    from benchmark.apps.study import batch_size_study

    out = Path(args.out) if args.out else Path("runs") / f"study-batch-size-{args.task_family}"
    study = batch_size_study(args.task_family, args.attacks.split(","), batch_sizes=args.batch_sizes,
                             criteria=args.criteria.split(","), seeds=args.seeds, out=out, targets=args.targets,
                             max_steps=args.max_steps, accelerator=args.accelerator, progress=_progress(args))
    print(f"{args.task_family}, seeds {', '.join(map(str, study.seeds))}; an image counts as recovered at")
    for criterion in study.criteria:
        print(f"  {criterion.name}: {criterion.describe()} ({criterion.source})")
    print("success rates in %, mean [min-max] over the seeds\n")
    rows = sorted(study.summary(), key=lambda row: (row["batch_size"], row["attack"]))
    print(format_table([_study_row(row, study.criteria) for row in rows],
                       ("batch_size", "attack", "seeds", "images", *(c.name for c in study.criteria), "psnr", "ssim",
                        "label_accuracy", "note")))
    for criterion in study.criteria:
        largest = study.as_dict()["largest_batch_recovered"][criterion.name]
        print(f"\nlargest batch size with at least half of the images recovered ({criterion.name}): "
              + ", ".join(f"{attack} {size if size is not None else 'none'}" for attack, size in largest.items()))
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'success-rate.png'}")
    return 0


def _study_row(row: dict[str, Any], criteria) -> dict[str, Any]:
    def spread(values: dict[str, float | None], scale: float = 1.0, digits: int = 3) -> str | None:
        if values["mean"] is None:
            return None
        mean, low, high = (f"{scale * values[k]:.{digits}g}" for k in ("mean", "min", "max"))
        return mean if low == high else f"{mean} [{low}-{high}]"

    return {"batch_size": row["batch_size"], "attack": row["attack"], "seeds": row["seeds"], "images": row["images"],
            **{c.name: spread(row[c.name], 100) for c in criteria}, "psnr": spread(row["psnr"], digits=4),
            "ssim": spread(row["ssim"]), "label_accuracy": spread(row["label_accuracy"], 100),
            "note": "unavailable: " + row["unavailable"].split(":")[0] if row["unavailable"] else ""}


def _describe_defense(record: dict[str, Any]) -> str:
    params = ", ".join(f"{key}={value}" for key, value in record["params"].items())
    privacy = record.get("privacy")
    guarantee = f"; ({privacy['epsilon']:.4g}, {privacy['delta']:g})-DP for the attacked round" if privacy else ""
    return f"{record['name']}({params}){guarantee}"


def cmd_study_defense(args: argparse.Namespace) -> int:
    from benchmark.apps.study import defense_study
    from benchmark.apps.utility import UtilitySetting

    out = Path(args.out) if args.out else Path("runs") / f"study-defense-{Path(args.task).stem}-{args.attack}-{args.defense.name}"
    setting = UtilitySetting(steps=args.utility_steps, train_images=args.utility_train_images,
                             test_images=args.utility_test_images)
    study = defense_study(args.task, args.attack, args.defense, args.strengths, out=out, targets=args.targets,
                          max_steps=args.max_steps, seed=args.seed, utility=setting, accelerator=args.accelerator,
                          progress=_progress(args))
    rows = [{**vars(cell), "utility": None if cell.utility is None else 100 * cell.utility,
             "epsilon": (cell.defense.get("privacy") or {}).get("epsilon"),
             "note": "; ".join(f"{what} unavailable: {why.split(':')[0]}" for what, why in
                               (("attack", cell.unavailable), ("utility", cell.utility_unavailable)) if why)}
            for cell in study.cells]
    used = study.utility_setting
    print(f"{study.attack} on {study.task} under {study.defense}, varying {study.strength}; utility: test accuracy (%) "
          f"on {used['test_images']} test images after {used['steps']} defended SGD steps on {used['train_images']} "
          f"training images\n")
    columns = ("strength", "targets", "failed", "psnr", "ssim", "mse", "label_accuracy", "utility")
    print(format_table(rows, columns + (("epsilon",) if any(r["epsilon"] is not None for r in rows) else ()) + ("note",)))
    reasons = dict.fromkeys(cell.utility_unavailable for cell in study.cells if cell.utility_unavailable)
    for reason in reasons:
        print(f"\nutility unavailable: {reason}")
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'privacy-utility.png'}")
    return 0


def cmd_study_training(args: argparse.Namespace) -> int:
    from benchmark.apps.study import training_study

    out = Path(args.out) if args.out else Path("runs") / f"study-training-{Path(args.task).stem}-{args.attack}"
    study = training_study(args.task, args.attack, args.epochs, out=out, targets=args.targets, max_steps=args.max_steps,
                           seed=args.seed, accelerator=args.accelerator, progress=_progress(args))
    rows = [{**vars(cell), "test_accuracy": None if cell.test_accuracy is None else 100 * cell.test_accuracy,
             "note": "unavailable: " + cell.unavailable.split(":")[0] if cell.unavailable else ""}
            for cell in study.cells]
    print(f"{study.attack} on {study.task}, the victim untrained and trained for E epochs (SGD, batch "
          f"{study.training['batch_size']}, lr {study.training['lr']:g}, momentum {study.training['momentum']:g}); "
          f"test accuracy (%) on the whole test split\n")
    print(format_table(rows, ("epochs", "test_accuracy", "targets", "failed", "psnr", "ssim", "mse", "label_accuracy",
                              "note")))
    for reason in dict.fromkeys(cell.unavailable for cell in study.cells if cell.unavailable):
        print(f"\nunavailable: {reason}")
    print(f"\ntable: {out / 'study.json'}\nplot: {out / 'leakage-training.png'}")
    return 0


def _parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _defense(text: str) -> DefenseSpec:
    """NAME or NAME:key=value[,key=value...] → a checked defence spec."""
    from benchmark.defenses import build_defense
    from benchmark.protocol.spec import DefenseSpec

    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected NAME or NAME:key=value[,key=value], e.g. gaussian:sigma=1e-3, "
                                             f"got {text!r}")
        params[key.strip()] = _parse_value(value.strip())
    spec = DefenseSpec(name=name.strip(), params=params)
    try:
        build_defense(spec)
    except LeakBenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0,1e-3,1e-2, got {text!r}") from None


def _integers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,4,8, got {text!r}") from None


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, refused as :func:`benchmark.run` refuses it."""

    def parse(text: str) -> int:
        value = _parse_value(text)
        if (problem := integer_problem(value, minimum)) is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


COUNT, SEED = _whole(1), _whole(0)


def _add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=COUNT, default=1,
                        help="processes (one per device) that share the targets; needs --out on a shared disk (default 1)")
    parser.add_argument("--num-nodes", type=COUNT, default=1, help="machines, launched by torchrun or SLURM (default 1)")


def _gib(text: str) -> float:
    """An argparse type: a memory size in GiB, at least 2 (what torch needs to start)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 2:
        raise argparse.ArgumentTypeError(f"must be a number of GiB >= 2, got {text!r}")
    return value


def _add_isolation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isolated", action="store_true",
                        help="run the attack in a sandbox: no network, no files but the Python installation, "
                             "leakbench and its own package, only its fit folder writable (docs/trust.md)")
    parser.add_argument("--time-limit", type=COUNT, metavar="SECONDS",
                        help=f"with --isolated: wall-clock limit of each fit (default {TIME_LIMIT})")
    parser.add_argument("--memory-limit", type=_gib, metavar="GIB",
                        help=f"with --isolated: memory limit of each fit (default {MEMORY_LIMIT:g})")


def _isolation(args: argparse.Namespace):
    """The sandbox ``--isolated`` asks for, with its limits (a :class:`benchmark.isolation.Isolation`), or None."""
    from benchmark.pipeline.isolation import Isolation

    limits = {name: value for name in ("time_limit", "memory_limit") if (value := getattr(args, name)) is not None}
    if not args.isolated:
        if limits:
            raise SettingError("--time-limit and --memory-limit limit an isolated attack: add --isolated, or leave "
                               "them out")
        return None
    return Isolation(**limits)


def _existing_file(text: str) -> Path:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return Path(text)


def _add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.metrics.reid import ENCODERS

    parser.add_argument("--lpips-weights", type=_existing_file, metavar="PATH",
                        help="torchvision's AlexNet ImageNet weights for LPIPS (default: torchvision's cache)")
    parser.add_argument("--reid", default="auto", choices=["auto", *ENCODERS.names()],
                        help="face encoder of the re-identification metric (default auto: facenet where its "
                             "weights are present, else dlib)")


def _add_study_arguments(parser: argparse.ArgumentParser, out: str, seed: bool = True) -> None:
    parser.add_argument("--targets", type=COUNT, help="targets per cell (default: each task's)")
    parser.add_argument("--max-steps", type=COUNT, help="optimisation steps (default: the task's budget or the paper's)")
    if seed:
        parser.add_argument("--seed", type=SEED, default=0, help="attack seed (default 0)")
    parser.add_argument("--out", help=f"output folder (default {out})")
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (shown on a terminal only)")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``leakbench: error: ...`` with a pointer to ``--help``, exit 2;
    an unknown choice gets "did you mean"."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        if choice := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
            message += did_you_mean(choice[1], [c.strip(" '") for c in choice[2].split(",")])
        self.exit(2, f"leakbench: error: {message}; see `{self.prog} --help`\n")


def _command(commands: argparse._SubParsersAction, only: str | None, name: str, **kwargs: Any
             ) -> argparse.ArgumentParser | None:
    """Command ``name``'s parser, to give its arguments, or None where another command was asked for."""
    parser = commands.add_parser(name, **kwargs)
    return parser if only is None or only == name else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line. With ``only``, the other commands are listed by name and help but get no
    arguments: each command imports what its arguments need (the registries behind their choices,
    torch behind those) only when it is the one asked for, so ``leakbench --help`` answers at once."""
    parser = _Parser(prog="leakbench", description="Benchmark gradient inversion attacks.")
    commands = parser.add_subparsers(dest="command", required=True)

    if (p := _command(commands, only, "run", help="attack the targets of one task and evaluate")) is not None:
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
        p.add_argument("--retry-failed", action="store_true",
                       help="recompute the targets --out holds as failed, keeping the finished ones")
        p.add_argument("--problems", type=COUNT, default=32,
                       help="problems (targets x restarts) solved together in one batched fit (default 32); it "
                            "fixes which targets share a fit, so it is part of what defines the --out folder")
        p.add_argument("--images-every", type=COUNT, help="log the current reconstructions every N steps (tensorboard, wandb)")
        p.add_argument("--defense", type=_defense, metavar="NAME[:KEY=VALUE,...]",
                       help=f"the client's defence, replacing the task's (e.g. gaussian:sigma=1e-3; names: "
                            f"{', '.join(DEFENSES.names())})")
        _add_scale_arguments(p)
        _add_evaluation_arguments(p)
        p.set_defaults(func=cmd_run)

    if (p := _command(commands, only, "rescore", help="recompute the metrics of finished run folders from their "
                                                      "stored reconstructions (no attack is re-run)")) is not None:
        from benchmark.metrics.reid import ENCODERS

        p.add_argument("folders", nargs="+", metavar="RUN_FOLDER", help="run folders (with run.json and results.json)")
        p.add_argument("--task", help="the task's YAML, for a run of a spec that is not registered by name")
        p.add_argument("--lpips-weights", type=_existing_file, metavar="PATH",
                       help="torchvision's AlexNet ImageNet weights for LPIPS (default: torchvision's cache)")
        p.add_argument("--reid", choices=ENCODERS.names(), help="face encoder (default: the one the run recorded)")
        p.set_defaults(func=cmd_rescore)

    if (p := _command(commands, only, "ls", help="list attacks or tasks")) is not None:
        p.add_argument("what", choices=["attacks", "tasks"])
        p.set_defaults(func=cmd_ls)

    if (p := _command(commands, only, "spec", help="validate a task and print its resolved spec and hash")) is not None:
        p.add_argument("task", help="task name or YAML path")
        p.add_argument("--record", action="store_true",
                       help="record the spec's hash under its version in tasks/versions.json (after a version bump)")
        p.set_defaults(func=cmd_spec)

    if (p := _command(commands, only, "perf",
                      help="measure the batched engine and the Lightning loop's overhead")) is not None:
        p.add_argument("--task", default="cifar10-lenetzhu-b1")
        p.add_argument("--attack", default="inverting_gradients")
        p.add_argument("--steps", type=COUNT, default=50, help="optimisation steps per fit (default 50)")
        p.add_argument("--repeats", type=COUNT, default=3, help="alternated timings of the Lightning and plain loops, medians reported (default 3)")
        p.add_argument("--processes", type=COUNT, default=1,
                       help="also time 20 targets with this many processes against one (default 1: not measured)")
        p.add_argument("--process-steps", type=COUNT, default=2000, help="steps of that timed run (default 2000)")
        p.add_argument("--sizes", type=_integers, help="comma-separated problem counts K, one fit each (default 1,8,32)")
        p.add_argument("--vs", choices=["breaching"], help="time LeakBench against breaching attacking the same problems "
                       "one after another, instead (needs pip install 'leakbench[peers]')")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=cmd_perf)

    if (p := _command(commands, only, "bench",
                      help="run every attack on every task of a suite it applies to")) is not None:
        p.add_argument("--suite", default="quick", help="suite name from tasks/suites.yaml (default quick)")
        p.add_argument("--attacks", help="comma-separated attack names: only these of the suite's (default: all the suite runs)")
        p.add_argument("--problems", type=COUNT, default=32,
                       help="problems solved together in one batched fit (default 32; part of what defines a run folder)")
        p.add_argument("--out", help="output folder (default runs/bench-SUITE)")
        p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
        p.add_argument("--retry-failed", action="store_true", help="recompute the failed targets of the cells' run folders")
        _add_scale_arguments(p)
        _add_evaluation_arguments(p)
        p.set_defaults(func=cmd_bench)

    if (p := _command(commands, only, "submit",
                      help="run an attack under a suite's fixed protocols and write leaderboard entries")) is not None:
        from benchmark.pipeline.loggers import LOGGERS

        p.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
        p.add_argument("--suite", required=True, help="suite name from tasks/suites.yaml")
        p.add_argument("--tasks", nargs="+", help="only these tasks of the suite (default: all)")
        p.add_argument("--targets", type=COUNT, help="only the first N targets, for a quick check: the entry is partial, not ranked")
        p.add_argument("--root", default="leaderboards", help="leaderboard folder (default leaderboards)")
        p.add_argument("--out", default="runs", help="run folders go under OUT/submit-SUITE/TASK/ATTACK (default runs)")
        p.add_argument("--logger", default="csv", choices=[*LOGGERS.names(), "none"])
        p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
        p.add_argument("--fresh", action="store_true", help="recompute the targets instead of resuming the run folders")
        p.add_argument("--allow-dirty", action="store_true",
                       help="submit from a checkout with uncommitted changes: a local trial (git_dirty), which check refuses")
        p.add_argument("--retry-failed", action="store_true", help="recompute the failed targets of the run folders")
        p.add_argument("--allow-failed", action="store_true",
                       help="publish entries with failed targets (counted as failed); refused by default")
        _add_isolation_arguments(p)
        p.set_defaults(func=cmd_submit)

    if (p := _command(commands, only, "verify",
                      help="re-run leaderboard entries; exit 1 when a metric moved beyond tolerance")) is not None:
        p.add_argument("paths", nargs="+", metavar="PATH", help="entry files (leaderboards/SUITE/TASK/ATTACK.json)")
        p.add_argument("--targets", type=COUNT, help="re-run only the first N targets (a quick check)")
        p.add_argument("--out", default="runs", help="re-runs go under OUT/verify-SUITE/TASK/ATTACK (default runs)")
        p.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
        p.add_argument("--record", action="store_true", help="mark entries verified after a full re-run within tolerance")
        _add_isolation_arguments(p)
        p.set_defaults(func=cmd_verify)

    if (p := _command(commands, only, "leaderboard", help="render, check or pull the leaderboards")) is not None:
        actions = p.add_subparsers(dest="action", required=True)
        a = actions.add_parser("build", help="render README.md and site/index.html from the entries")
        a.set_defaults(func=cmd_leaderboard_build)
        a = actions.add_parser("check", help="fail when an entry is invalid, untraceable or unverified, or the boards are stale")
        a.set_defaults(func=cmd_leaderboard_check)
        a = actions.add_parser("pull", help="write entries from the runs of a W&B project")
        a.add_argument("--wandb", required=True, metavar="ENTITY/PROJECT", help="the W&B project")
        a.add_argument("--suite", required=True, help="the suite whose protocols the runs must follow")
        a.add_argument("--replace", action="store_true", help="overwrite existing entries")
        a.set_defaults(func=cmd_leaderboard_pull)
        for a in actions.choices.values():
            a.add_argument("--root", default="leaderboards", help="leaderboard folder (default leaderboards)")

    if (p := _command(commands, only, "study", help="how attacks fare across a protocol setting (batch size, "
                                                    "defence strength, victim training)")) is not None:
        from benchmark.apps.study import CRITERIA, DEFAULT_CRITERIA
        from benchmark.apps.utility import UtilitySetting

        studies = p.add_subparsers(dest="study", required=True)
        a = studies.add_parser("batch-size", help="success rate against batch size over a task family (GRNN's Table 3)")
        a.add_argument("--attacks", required=True, help="comma-separated attack names, e.g. grnn,dlg")
        a.add_argument("--task-family", required=True, help="tasks FAMILY-bB, e.g. mnist-lenet5 (mnist-lenet5-b1, -b4, ...)")
        a.add_argument("--batch-sizes", type=_integers, help="comma-separated subset of the family's batch sizes (default: all)")
        a.add_argument("--criteria", default=",".join(DEFAULT_CRITERIA),
                       help=f"comma-separated success criteria, the first plotted: {', '.join(CRITERIA.names())} "
                            f"(default {','.join(DEFAULT_CRITERIA)})")
        a.add_argument("--seeds", type=_integers, default=[0], help="comma-separated attack seeds, one run per seed (default 0)")
        _add_study_arguments(a, "runs/study-batch-size-FAMILY", seed=False)
        a.set_defaults(func=cmd_study_batch_size)
        a = studies.add_parser("defense", help="attack metrics and the victim's utility across a defence's strengths")
        a.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
        a.add_argument("--task", required=True, help="task name or YAML path")
        a.add_argument("--defense", required=True, type=_defense, metavar="NAME[:KEY=VALUE,...]",
                       help="the defence, with any parameters held fixed (e.g. dpsgd:max_grad_norm=0.5)")
        a.add_argument("--strengths", required=True, type=_floats,
                       help="comma-separated values of the defence's strength parameter, e.g. 0,1e-3,1e-2")
        a.add_argument("--utility-steps", type=COUNT, default=UtilitySetting.steps,
                       help=f"defended SGD steps of the utility training run (default {UtilitySetting.steps})")
        a.add_argument("--utility-train-images", type=COUNT, default=UtilitySetting.train_images,
                       help=f"training images it samples from (default {UtilitySetting.train_images})")
        a.add_argument("--utility-test-images", type=COUNT, default=UtilitySetting.test_images,
                       help=f"test images of its accuracy (default {UtilitySetting.test_images})")
        _add_study_arguments(a, "runs/study-defense-TASK-ATTACK-DEFENSE")
        a.set_defaults(func=cmd_study_defense)
        a = studies.add_parser("training", help="attack metrics against the victim's training epochs, with its test accuracy")
        a.add_argument("--attack", required=True, help="attack name (leakbench ls attacks)")
        a.add_argument("--task", required=True, help="task name or YAML path")
        a.add_argument("--epochs", type=_integers, default=[0, 1, 2, 5],
                       help="comma-separated training epochs, 0 for the untrained victim (default 0,1,2,5)")
        _add_study_arguments(a, "runs/study-training-TASK-ATTACK")
        a.set_defaults(func=cmd_study_training)

    if (p := _command(commands, only, "victim", help="the victims of the tasks")) is not None:
        actions = p.add_subparsers(dest="action", required=True)
        a = actions.add_parser("train", help="train a task's victim on its training split and store it in the cache")
        a.add_argument("--task", required=True, help="task name (leakbench ls tasks) or YAML path")
        a.add_argument("--epochs", type=COUNT, default=1, help="passes over the training split (default 1)")
        a.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
        a.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal only)")
        a.set_defaults(func=cmd_victim_train)

    if (p := _command(commands, only, "analyze",
                      help="rank analysis: which layers of a model leak their input to R-GAP")) is not None:
        p.add_argument("--model", required=True, help="a registered model (e.g. cnn6, cnn6d, fcn3, lenet_zhu)")
        p.add_argument("--input-shape", default="3,32,32", help="C,H,W of one input (default 3,32,32)")
        p.add_argument("--num-classes", type=_whole(2), default=10, help="K >= 2; 2 gives a one-logit head (default 10)")
        p.add_argument("--seed", type=SEED, default=0, help="seed of the model init and the random input (default 0)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=cmd_analyze)

    return parser


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=next((word for word in argv if not word.startswith("-")), "")).parse_args(argv)
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
