"""The whole CLI under random input: argument vectors for every subcommand and damaged bytes in every
kind of file it reads. Every outcome must be an exit status of 0, 1 or 2, no traceback, an error of one
line, and every finished row of an existing run folder left byte for byte as it was.

The CLI runs in-process (``main(argv)``), on tiny tasks (8×8 images, one or two targets, one step),
so the default budget runs in CI; ``-m slow`` runs ten times as many examples.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import itertools
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from support import fail_targets

import benchmark
from benchmark.apps import perf
from benchmark.apps.leaderboard import build, submit
from benchmark.apps.training import train_victim
from benchmark.cli import COUNT, build_parser, main
from benchmark.pipeline.tasks import load_task
from benchmark.protocol import loading
from benchmark.victim.trained import checkpoint_path

BUDGETS = [pytest.param(1, id="ci"), pytest.param(10, marks=pytest.mark.slow, id="long")]

FUZZ_TASKS = {
    "fz.yaml": "include: cifar10-lenetzhu-b1\nname: fz\ndata: {image_size: 8}\ntargets: {count: 2}\n"
    "budget: {max_steps: 1, options: {dlg: {lbfgs_iterations: 2}, idlg: {lbfgs_iterations: 2}}}\n",
    "fz-b1.yaml": "include: fz.yaml\nname: fz-b1\ntargets: {count: 1}\n",
    "fz-b2.yaml": "include: fz.yaml\nname: fz-b2\nfl: {batch_size: 2}\ntargets: {count: 1}\n",
    "fzfolder.yaml": "name: fzfolder\nversion: 1\ndata: {dataset: folder, path: ../images, image_size: 8}\n"
    "targets: {count: 1}\nvictim: {model: mlp}\nbudget: {max_steps: 1}\n",
    "fztrained.yaml": "include: fzfolder.yaml\nname: fztrained\nvictim: {state: trained@1}\n",
    "suites.yaml": "fzs: {targets: 1, max_steps: 1, attacks: [dlg], tasks: [fz]}\n",
}


@dataclass
class World:
    """The folders and files the fuzzed commands read, with the run folder whose rows must survive."""

    root: Path
    tasks: Path
    shipped: Path
    images: Path
    guarded: Path  # a run folder of 3 targets of 'fz' with dlg: targets 0 and 2 finished, target 1 failed
    board: Path
    entry: Path
    weights: Path
    counter: itertools.count
    pristine: dict[Path, tuple[bytes, tuple[int, int]]] = field(default_factory=dict)  # every file as set up

    def snapshot(self) -> None:
        files = [path for folder in (self.tasks, self.images, self.guarded, self.board) for path in folder.rglob("*")]
        for path in [*files, self.shipped / "versions.json", self.weights, *self.trained]:
            if path.is_file():
                self.pristine[path] = (path.read_bytes(), _stamp(path))

    def restore(self) -> None:
        """Every file as set up, and nothing else in the run folder and the board: examples do not meet."""
        for folder in (self.guarded, self.board):
            for path in folder.rglob("*"):
                if path.is_file() and path not in self.pristine:
                    path.unlink()
        for path, (content, stamp) in self.pristine.items():
            if not path.is_file() or _stamp(path) != stamp:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                self.pristine[path] = (content, _stamp(path))

    @property
    def trained(self) -> tuple[Path, Path]:
        weights = checkpoint_path(load_task("fztrained"), 1)
        return weights, weights.with_suffix(".json")

    def new_folder(self) -> Path:
        return self.root / "new" / str(next(self.counter))

    def resume(self) -> list[str]:
        return [
            "run",
            "--task",
            "fz",
            "--attack",
            "dlg",
            "--targets",
            "3",
            "--out",
            str(self.guarded),
            "--logger",
            "none",
            "--no-progress",
        ]

    def finished_rows(self) -> list[bytes]:
        lines = (self.guarded / "targets.jsonl").read_bytes().splitlines(keepends=True)
        return [line for line in lines if line.endswith(b"\n") and b'"failed": null' in line]


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_checkout: Path) -> World:
    shipped = tmp_path / "shipped"  # a copy: `spec --record` writes tasks/versions.json
    shutil.copytree(loading.task_dirs()[-1], shipped)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, text in FUZZ_TASKS.items():
        (tasks / name).write_text(text)
    monkeypatch.setattr(loading, "task_dirs", lambda: [tasks, shipped])
    monkeypatch.setattr(loading.TASKS, "_entries", {})
    monkeypatch.setattr(loading.TASKS, "_discovered", False)
    rng = np.random.default_rng(0)
    for person in ("a", "b"):
        (tmp_path / "images" / person).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                tmp_path / "images" / person / f"{k}.png"
            )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # the commands whose real work is minutes long or needs the network answer at once
    monkeypatch.setattr(importlib.import_module("benchmark.apps.leaderboard.pull"), "_runs", lambda path: [])
    monkeypatch.setattr(perf, "_timed_fit", lambda setting, observations: (0.02, 0.01, 0.015))
    monkeypatch.setattr(perf, "_timed_plain_loop", lambda setting, observations: 0.01)
    monkeypatch.setattr(perf, "peak_memory_mib", lambda setting, size, framework="leakbench": 1.0)
    monkeypatch.setattr(perf, "_peer", lambda setting, problems: None)
    monkeypatch.setattr(perf, "_timed_breaching", lambda peer, problems: 0.02)
    monkeypatch.setattr(perf, "process_scaling", lambda setting: {"one_process_s": 1.0})

    guarded = tmp_path / "guarded"
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        benchmark.run("fz", "dlg", targets=3, out=guarded, logger=None, problems=1)
    board = tmp_path / "board"
    (entry,) = submit("dlg", "fzs", root=board, runs=work / "runs", logger=None)
    build(board)
    train_victim(load_task("fzfolder"), 1)
    weights = tmp_path / "alexnet.pth"
    weights.write_bytes(b"not a weights file")
    made = World(tmp_path, tasks, shipped, tmp_path / "images", guarded, board, entry, weights, itertools.count())
    assert len(made.finished_rows()) == 2
    made.snapshot()
    return made


def _run_cli(argv: list[str], world: World, caplog: pytest.LogCaptureFixture, intact: list[bytes] | None = None) -> int:
    """Run the CLI on ``argv`` and check the outcome, and that the ``intact`` rows (default: every
    finished row of the guarded run folder) are still there; returns the exit status."""
    before = world.finished_rows() if intact is None else intact
    caplog.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    printed = out.getvalue() + err.getvalue()
    assert code in (0, 1, 2), (argv, code, printed[-2000:])
    assert "Traceback" not in printed and "Logging error" not in printed, (argv, printed[-2000:])
    errors = [line for line in err.getvalue().splitlines() if line.startswith("leakbench: error:")]
    if code == 2 and "--help" not in argv and "-h" not in argv:
        assert len(errors) == 1 and err.getvalue().strip().endswith(errors[0]), (argv, err.getvalue()[-2000:])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (argv, caplog.text[-2000:])
    after = (world.guarded / "targets.jsonl").read_bytes().splitlines(keepends=True)
    assert all(line in after for line in before), argv  # finished rows stay, byte for byte
    return code


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], list[argparse.Action]]:
    """Every subcommand path of the parser (``("leaderboard", "check")``, ...) with its arguments."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, path + (name,)))
    if not found and path:
        found[path] = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    return found


