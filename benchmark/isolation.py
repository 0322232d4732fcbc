"""Isolated fits (``--isolated``): the attack runs in a sandbox and sees only its observations.

The trust model, what is withheld and what is not: ``docs/trust.md``. This process draws the private
batch, computes the observations and scores the reconstructions; the fit itself
(:func:`benchmark.runner.fit`) runs in a fresh process inside :mod:`benchmark.sandbox`: no network;
read-only, only the Python installation, leakbench and the attack's own package, the datasets' files
covered; writable, only the fit's folder; a memory, time and file-size limit; no privileges. The two
sides exchange files of tensors and plain values in the fit's folder, each read with
``torch.load(weights_only=True)``, so neither side runs code the other wrote.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from benchmark import errors, sandbox
from benchmark.attacks.base import Attack, Reconstruction
from benchmark.data import DATASETS, cache_dir
from benchmark.errors import (ATTACK_FAILURES, AttackError, LeakBenchError, SettingError, at_least, attack_error, finite,
                              first_line)
from benchmark.result import write_atomic
from benchmark.victim import Observation

INPUT, OUTPUT, CONFIG = "input.pt", "output.pt", "sandbox.json"
NOBODY = 65534  # the user an isolated fit runs as where leakbench runs as root
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives", "/etc/fonts",
          "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group",
          "/etc/nsswitch.conf")
OTHER_PACKAGES = ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "lib/python3/dist-packages",
                  "local/lib*/python3*/site-packages", "local/lib*/python3*/dist-packages")
CONTEXT = (" (it ran --isolated: no network; it reads only the Python installation, leakbench and its own package, "
           "and writes only its fit folder; see docs/trust.md)")


@dataclass(frozen=True)
class Isolation:
    """The limits of an isolated fit's sandbox: ``time_limit`` seconds of wall-clock time (and that
    times this machine's cores of CPU time, which stops it should this process be gone), and
    ``memory_limit`` GiB of memory (``RLIMIT_DATA``: heap and private mappings; also the largest file it may write)."""

    time_limit: int = sandbox.TIME_LIMIT
    memory_limit: float = sandbox.MEMORY_LIMIT

    def __post_init__(self) -> None:
        at_least("time_limit", self.time_limit, 1)
        finite("memory_limit", self.memory_limit, 2)  # GiB: what torch needs to start

    def check(self, accelerator: str) -> None:
        """A one-line :class:`SettingError`, before any work, where an isolated fit cannot run here."""
        if accelerator != "cpu":
            raise SettingError(f"--isolated runs the attack on the CPU (its sandbox passes in no GPU device), not on "
                               f"--accelerator {accelerator}: give --accelerator cpu, or run without --isolated only an "
                               f"attack whose code you have read (docs/trust.md)")
        if (problem := _probe()) is not None:
            raise SettingError(problem)

    def fit(self, attack_cls: type[Attack], observations: Sequence[Observation], config: Any, seeds: Sequence[int],
            options: Any, step_offset: int) -> tuple[list[Reconstruction], int]:
        """:func:`benchmark.runner.fit` in a sandbox, in the checkpoint's folder (else a temporary one):
        its reconstructions, read back and checked, and its steps; what the fit raised, raised here."""
        where = f"{attack_cls.__module__}.{attack_cls.__qualname__}"
        if attack_cls.__module__ == "__main__" or "<locals>" in attack_cls.__qualname__:
            raise SettingError(f"attack {where} cannot be imported by an isolated fit, which starts a new process: "
                               f"define it at the top of a module of a package")
        checkpoint = options.checkpoint.absolute() if options.checkpoint is not None else None
        folder = checkpoint.parent if checkpoint is not None else Path(tempfile.mkdtemp(prefix="leakbench-fit-"))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            options = dataclasses.replace(options, checkpoint=checkpoint)
            write_atomic(folder / INPUT, _saved(_payload(attack_cls, observations, config, seeds, options, step_offset)))
            try:
                process = _sandboxed(folder, sandbox_config(attack_cls, self), timeout=self.time_limit)
            except subprocess.TimeoutExpired:
                raise SettingError(f"the isolated fit of {len(observations)} problem(s) ran past its time limit of "
                                   f"{self.time_limit} s; raise --time-limit, or lower --problems") from None
            if process.returncode == sandbox.SETUP_FAILED and (folder / sandbox.SETUP_ERROR).is_file():
                raise SettingError(f"--isolated could not make its sandbox: {_setup_error(folder)}")
            try:
                outcome = _read_back(folder / OUTPUT)
            except ValueError as err:
                raise _returned(attack_cls, f"{err}; its process ended with status {process.returncode} (its limits: "
                                            f"{self.memory_limit:g} GiB of memory, {self.time_limit} s)") from None
            if isinstance(outcome, dict) and "error" in outcome:
                raise self._raised(attack_cls, outcome["error"], len(observations))
            return _reconstructions(attack_cls, outcome, observations)
        finally:
            for name in (INPUT, OUTPUT):
                (folder / name).unlink(missing_ok=True)
            if checkpoint is None:
                shutil.rmtree(folder, ignore_errors=True)

    def _raised(self, attack_cls: type[Attack], error: Any, problems: int) -> Exception:
        """What to raise for an error the sandboxed fit reported as [kind, type name, message]."""
        if not (isinstance(error, list) and len(error) == 3 and all(isinstance(part, str) for part in error)):
            return _returned(attack_cls, f"its error is not one leakbench writes ({first_line(repr(error), 80)})")
        kind, name, message = error
        failures = {cls.__name__: cls for cls in ATTACK_FAILURES}
        if kind in failures:  # the same failure here (by name), so the target's row records it as it would unisolated
            return (failures[kind] if kind == name else type(name, (failures[kind],), {}))(message)
        if kind == "error":
            cls = getattr(errors, name, None)
            return (cls if isinstance(cls, type) and issubclass(cls, LeakBenchError) else LeakBenchError)(message)
        if kind == "memory":
            return SettingError(f"the isolated fit of {problems} problem(s) ran out of its memory limit of "
                                f"{self.memory_limit:g} GiB ({first_line(message, 100)}); raise "
                                f"--memory-limit, or lower --problems")
        return attack_error(attack_cls.__name__, name, first_line(message), CONTEXT)


def sandbox_config(attack_cls: type[Attack] | None, isolation: Isolation, probe: bool = False) -> dict[str, Any]:
    """What the sandbox of a fit of ``attack_cls`` is made of (:mod:`benchmark.sandbox`): the paths it
    shows read-only, those it covers, the Python path to leakbench and the attack, its limits, and the
    user it runs as (None: the one running leakbench, in a user namespace)."""
    packages = [_locations(name) for name in dict.fromkeys(
        ["benchmark", *([attack_cls.__module__.partition(".")[0]] if attack_cls is not None else [])])]
    python = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    readable = _outermost([path for path in (*SYSTEM, *python, *(p for paths in packages for p in paths))
                           if os.path.lexists(path)])
    on_path = {os.path.realpath(entry) for entry in sys.path if entry}
    other = [str(path) for tree in readable if os.path.isdir(tree) and not os.path.islink(tree)
             for pattern in OTHER_PACKAGES for path in Path(tree).glob(pattern) if os.path.realpath(path) not in on_path]
    covered = [*(str(path) for _, source in DATASETS for path in source.package_files()), str(cache_dir()), *other]
    hidden = [path for path in dict.fromkeys(covered)
              if os.path.exists(path) and any(_inside(path, tree) for tree in readable)]
    memory = int(isolation.memory_limit * 2**30)
    return {"readable": readable, "hidden": hidden, "python_path": list(dict.fromkeys(
                str(Path(path).parent) for paths in packages for path in paths)),
            "limits": {"memory": memory, "file_size": memory, "cpu": isolation.time_limit * (os.cpu_count() or 1)},
            "user": NOBODY if os.geteuid() == 0 else None, "probe": probe}


def _locations(package: str) -> list[str]:
    """The folders (or the file) of an imported top-level module."""
    module = sys.modules.get(package) or importlib.import_module(package)
    return [str(path) for path in getattr(module, "__path__", [])] or [str(module.__file__)]


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another of them."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(_inside(path, tree) for tree in kept):
            kept.append(path)
    return kept


def _flags() -> list[str]:
    """util-linux unshare's options: new mount, network, PID and IPC namespaces (and a user namespace, where not root)."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [*user, "--mount", "--net", "--pid", "--ipc", "--fork", "--kill-child"]


