"""The argument types and the arguments several commands share. Each type is an argparse ``type=``:
it turns the text of one argument into its value or refuses it with an ``argparse.ArgumentTypeError``,
which the parser reports as a one-line error; each ``add_*`` gives a parser one group of arguments.
What they need of torch or a registry (a defence to build, the face encoders, the sandbox) is imported
inside them, so that only the command asked for pays for it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmark.protocol.spec import DefenseSpec

from benchmark.core.errors import LeakBenchError, SettingError, integer_problem
from benchmark.pipeline.sandbox import MEMORY_LIMIT, TIME_LIMIT


def _parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def defense_spec(text: str) -> DefenseSpec:
    """NAME or NAME:key=value[,key=value...] → a checked defence spec."""
    from benchmark.defenses import build_defense
    from benchmark.protocol.spec import DefenseSpec

    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"expected NAME or NAME:key=value[,key=value], e.g. gaussian:sigma=1e-3, got {text!r}"
            )
        params[key.strip()] = _parse_value(value.strip())
    spec = DefenseSpec(name=name.strip(), params=params)
    try:
        build_defense(spec)
    except LeakBenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0,1e-3,1e-2, got {text!r}"
        ) from None


def integers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,4,8, got {text!r}") from None


def whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, refused as :func:`benchmark.run` refuses it."""

    def parse(text: str) -> int:
        value = _parse_value(text)
        if (problem := integer_problem(value, minimum)) is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


COUNT, SEED = whole(1), whole(0)


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--devices",
        type=COUNT,
        default=1,
        help="processes (one per device) that share the targets; needs --out on a shared disk (default 1)",
    )
    parser.add_argument(
        "--num-nodes", type=COUNT, default=1, help="machines, launched by torchrun or SLURM (default 1)"
    )


def _gib(text: str) -> float:
    """An argparse type: a memory size in GiB, at least 2 (what torch needs to start)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 2:
        raise argparse.ArgumentTypeError(f"must be a number of GiB >= 2, got {text!r}")
    return value


def add_isolation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="run the attack in a sandbox: no network, no files but the Python installation, "
        "leakbench and its own package, only its fit folder writable (docs/trust.md)",
    )
    parser.add_argument(
        "--time-limit",
        type=COUNT,
        metavar="SECONDS",
        help=f"with --isolated: wall-clock limit of each fit (default {TIME_LIMIT})",
    )
    parser.add_argument(
        "--memory-limit",
        type=_gib,
        metavar="GIB",
        help=f"with --isolated: memory limit of each fit (default {MEMORY_LIMIT:g})",
    )


def isolation_of(args: argparse.Namespace):
    """The sandbox ``--isolated`` asks for, with its limits (a :class:`benchmark.pipeline.isolation.Isolation`), or None."""
    from benchmark.pipeline.isolation import Isolation

    limits = {name: value for name in ("time_limit", "memory_limit") if (value := getattr(args, name)) is not None}
    if not args.isolated:
        if limits:
            raise SettingError(
                "--time-limit and --memory-limit limit an isolated attack: add --isolated, or leave them out"
            )
        return None
    return Isolation(**limits)


def existing_file(text: str) -> Path:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return Path(text)


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.metrics.reid import ENCODERS

    parser.add_argument(
        "--lpips-weights",
        type=existing_file,
        metavar="PATH",
        help="torchvision's AlexNet ImageNet weights for LPIPS (default: torchvision's cache)",
    )
    parser.add_argument(
        "--reid",
        default="auto",
        choices=["auto", *ENCODERS.names()],
        help="face encoder of the re-identification metric (default auto: facenet where its "
        "weights are present, else dlib)",
    )


def add_cell_arguments(parser: argparse.ArgumentParser, out: str, seed: bool = True) -> None:
    """The arguments of the runs of a study's cells, the same in every study (``out``: the default folder)."""
    parser.add_argument("--targets", type=COUNT, help="targets per cell (default: each task's)")
    parser.add_argument(
        "--max-steps", type=COUNT, help="optimisation steps (default: the task's budget or the paper's)"
    )
    if seed:
        parser.add_argument("--seed", type=SEED, default=0, help="attack seed (default 0)")
    parser.add_argument("--out", help=f"output folder (default {out})")
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (shown on a terminal only)")