COMMANDS = _commands(build_parser())
# arguments whose defaults run real work for minutes (bench's suite 'quick', a 32×32 rank analysis)
_ALWAYS_GIVEN = {"suite", "input_shape"}


def _values(world: World) -> dict[str, tuple[list[str], list[str]]]:
    """Per argument (dest): values that are right here, and values that are wrong (an unknown name, a
    value out of range, a file that is not one); no right value: the argument is only given wrong."""
    new = "<new folder>"
    return {
        "task": (
            ["fz", "fz-b2", "fzfolder", str(world.tasks / "fz.yaml")],
            ["fz-b", "no/such.yaml", str(world.weights)],
        ),
        "attack": (["dlg", "idlg", "inverting_gradients", "ig", "grnn", "ssras"], ["idgl", "bias"]),
        "attacks": (["dlg", "dlg,grnn", "ssras"], ["idgl", ""]),
        "suite": (["fzs"], ["fzz"]),
        "tasks": (["fz"], ["nope"]),
        "task_family": (["fz"], ["fzz"]),
        "out": ([str(world.guarded), new, new, ""], [str(world.weights / "x")]),
        "root": ([str(world.board), str(world.root / "missing")], [str(world.weights)]),
        "paths": ([str(world.entry)], [str(world.root / "missing.json"), str(world.board)]),
        "model": (["lenet_zhu", "fcn3", "cnn6"], ["nope", "lenet5"]),
        "input_shape": (["3,8,8", "1,8,8"], ["3,8,4", "0,8,8", "x", "3,8"]),
        "num_classes": (["2", "10"], ["1", "0", "x"]),
        "batch_sizes": (["1", "1,2", "2"], ["3", "x", "-1"]),
        "threshold": (["0.6", "1"], ["0", "nan", "2", "x"]),
        "sizes": (["1", "1,2"], ["0", "x", "1,-1"]),
        "defense": (
            ["gaussian", "gaussian:sigma=0.1", "dpsgd:noise_multiplier=0.5", "pruning:fraction=0.5", "soteria", "sign"],
            [
                "pruning:fraction=2",
                "gaussian:sigma=nan",
                "gaussian:sigma=inf",
                "gausian",
                "gaussian:sigma",
                "quantization:bits=1.5",
            ],
        ),
        "strengths": (["0", "0,0.1"], ["-1", "nan", "inf", "x"]),
        "accelerator": (["cpu", "auto"], ["gpu", "bogus"]),  # gpu: wrong where no CUDA device is
        "logger": (["csv", "none", "tensorboard"], ["bogus"]),  # wandb starts a service (tests/test_runner.py)
        "reid": (["auto", "dlib"], ["bogus"]),
        "lpips_weights": ([], [str(world.weights), str(world.root / "missing.pth")]),
        "wandb": (["team/project"], ["not a project"]),
        "what": (["attacks", "tasks"], ["things"]),
        "devices": (["1"], ["0", "-1", "x"]),  # 2 spawns processes (tests/test_runner.py)
        "num_nodes": (["1"], ["2", "0", "x"]),
        "seed": (["0", "1"], ["-1", "x"]),
        "memory_limit": (["2", "16"], ["1", "nan", "x"]),  # --time-limit 1 or 2: an isolated fit stopped at once
    }


