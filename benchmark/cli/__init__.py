"""The ``leakbench`` command: a thin layer over :func:`benchmark.run` and the registries.

Torch, Lightning and what imports them are imported inside the commands (and inside the arguments of
the command that is asked for, :func:`build_parser`), so ``leakbench --help`` starts in a fraction of
a second. :mod:`.parser` lists the commands; each group of them has its module (:mod:`.run`,
:mod:`.catalog`, :mod:`.perf`, :mod:`.leaderboard`, :mod:`.study`, :mod:`.victim`, :mod:`.analyze`)
with its arguments and its ``cmd_*`` functions, over the shared :mod:`.arguments` and :mod:`.output`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from benchmark.cli.arguments import COUNT
from benchmark.cli.parser import build_parser
from benchmark.core.errors import LeakBenchError

__all__ = ["COUNT", "build_parser", "main"]


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("benchmark").setLevel(logging.INFO)
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
    except BrokenPipeError:  # the reader of the output left (`leakbench ls tasks | head`): stop, silently
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush finds no pipe
        return 141  # 128 + SIGPIPE, as a command the signal stopped