def _sandboxed(folder: Path, config: dict[str, Any], timeout: float, capture: bool = False) -> subprocess.CompletedProcess:
    """Run :mod:`benchmark.sandbox` on ``folder`` as ``config`` says; its output goes to standard error
    (captured, with ``capture``)."""
    root = tempfile.mkdtemp(prefix="leakbench-root-")  # stays empty here: the mounts are the sandbox's own
    try:
        write_atomic(folder / CONFIG, json.dumps({**config, "root": root, "writable": str(folder)}))
        if config["user"] is not None:
            os.chown(folder, config["user"], config["user"])
        kept = {name: value for name, value in os.environ.items()  # the numerical libraries' settings, no others
                if name.startswith(("OMP_", "MKL_", "KMP_", "OPENBLAS_")) or name in ("LANG", "LC_ALL", "TZ")}
        environment = {**kept, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(folder),
                       "CUDA_VISIBLE_DEVICES": ""}
        command = [str(shutil.which("unshare")), *_flags(), "--", sys.executable, "-I", "-B", sandbox.__file__,
                   str(folder / CONFIG)]
        return subprocess.run(command, env=environment, cwd=folder, stdin=subprocess.DEVNULL, timeout=timeout,
                              stdout=subprocess.PIPE if capture else 2, stderr=subprocess.PIPE if capture else None,
                              text=True)
    finally:
        (folder / CONFIG).unlink(missing_ok=True)
        os.rmdir(root)