_COUNTS = (["1", "2"], ["0", "-1", "x", "1.5"])


@st.composite
def _argv(draw, world: World) -> list[str]:
    """A subcommand with some of its arguments, all right but for at most one (left out, or wrong)."""
    path = draw(st.sampled_from(sorted(COMMANDS)))
    values = _values(world)
    given = [a for a in COMMANDS[path] if a.required or a.dest in _ALWAYS_GIVEN or draw(st.sampled_from([1, 0, 0]))]
    given = draw(st.permutations(given))
    broken = draw(st.sampled_from([None, None, *given])) if given else None
    argv = list(path)
    for action in given:
        if action.nargs == 0:  # a flag
            argv.append(action.option_strings[0])
            continue
        right, wrong = values.get(action.dest) or (
            (list(action.choices), ["bogus"]) if action.choices else _COUNTS if action.type is COUNT else (["1"], ["x"])
        )
        if action is broken:
            value = draw(st.sampled_from([*wrong, "<text>"] + ["<left out>"] * (action.dest not in _ALWAYS_GIVEN)))
        elif right:
            value = draw(st.sampled_from(right))
        else:
            continue
        if value == "<left out>":
            continue
        value = draw(st.text(max_size=6)) if value == "<text>" else value
        value = str(world.new_folder()) if value == "<new folder>" else value
        argv += ([action.option_strings[0]] if action.option_strings else []) + [value]
    if "--fresh" in argv and str(world.guarded) in argv:  # --fresh discards rows on purpose
        argv[argv.index(str(world.guarded))] = str(world.new_folder())
    if draw(st.sampled_from([False] * 19 + [True])):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--bogus", "-h", "--", "-1"])))
    return argv


