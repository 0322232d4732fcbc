"""Isolated fits (``--isolated``): the attack runs in a sandbox and sees only its observations.

The trust model, what is withheld and what is not: ``docs/trust.md``. This process draws the private
batch, computes the observations and scores the reconstructions; the fit itself
(:func:`benchmark.pipeline.fit.fit`) runs in a fresh process inside :mod:`benchmark.pipeline.sandbox`: no network;
read-only, only the Python installation, leakbench and the attack's own package, the datasets' files
covered; writable, only the fit's folder; a memory, time and file-size limit; no privileges. The two
sides exchange files of tensors and plain values in the fit's folder, each read with
``torch.load(weights_only=True)``, so neither side runs code the other wrote.

A plugin's attack is not imported in this process at all: :meth:`Isolation.describe` imports it by
its entry point in a sandbox of its own (no observations), which builds its config; this process
takes the class's name and the config values back as untrusted data, and the fit's sandbox asks the
attack's ``unsupported()`` of its observations before fitting.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import keyword
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from benchmark.attacks.base import Attack, Reconstruction
from benchmark.core import errors
from benchmark.core.code import find_spec
from benchmark.core.downloads import cache_dir
from benchmark.core.errors import (
    ATTACK_FAILURES,
    AttackError,
    LeakBenchError,
    PluginError,
    SettingError,
    at_least,
    attack_error,
    finite,
    first_line,
)
from benchmark.core.files import write_atomic
from benchmark.core.registry import load_failure
from benchmark.data import DATASETS
from benchmark.fl.observation import Observation
from benchmark.models import MODELS
from benchmark.pipeline import sandbox
from benchmark.protocol.spec import FLSpec, Normalization

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

INPUT, OUTPUT, CONFIG = "input.pt", "output.pt", "sandbox.json"
NOBODY = 65534  # the user an isolated fit runs as where leakbench runs as root
SYSTEM = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
)
OTHER_PACKAGES = (
    "lib*/python3*/site-packages",
    "lib*/python3*/dist-packages",
    "lib/python3/dist-packages",
    "local/lib*/python3*/site-packages",
    "local/lib*/python3*/dist-packages",
)
CONTEXT = (
    " (it ran --isolated: no network; it reads only the Python installation, leakbench and its own package, "
    "and writes only its fit folder; see docs/trust.md)"
)
DESCRIPTION_BYTES = 1 << 20  # the most a description may hold


class Described:
    """A plugin's attack as an isolated run knows it, never imported here: by its entry point
    (``module``:``attribute``, read from the package's metadata, which the sandboxes import) and the
    name its class reported. It stands for the class where a fit takes one (the three names a fit
    reads of a class: ``__module__``, ``__qualname__``, ``__name__``)."""

    def __init__(self, module: str, attribute: str, name: str) -> None:
        self.__module__, self.__qualname__, self.__name__ = module, attribute, name

    def __repr__(self) -> str:
        return f"Described({self.__module__}:{self.__qualname__})"


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
            raise SettingError(
                f"--isolated runs the attack on the CPU (its sandbox passes in no GPU device), not on "
                f"--accelerator {accelerator}: give --accelerator cpu, or run without --isolated only an "
                f"attack whose code you have read (docs/trust.md)"
            )
        if (problem := _probe()) is not None:
            raise SettingError(problem)

    def describe(
        self, point: EntryPoint, overrides: dict[str, Any], max_steps_cap: int | None
    ) -> tuple[Described, Any]:
        """A plugin's attack and its config, importing nothing of it here: a sandbox (given no
        observation) imports ``point`` and builds the config from ``overrides`` as
        :func:`benchmark.pipeline.config.attack_config` does; what it reports, checked as untrusted data (a
        class name, a JSON object of plain values), comes back as a :class:`Described` and a frozen
        dataclass of those values. An entry point that does not load is a :class:`PluginError`, as unisolated."""
        attack = Described(point.module, point.attr, point.name)
        payload = {
            "attack": [point.module, point.attr],
            "threads": torch.get_num_threads(),
            "describe": {"name": point.name, "overrides": overrides, "max_steps_cap": max_steps_cap},
        }
        what = f"description of attack '{point.name}'"
        with tempfile.TemporaryDirectory(prefix="leakbench-describe-") as folder:
            outcome = self._outcome(attack, Path(folder), payload, what, "", limit=DESCRIPTION_BYTES)
        outcome = outcome if isinstance(outcome, dict) else {}
        if (
            isinstance(error := outcome.get("error"), list)
            and len(error) == 3
            and error[0] == "load"
            and all(isinstance(part, str) for part in error)
        ):
            raise PluginError(
                f"attack '{point.name}' cannot be used: {load_failure(point, error[1], first_line(error[2]))}"
            )
        if error is not None:
            raise self._raised(attack, error, what, "")
        name, values = outcome.get("name"), outcome.get("config")
        if not (
            _identifier(name)
            and isinstance(values, dict)
            and all(map(_identifier, values))
            and all(map(_plain, values.values()))
        ):
            raise _returned(attack, "its description is not a class name and a config of plain values")
        return Described(point.module, point.attr, name), described_config(name, values)

    def fit(
        self,
        attack_cls: type[Attack] | Described,
        observations: Sequence[Observation],
        config: Any,
        seeds: Sequence[int],
        options: Any,
        step_offset: int,
    ) -> tuple[list[Reconstruction], int]:
        """:func:`benchmark.pipeline.fit.fit` in a sandbox, in the checkpoint's folder (else a temporary one):
        its reconstructions, read back and checked, and its steps; what the fit raised, raised here."""
        where = f"{attack_cls.__module__}.{attack_cls.__qualname__}"
        if attack_cls.__module__ == "__main__" or "<locals>" in attack_cls.__qualname__:
            raise SettingError(
                f"attack {where} cannot be imported by an isolated fit, which starts a new process: "
                f"define it at the top of a module of a package"
            )
        checkpoint = options.checkpoint.absolute() if options.checkpoint is not None else None
        folder = checkpoint.parent if checkpoint is not None else Path(tempfile.mkdtemp(prefix="leakbench-fit-"))
        folder.mkdir(parents=True, exist_ok=True)
        what = f"fit of {len(observations)} problem(s)"
        try:
            options = dataclasses.replace(options, checkpoint=checkpoint)
            outcome = self._outcome(
                attack_cls,
                folder,
                _payload(attack_cls, observations, config, seeds, options, step_offset),
                what,
                ", or lower --problems",
            )
            if isinstance(outcome, dict) and "error" in outcome:
                raise self._raised(attack_cls, outcome["error"], what, ", or lower --problems")
            return _reconstructions(attack_cls, outcome, observations)
        finally:
            for name in (INPUT, OUTPUT):
                (folder / name).unlink(missing_ok=True)
            if checkpoint is None:
                shutil.rmtree(folder, ignore_errors=True)

    def _outcome(
        self,
        attack_cls: type[Attack] | Described,
        folder: Path,
        payload: dict[str, Any],
        what: str,
        fix: str,
        limit: int | None = None,
    ) -> Any:
        """What :func:`serve` left for ``payload`` in ``folder`` (at most ``limit`` bytes), in a sandbox that
        shows ``attack_cls``'s package; the sandbox's own problems (its time limit, its setup, an
        unreadable outcome) raised."""
        write_atomic(folder / INPUT, _saved(payload))
        try:
            process = _sandboxed(folder, sandbox_config(attack_cls.__module__, self), timeout=self.time_limit)
        except subprocess.TimeoutExpired:
            raise SettingError(
                f"the isolated {what} ran past its time limit of {self.time_limit} s; raise --time-limit{fix}"
            ) from None
        if process.returncode == sandbox.SETUP_FAILED and (folder / sandbox.SETUP_ERROR).is_file():
            raise SettingError(f"--isolated could not make its sandbox: {_setup_error(folder)}")
        try:
            return _read_back(folder / OUTPUT, limit)
        except ValueError as err:
            raise _returned(
                attack_cls,
                f"{err}; its process ended with status {process.returncode} (its limits: "
                f"{self.memory_limit:g} GiB of memory, {self.time_limit} s)",
            ) from None

    def _raised(self, attack_cls: type[Attack] | Described, error: Any, what: str, fix: str) -> Exception:
        """What to raise for an error the sandbox reported as [kind, type name, message] (in its ``what``)."""
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
            return SettingError(
                f"the isolated {what} ran out of its memory limit of {self.memory_limit:g} GiB "
                f"({first_line(message, 100)}); raise --memory-limit{fix}"
            )
        return attack_error(attack_cls.__name__, name, first_line(message), CONTEXT)


def described_config(name: str, values: dict[str, Any]) -> Any:
    """A frozen dataclass instance holding ``values`` (a described attack's config; it pickles, for
    the processes of a multi-process run, as this call)."""

    def reduce(config: Any) -> tuple[Any, ...]:
        return described_config, (name, _values(config))

    return dataclasses.make_dataclass(f"{name}Config", list(values), frozen=True, namespace={"__reduce__": reduce})(
        **values
    )


def sandbox_config(module: str | None, isolation: Isolation, probe: bool = False) -> dict[str, Any]:
    """What the sandbox of an attack in ``module`` is made of (:mod:`benchmark.pipeline.sandbox`): the paths it
    shows read-only, those it covers, the Python path to leakbench and the attack, its limits, and the
    user it runs as (None: the one running leakbench, in a user namespace)."""
    packages = [
        _locations(name)
        for name in dict.fromkeys(["benchmark", *([module.partition(".")[0]] if module is not None else [])])
    ]
    python = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    readable = _outermost(
        [path for path in (*SYSTEM, *python, *(p for paths in packages for p in paths)) if os.path.lexists(path)]
    )
    on_path = {os.path.realpath(entry) for entry in sys.path if entry}
    other = [
        str(path)
        for tree in readable
        if os.path.isdir(tree) and not os.path.islink(tree)
        for pattern in OTHER_PACKAGES
        for path in Path(tree).glob(pattern)
        if os.path.realpath(path) not in on_path
    ]
    covered = [*(str(path) for _, source in DATASETS for path in source.package_files()), str(cache_dir()), *other]
    hidden = [
        path
        for path in dict.fromkeys(covered)
        if os.path.exists(path) and any(_inside(path, tree) for tree in readable)
    ]
    memory = int(isolation.memory_limit * 2**30)
    return {
        "readable": readable,
        "hidden": hidden,
        "python_path": list(dict.fromkeys(str(Path(path).parent) for paths in packages for path in paths)),
        "limits": {"memory": memory, "file_size": memory, "cpu": isolation.time_limit * (os.cpu_count() or 1)},
        "user": NOBODY if os.geteuid() == 0 else None,
        "probe": probe,
    }


def _locations(package: str) -> list[str]:
    """The folders (or the file) of a top-level module, found without importing it (none: not found)."""
    spec = find_spec(package)
    if spec is None:
        return []
    return [str(path) for path in spec.submodule_search_locations or []] or (
        [str(spec.origin)] if spec.has_location else []
    )


def _identifier(name: Any) -> bool:
    """Whether ``name`` can name a class or a dataclass field (at most 100 characters, no keyword, no dunder name)."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and len(name) <= 100
        and not keyword.iskeyword(name)
        and not name.startswith("__")
    )


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made of plain values only (None, bool, int, float, str, lists, tuples and
    str-keyed dicts of them, at most 20 deep)."""
    if depth > 20:
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item, depth + 1) for key, item in value.items())
    return value is None or isinstance(value, (bool, int, float, str))


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


def _sandboxed(
    folder: Path, config: dict[str, Any], timeout: float, capture: bool = False
) -> subprocess.CompletedProcess:
    """Run :mod:`benchmark.pipeline.sandbox` on ``folder`` as ``config`` says; its output goes to standard error
    (captured, with ``capture``)."""
    root = tempfile.mkdtemp(prefix="leakbench-root-")  # stays empty here: the mounts are the sandbox's own
    try:
        write_atomic(folder / CONFIG, json.dumps({**config, "root": root, "writable": str(folder)}))
        if config["user"] is not None:
            os.chown(folder, config["user"], config["user"])
        kept = {
            name: value
            for name, value in os.environ.items()  # the numerical libraries' settings, no others
            if name.startswith(("OMP_", "MKL_", "KMP_", "OPENBLAS_")) or name in ("LANG", "LC_ALL", "TZ")
        }
        environment = {
            **kept,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(folder),
            "TMPDIR": str(folder),
            "CUDA_VISIBLE_DEVICES": "",
        }
        command = [
            str(shutil.which("unshare")),
            *_flags(),
            "--",
            sys.executable,
            "-I",
            "-B",
            sandbox.__file__,
            str(folder / CONFIG),
        ]
        return subprocess.run(
            command,
            env=environment,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            stdout=subprocess.PIPE if capture else 2,
            stderr=subprocess.PIPE if capture else None,
            text=True,
        )
    finally:
        (folder / CONFIG).unlink(missing_ok=True)
        os.rmdir(root)


@functools.cache
def _probe() -> str | None:
    """Why no sandbox can be made here (one line: the problem and the fix), or None: a trial sandbox."""
    if shutil.which("unshare") is None:
        return (
            "--isolated needs util-linux's unshare command, which is not on PATH; install util-linux "
            "(apt-get install util-linux), or run without --isolated only an attack whose code you have read"
        )
    fix = (
        "run leakbench as root on a machine (or in a container started with --privileged) that allows new namespaces"
        if os.geteuid() == 0
        else "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and, on Ubuntu, "
        "kernel.apparmor_restrict_unprivileged_userns=0), or run leakbench as root"
    )
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


def _payload(
    attack_cls: type[Attack],
    observations: Sequence[Observation],
    config: Any,
    seeds: Sequence[int],
    options: Any,
    step_offset: int,
) -> dict[str, Any]:
    """The input of an isolated fit: tensors and plain values only (each distinct observation once)."""
    distinct = list({id(o): o for o in observations}.values())
    position = {id(o): k for k, o in enumerate(distinct)}
    return {
        "attack": [attack_cls.__module__, attack_cls.__qualname__],
        "config": _values(config),
        "seeds": [int(seed) for seed in seeds],
        "observations": [observation_record(o) for o in distinct],
        "problems": [position[id(o)] for o in observations],
        "threads": torch.get_num_threads(),
        "fit": {
            "progress": options.progress,
            "checkpoint_every": options.checkpoint_every,
            "step_offset": step_offset,
            "checkpoint": None if options.checkpoint is None else str(options.checkpoint),
        },
    }


def _values(config: Any) -> dict[str, Any]:
    """A config dataclass's values by field name."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def _saved(content: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def _regular_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, a pipe or a device the sandbox left
    there) of at most ``limit`` bytes; ValueError otherwise."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"no readable {path.name} ({err.strerror})") from None
    with os.fdopen(handle, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if limit is not None and status.st_size > limit:
            raise ValueError(f"{path.name} holds more than {limit} bytes")
        return file.read()


def _read_back(path: Path, limit: int | None = None) -> Any:
    """What the sandbox left at ``path`` (at most ``limit`` bytes), loaded with ``weights_only=True``;
    ValueError where it is not tensors and plain values."""
    content = _regular_bytes(path, limit)
    try:
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file or a pickle of anything else: refused, whatever torch raises
        raise ValueError(
            f"{path.name} is not tensors and plain values ({type(err).__name__}: {first_line(err, 100)})"
        ) from None


def _returned(attack_cls: type[Attack], problem: str) -> AttackError:
    return AttackError(
        f"attack {attack_cls.__name__} ran --isolated and its outcome cannot be used: {problem}; this is "
        f"not a result, so no target row was written: fix the attack"
    )


def _reconstructions(
    attack_cls: type[Attack], outcome: Any, observations: Sequence[Observation]
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


def observation_record(observation: Observation) -> dict[str, Any]:
    """``observation`` as tensors and JSON-ready values, for ``torch.save`` and a reader that loads with
    ``weights_only=True`` (no object that runs code crosses): the model as its registered architecture,
    mode and state."""
    o = observation
    return {
        "model": MODELS.name_of(type(o.model)),
        "training": o.model.training,
        "state": o.model.state_dict(),
        "update": list(o.update),
        "fl": o.fl.model_dump(mode="json"),
        "batch_size": o.batch_size,
        "input_shape": list(o.input_shape),
        "num_classes": o.num_classes,
        "normalization": None if o.normalization is None else o.normalization.model_dump(mode="json"),
        "labels": o.labels,
        "bn_statistics": None if o.bn_statistics is None else [list(layer) for layer in o.bn_statistics],
    }


def observation_from_record(record: dict[str, Any]) -> Observation:
    """The observation :func:`observation_record` made."""
    channels, size, _ = shape = tuple(record["input_shape"])
    model = MODELS.get(record["model"])(channels, size, record["num_classes"])
    model.load_state_dict(record["state"])
    statistics = record["bn_statistics"]
    return Observation(
        model=model.train(record["training"]),
        update=tuple(record["update"]),
        fl=FLSpec.model_validate(record["fl"]),
        batch_size=record["batch_size"],
        input_shape=shape,
        num_classes=record["num_classes"],
        normalization=None
        if record["normalization"] is None
        else Normalization.model_validate(record["normalization"]),
        labels=record["labels"],
        bn_statistics=None if statistics is None else tuple(tuple(layer) for layer in statistics),
    )