@functools.lru_cache(maxsize=None)
def _probe() -> str | None:
    """Why no sandbox can be made here (one line: the problem and the fix), or None: a trial sandbox."""
    if shutil.which("unshare") is None:
        return ("--isolated needs util-linux's unshare command, which is not on PATH; install util-linux "
                "(apt-get install util-linux), or run without --isolated only an attack whose code you have read")
    fix = ("run leakbench as root on a machine (or in a container started with --privileged) that allows new "
           "namespaces" if os.geteuid() == 0 else
           "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and, on Ubuntu, "
           "kernel.apparmor_restrict_unprivileged_userns=0), or run leakbench as root")
    with tempfile.TemporaryDirectory(prefix="leakbench-probe-") as folder:
        try:
            process = _sandboxed(Path(folder), sandbox_config(None, Isolation(), probe=True), timeout=120, capture=True)
        except subprocess.TimeoutExpired:
            return f"--isolated could not make a trial sandbox within 120 s; {fix}"
        if process.returncode == 0:
            return None
        if process.returncode == sandbox.SETUP_FAILED and (Path(folder) / sandbox.SETUP_ERROR).is_file():
            reason = _setup_error(Path(folder))
        else:
            reason = first_line(process.stderr or process.stdout, 160) or f"exit status {process.returncode}"
        return f"--isolated cannot make its sandbox here ({reason}); {fix}"


def _setup_error(folder: Path) -> str:
    return first_line(_regular_bytes(folder / sandbox.SETUP_ERROR).decode(errors="replace"), 160)


def _payload(attack_cls: type[Attack], observations: Sequence[Observation], config: Any, seeds: Sequence[int],
             options: Any, step_offset: int) -> dict[str, Any]:
    """The input of an isolated fit: tensors and plain values only (each distinct observation once)."""
    distinct = list({id(o): o for o in observations}.values())
    position = {id(o): k for k, o in enumerate(distinct)}
    return {"attack": [attack_cls.__module__, attack_cls.__qualname__],
            "config": {field.name: getattr(config, field.name) for field in dataclasses.fields(config)},
            "seeds": [int(seed) for seed in seeds], "observations": [o.to_record() for o in distinct],
            "problems": [position[id(o)] for o in observations], "threads": torch.get_num_threads(),
            "fit": {"progress": options.progress, "checkpoint_every": options.checkpoint_every, "step_offset": step_offset,
                    "checkpoint": None if options.checkpoint is None else str(options.checkpoint)}}


