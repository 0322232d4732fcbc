"""The command line's parser: the commands in the order ``leakbench --help`` lists them, each with its
help line and the function of its group's module that gives its arguments (and sub-commands), and the
argparse whose errors are one line. Only the command asked for gets its arguments, so only it imports
what they need.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from benchmark.cli import analyze, catalog, leaderboard, perf, run, study, victim
from benchmark.core.registry import did_you_mean

COMMANDS = (
    ("run", "attack the targets of one task and evaluate", run.add_run_arguments),
    (
        "rescore",
        "recompute the metrics of finished run folders from their stored reconstructions (no attack is re-run)",
        run.add_rescore_arguments,
    ),
    ("ls", "list attacks or tasks", catalog.add_ls_arguments),
    ("spec", "validate a task and print its resolved spec and hash", catalog.add_spec_arguments),
    ("perf", "measure the batched engine and the Lightning loop's overhead", perf.add_perf_arguments),
    ("bench", "run every attack on every task of a suite it applies to", run.add_bench_arguments),
    (
        "submit",
        "run an attack under a suite's fixed protocols and write leaderboard entries",
        leaderboard.add_submit_arguments,
    ),
    (
        "verify",
        "re-run leaderboard entries; exit 1 when a metric moved beyond tolerance",
        leaderboard.add_verify_arguments,
    ),
    ("leaderboard", "render, check or pull the leaderboards", leaderboard.add_leaderboard_arguments),
    (
        "study",
        "how attacks fare across a protocol setting (batch size, defence strength, victim training)",
        study.add_study_arguments,
    ),
    ("victim", "the victims of the tasks", victim.add_victim_arguments),
    ("analyze", "rank analysis: which layers of a model leak their input to R-GAP", analyze.add_analyze_arguments),
)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``leakbench: error: ...`` with a pointer to ``--help``, exit 2;
    an unknown choice gets "did you mean"."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        if choice := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
            message += did_you_mean(choice[1], [c.strip(" '") for c in choice[2].split(",")])
        self.exit(2, f"leakbench: error: {message}; see `{self.prog} --help`\n")


def _command(
    commands: argparse._SubParsersAction, only: str | None, name: str, **kwargs: Any
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
    for name, help, add_arguments in COMMANDS:
        if (p := _command(commands, only, name, help=help)) is not None:
            add_arguments(p)
    return parser