@pytest.mark.parametrize("budget", BUDGETS)
def test_random_argument_vectors(world: World, caplog, budget: int):
    codes = []

    @settings(
        max_examples=200 * budget,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(argv=_argv(world))
    def attempt(argv: list[str]) -> None:
        world.restore()
        codes.append(_run_cli(argv, world, caplog))

    attempt()
    assert len(codes) >= 200 * budget and {0, 2} <= set(codes)  # ran things and refused things


def _kinds(world: World) -> dict[str, tuple[Path, list[list[str]]]]:
    """Each kind of file the tool reads: where it lies and the commands that read it."""
    new = "<new folder>"
    trained, record = world.trained
    run_folder = ["--attack", "dlg", "--out", new, "--logger", "none", "--no-progress"]
    check = ["leaderboard", "check", "--root", str(world.board)]
    verify = ["verify", str(world.entry), "--targets", "1", "--out", new]
    return {
        "task spec": (world.tasks / "fz.yaml", [["spec", "fz"], ["run", "--task", "fz", *run_folder], check, verify]),
        "suite file": (
            world.tasks / "suites.yaml",
            [
                ["bench", "--suite", "fzs", "--out", new],
                check,
                [
                    "submit",
                    "--attack",
                    "dlg",
                    "--suite",
                    "fzs",
                    "--out",
                    new,
                    "--root",
                    str(world.board),
                    "--logger",
                    "none",
                ],
            ],
        ),
        "leaderboard entry": (world.entry, [check, ["leaderboard", "build", "--root", str(world.board)], verify]),
        "spec versions": (world.shipped / "versions.json", [["spec", "fz", "--record"]]),
        "run record": (world.guarded / "run.json", [world.resume()]),
        "rows file": (world.guarded / "targets.jsonl", [world.resume(), world.resume() + ["--retry-failed"]]),
        "reconstruction": (world.guarded / "reconstructions" / "target-0000.pt", [world.resume()]),
        "fit checkpoint": (
            Path(new) / "checkpoints" / "targets-0000-0001" / "fit.ckpt",
            [["run", "--task", "fz", *run_folder]],
        ),
        "image": (world.images / "a" / "0.png", [["run", "--task", "fzfolder", *run_folder]]),
        "trained weights": (trained, [["run", "--task", "fztrained", *run_folder]]),
        "trained record": (record, [["run", "--task", "fztrained", *run_folder]]),
        "lpips weights": (world.weights, [["run", "--task", "fz", "--lpips-weights", str(world.weights), *run_folder]]),
    }


def _damaged(draw, content: bytes) -> bytes:
    how = draw(st.sampled_from(["random", "truncated", "overwritten", "not utf-8"]))
    if how == "random" or not content:
        return draw(st.binary(max_size=200))
    if how == "truncated":
        return content[: draw(st.integers(0, len(content) - 1))]
    if how == "not utf-8":
        position = draw(st.integers(0, len(content)))
        return content[:position] + b"\xff\xfe" + content[position:]
    damaged = bytearray(content)
    for _ in range(draw(st.integers(1, 3))):
        position, junk = draw(st.integers(0, len(damaged))), draw(st.binary(min_size=1, max_size=12))
        damaged[position : position + len(junk)] = junk
    return bytes(damaged)


@pytest.mark.parametrize("budget", BUDGETS)
def test_damaged_files_of_every_kind(world: World, caplog, budget: int):
    kinds = _kinds(world)
    checkpoint = io.BytesIO()
    torch.save({"state_dict": {}, "epoch": 0}, checkpoint)  # loads, but is no fit's checkpoint
    seen = []

    def attempt(kind: str, data: st.DataObject) -> None:
        """One damaged file of ``kind`` under one of the commands that read it."""
        world.restore()
        path, commands = kinds[kind]
        argv = data.draw(st.sampled_from(commands))
        if str(path).startswith("<new folder>") or "<new folder>" in argv:
            folder = world.new_folder()
            argv = [str(folder) if value == "<new folder>" else value for value in argv]
            path = Path(str(path).replace("<new folder>", str(folder)))
        original = path.read_bytes() if path.is_file() else checkpoint.getvalue()
        damaged = _damaged(data.draw, original)
        intact = world.finished_rows()  # but the rows whose bytes are damaged (they are recomputed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(damaged)
        if kind == "rows file":
            intact = [line for line in intact if line in damaged.splitlines(keepends=True)]
        elif kind == "reconstruction":
            intact = [line for line in intact if not line.startswith(b'{"target": 0,')]
        _run_cli(argv, world, caplog, intact)
        seen.append(kind)

    each = -(-120 * budget // len(kinds))  # every kind in turn, not left to the draw (which may miss one)

    def attempts(kind: str) -> Callable[[], None]:
        @settings(max_examples=each, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            attempt(kind, data)

        return run

    for kind in sorted(kinds):
        attempts(kind)()
    assert len(seen) >= 120 * budget and set(seen) == set(kinds)


def test_the_harness_fails_on_a_crash_a_two_line_error_and_a_lost_row(
    world: World, caplog, monkeypatch: pytest.MonkeyPatch
):
    from benchmark.cli import catalog

    def crash(args):
        raise ValueError("a bug")

    def two_lines(args):
        print("leakbench: error: one\nleakbench: error: two", file=sys.stderr)
        return 2

    def lose_a_row(args):
        rows = world.guarded / "targets.jsonl"
        rows.write_bytes(rows.read_bytes().splitlines(keepends=True)[-1])
        return 0

    for command, caught in ((crash, ValueError), (two_lines, AssertionError), (lose_a_row, AssertionError)):
        with monkeypatch.context() as patch:
            patch.setattr(catalog, "cmd_ls", command)
            with pytest.raises(caught):
                _run_cli(["ls", "attacks"], world, caplog)