def _saved(content: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def _regular_bytes(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, a pipe or a device the sandbox left
    there); ValueError otherwise."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"no readable {path.name} ({err.strerror})") from None
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        return file.read()


def _read_back(path: Path) -> Any:
    """What the sandbox left at ``path``, loaded with ``weights_only=True``; ValueError where it is not tensors and plain values."""
    content = _regular_bytes(path)
    try:
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file or a pickle of anything else: refused, whatever torch raises
        raise ValueError(f"{path.name} is not tensors and plain values ({type(err).__name__}: "
                         f"{first_line(err, 100)})") from None


def _returned(attack_cls: type[Attack], problem: str) -> AttackError:
    return AttackError(f"attack {attack_cls.__name__} ran --isolated and its outcome cannot be used: {problem}; this is "
                       f"not a result, so no target row was written: fix the attack")


def _reconstructions(attack_cls: type[Attack], outcome: Any, observations: Sequence[Observation]
                     ) -> tuple[list[Reconstruction], int]:
    """The reconstructions and steps of an isolated fit's outcome, each checked against its problem."""
    items = outcome.get("reconstructions") if isinstance(outcome, dict) else None
    if not isinstance(items, list) or len(items) != len(observations) or not isinstance(outcome.get("steps"), int):
        raise _returned(attack_cls, f"it is no list of {len(observations)} reconstruction(s) with a step count")
    reconstructions = []
    for k, (item, observation) in enumerate(zip(items, observations)):
        shape = (observation.batch_size, *observation.input_shape)
        item = item if isinstance(item, dict) else {}
        images, labels, loss, details = (item.get(key) for key in ("images", "labels", "loss", "details"))
        if not (isinstance(images, Tensor) and images.is_floating_point() and tuple(images.shape) == shape):
            raise _returned(attack_cls, f"problem {k}'s images are not a float tensor of shape {shape}")
        if not (isinstance(labels, Tensor) and labels.dtype == torch.int64 and tuple(labels.shape) == shape[:1]):
            raise _returned(attack_cls, f"problem {k}'s labels are not an int64 tensor of shape {shape[:1]}")
        try:
            details = json.loads(details)
        except (TypeError, ValueError, RecursionError):
            details = None
        if not isinstance(loss, float) or not isinstance(details, dict):
            raise _returned(attack_cls, f"problem {k}'s loss is not a number, or its details not a JSON object")
        reconstructions.append(Reconstruction(images=images, labels=labels, loss=loss, details=details))
    return reconstructions, outcome["steps"]


def serve(folder: Path) -> None:
    """The sandbox's side of an isolated fit: its input from ``folder``, the fit, its outcome (the
    reconstructions, or the error as [kind, type name, message]; the kind is the failure class of
    :data:`~benchmark.errors.ATTACK_FAILURES` it is, ``error``, ``memory`` or ``crash``) left in ``folder``."""
    from benchmark.runner import FitOptions, fit

    try:
        payload = torch.load(folder / INPUT, map_location="cpu", weights_only=True)
        torch.set_num_threads(payload["threads"])
        module, name = payload["attack"]
        attack_cls = importlib.import_module(module)
        for part in name.split("."):
            attack_cls = getattr(attack_cls, part)
        distinct = [Observation.from_record(record) for record in payload["observations"]]
        settings = payload["fit"]
        options = FitOptions(progress=settings["progress"], checkpoint_every=settings["checkpoint_every"],
                             checkpoint=None if settings["checkpoint"] is None else Path(settings["checkpoint"]))
        reconstructions, steps = fit(attack_cls, [distinct[k] for k in payload["problems"]],
                                     attack_cls.Config(**payload["config"]), payload["seeds"], options,
                                     settings["step_offset"])
        outcome: dict[str, Any] = {"steps": int(steps), "reconstructions": [
            {"images": r.images.detach().cpu(), "labels": r.labels.detach().cpu(), "loss": float(r.loss),
             "details": json.dumps(r.details)} for r in reconstructions]}
    except Exception as err:  # every error crosses back as its kind, name and message; its traceback stays here
        failure = [cls.__name__ for cls in ATTACK_FAILURES if isinstance(err, cls)]
        if failure:
            kind = failure[0]
        elif isinstance(err, LeakBenchError):
            kind = "error"
        elif isinstance(err, MemoryError) or "can't allocate memory" in str(err):  # torch's CPU allocator
            kind = "memory"
        else:
            kind = "crash"
            traceback.print_exc()
        outcome = {"error": [kind, type(err).__name__, str(err)]}
    write_atomic(folder / OUTPUT, _saved(outcome))
