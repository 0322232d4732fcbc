"""Performance benchmark of the attack engine, measured side by side in one run.

(1) batched throughput: K problems in one fit against the same K problems fitted one by one, with
the same code; (2) the Lightning training loop against a plain PyTorch loop taking the same steps
(both timed from the first step to the last: Lightning's one-off setup per fit, reported apart as
``lightning_setup_s``, does not grow with the steps); (3) peak memory of one fit of K problems (each
measured in a fresh process); (4) with ``processes`` above 1, a run's wall time with that many
processes sharing its targets against one process.

With ``vs="breaching"`` it measures instead LeakBench's batched fits against breaching (Geiping
et al.; :mod:`benchmark.apps.peers`) attacking the same problems one after another, as its own loop
does: the same attack config, victim weights, images, steps and threads, the two alternated; with
``compile``, LeakBench's objective compiled (``torch.compile``), its one-off compilation reported apart.
"""

from __future__ import annotations

import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer

from benchmark.apps.peers import BreachingPeer
from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.core.errors import SettingError, at_least
from benchmark.core.seeding import problem_seed
from benchmark.core.tables import format_table
from benchmark.data import Samples, load_samples, load_source
from benchmark.fl.observation import Observation
from benchmark.pipeline.config import attack_config, check_applies
from benchmark.pipeline.fit import FitOptions, fit
from benchmark.pipeline.hardware import hardware
from benchmark.pipeline.run import run
from benchmark.pipeline.tasks import load_task
from benchmark.victim.client import Victim


@dataclass(frozen=True)
class PerfSetting:
    task: str = "cifar10-lenetzhu-b1"
    attack: str = "inverting_gradients"
    steps: int = 50
    sizes: tuple[int, ...] = (1, 8, 32)
    repeats: int = 3  # the Lightning fit and the plain loop alternate this many times; medians are reported
    processes: int = 1  # above 1: also time a run of 20 targets with this many processes against one
    process_steps: int = 2000  # the steps of that run
    vs: str | None = None  # "breaching": time LeakBench against breaching on the same problems instead
    compile: bool = False  # LeakBench's objective compiled (against breaching only)

    def __post_init__(self) -> None:
        if self.vs not in (None, "breaching"):
            raise SettingError(f"perf compares LeakBench with breaching, not with '{self.vs}'")
        if self.compile and self.vs is None:
            raise SettingError(
                "--compile is timed against breaching (--vs breaching), where its one-off compilation is reported apart"
            )
        for name in ("steps", "repeats", "processes", "process_steps"):
            at_least(name, getattr(self, name), 1)
        for size in self.sizes:
            at_least("sizes", size, 1)
        if not issubclass(ATTACKS.get(self.attack), OptimizationAttack):
            optimising = [name for name, cls in ATTACKS if issubclass(cls, OptimizationAttack)]
            raise SettingError(
                f"attack '{self.attack}' is solved in closed form, with no optimisation loop to time; "
                f"perf measures one of {', '.join(optimising)}"
            )


def _problems(setting: PerfSetting, count: int) -> list[tuple[Samples, Observation]]:
    """``count`` problems of the task: (private batch, observation) each, from its first targets."""
    spec = load_task(setting.task)
    source = load_source(spec.data, spec.targets)
    targets = min(count, 20)  # the offline copy holds 20 test images; larger K repeats them
    samples = load_samples(source, [i for t in range(targets) for i in spec.target_indices(t)])
    batch = spec.fl.batch_size
    problems = []
    for k in range(count):
        t = k % targets
        private = Samples(samples.images[t * batch : (t + 1) * batch], samples.labels[t * batch : (t + 1) * batch], "")
        problems.append((private, Victim(spec, t, private, source.num_classes).observe()))
    check_applies(setting.attack, spec, problems[0][1])
    return problems


def _observations(setting: PerfSetting, count: int) -> list[Observation]:
    return [observation for _, observation in _problems(setting, count)]


class _StepClock(pl.Callback):
    """When the first and the last training step of a fit ended (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.first = self.last = None

    def on_train_batch_end(self, *args: Any) -> None:
        self.last = time.perf_counter()
        self.first = self.first or self.last


def _timed_fit(setting: PerfSetting, observations: list[Observation]) -> tuple[float, float, float]:
    """(whole fit, its training loop alone, its steady time) in seconds: the steady time is the
    fit's steps at the pace of those after the first, without the one-off costs of building the
    Trainer, the first step and (``compile``) compiling the objective."""
    cls = ATTACKS.get(setting.attack)
    config = attack_config(cls, {"max_steps": setting.steps})
    seeds = [problem_seed(0, k, 0) for k in range(len(observations))]
    timer, clock = Timer(), _StepClock()
    start = time.perf_counter()
    _, steps = fit(cls, observations, config, seeds, FitOptions(callbacks=(timer, clock), compile=setting.compile))
    whole = time.perf_counter() - start
    steady = (clock.last - clock.first) * steps / (steps - 1) if steps > 1 else whole
    return whole, timer.time_elapsed("train"), steady


def _timed_plain_loop(setting: PerfSetting, observations: list[Observation]) -> float:
    """The same steps as the attack's ``training_step``, in a plain PyTorch loop without Lightning."""
    cls = ATTACKS.get(setting.attack)
    config = attack_config(cls, {"max_steps": setting.steps})
    attack: OptimizationAttack = cls(observations, config, [problem_seed(0, k, 0) for k in range(len(observations))])
    optimizer, schedulers = attack.optimizer_and_schedulers()
    start = time.perf_counter()
    for _ in range(setting.steps):
        attack.optimise_step(optimizer, lambda loss, inputs: loss.backward(inputs=inputs), schedulers)
    return time.perf_counter() - start


def _peer(setting: PerfSetting, problems: list[tuple[Samples, Observation]]) -> BreachingPeer:
    cls = ATTACKS.get(setting.attack)
    return BreachingPeer(
        load_task(setting.task), setting.attack, attack_config(cls, {"max_steps": setting.steps}), problems[0][1]
    )


def _timed_breaching(peer: BreachingPeer, problems: list[tuple[Samples, Observation]]) -> float:
    """breaching's attack on the problems one after another, as its own loop runs them: the seconds
    spent in ``reconstruct`` (its user's update is computed first, untimed)."""
    elapsed = 0.0
    for private, observation in problems:
        round_ = peer.observe(observation.model, private.images, private.labels)
        start = time.perf_counter()
        peer.reconstruct(round_)
        elapsed += time.perf_counter() - start
    return elapsed


def peak_memory_mib(setting: PerfSetting, size: int, framework: str = "leakbench") -> float:
    """Peak resident memory of a fresh process attacking ``size`` problems (LeakBench: one fit;
    breaching: one after another), in MiB."""
    work = (
        "p._timed_fit(s, p._observations(s, {size}))"
        if framework == "leakbench"
        else "q = p._problems(s, {size}); p._timed_breaching(p._peer(s, q), q)"
    ).format(size=size)
    code = (
        f"import resource, benchmark.apps.perf as p; s = p.PerfSetting(task={setting.task!r}, attack={setting.attack!r}, "
        f"steps={setting.steps}, vs={setting.vs!r}, compile={setting.compile}); {work}; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(output.strip().splitlines()[-1]) / 1024


def process_scaling(setting: PerfSetting) -> dict[str, float]:
    """Wall time of ``benchmark.run`` on 20 targets (the offline copy's) for ``process_steps`` steps
    with one process and with ``setting.processes``, each process taking its share of the targets,
    process launch included."""
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for processes in (1, setting.processes):
            start = time.perf_counter()
            run(
                setting.task,
                setting.attack,
                targets=20,
                max_steps=setting.process_steps,
                logger=None,
                out=Path(folder) / str(processes),
                devices=processes,
            )
            times[processes] = time.perf_counter() - start
    return {
        "one_process_s": times[1],
        f"{setting.processes}_processes_s": times[setting.processes],
        "process_speedup": times[1] / times[setting.processes],
    }


def measure(setting: PerfSetting = PerfSetting()) -> dict[str, Any]:
    """Run the measurements; every ratio compares runs made here, one after the other."""
    if setting.vs == "breaching":
        return against_breaching(setting)
    load = os.getloadavg()[0]
    one = _observations(setting, 1)
    _timed_fit(setting, one)  # warm-up: lazy imports, allocator, kernels
    single = _timed_fit(setting, one)[0]
    rows = []
    for size in setting.sizes:
        observations = _observations(setting, size)
        fits, plains = [], []
        for _ in range(setting.repeats):  # alternated, so that a burst of load hits both alike
            fits.append(_timed_fit(setting, observations))
            plains.append(_timed_plain_loop(setting, observations))
        batched, loop, plain = (
            statistics.median(values) for values in ([f[0] for f in fits], [f[1] for f in fits], plains)
        )
        overhead = statistics.median(f[1] / q for f, q in zip(fits, plains))
        one_by_one = sum(_timed_fit(setting, [o])[0] for o in observations) if size > 1 else single
        rows.append(
            {
                "problems": size,
                "batched_s": batched,
                "one_by_one_s": one_by_one,
                "speedup": one_by_one / batched,
                "lightning_loop_s": loop,
                "plain_loop_s": plain,
                "lightning_overhead": overhead,
                "lightning_setup_s": batched - loop,
                "problem_steps_per_s": size * setting.steps / batched,
                "peak_memory_mib": peak_memory_mib(setting, size),
            }
        )
    largest = rows[-1]
    return {
        **_header(setting, load),
        "rows": rows,
        f"batched_speedup_k{largest['problems']}": largest["speedup"],
        "lightning_overhead": largest["lightning_overhead"],
    } | ({"processes": process_scaling(setting)} if setting.processes > 1 else {})


def _header(setting: PerfSetting, load: float) -> dict[str, Any]:
    """What every report starts with; the load average over the minute before the measurement and
    at its end, since the machine may be shared."""
    return {
        "task": setting.task,
        "attack": setting.attack,
        "steps": setting.steps,
        "repeats": setting.repeats,
        "threads": torch.get_num_threads(),
        "device": hardware("cpu"),
        "load_average": [load, os.getloadavg()[0]],
    } | ({"compiled": True} if setting.compile else {})


def against_breaching(setting: PerfSetting) -> dict[str, Any]:
    """LeakBench's fit of K problems against breaching's loop over the same K problems, for each K
    of ``setting.sizes``, alternated ``repeats`` times (medians; the ratios are medians of the
    paired ratios). ``step_ratio``: LeakBench's time per problem-step over breaching's (lower is
    better); ``speedup``: LeakBench's throughput over breaching's, LeakBench's whole fit counted;
    ``steady_speedup``: the same at the pace of a fit's steps after its first, without its one-off
    costs (``leakbench_one_off_s``: the Trainer, the first step; ``leakbench_first_one_off_s``, those of
    the first of the repeats, which with ``compile`` compiles the objective for K problems, later fits
    of the process reusing it), which a long run amortises; breaching's time is its whole loop in both."""
    load = os.getloadavg()[0]
    problems = _problems(setting, max(setting.sizes))
    peer = _peer(setting, problems)
    _timed_fit(setting, [problems[0][1]])  # warm-up of both: lazy imports, allocator, breaching's TorchScript
    _timed_breaching(peer, problems[:1])
    rows = []
    for size in setting.sizes:
        ours, steady, theirs = [], [], []
        for _ in range(setting.repeats):
            theirs.append(_timed_breaching(peer, problems[:size]))
            whole, _, pace = _timed_fit(setting, [observation for _, observation in problems[:size]])
            ours.append(whole)
            steady.append(pace)
        problem_steps = size * setting.steps
        rows.append(
            {
                "problems": size,
                "breaching_s": statistics.median(theirs),
                "leakbench_s": statistics.median(ours),
                "breaching_ms_per_problem_step": 1000 * statistics.median(theirs) / problem_steps,
                "leakbench_ms_per_problem_step": 1000 * statistics.median(ours) / problem_steps,
                "step_ratio": statistics.median(o / t for o, t in zip(ours, theirs)),
                "speedup": statistics.median(t / o for o, t in zip(ours, theirs)),
                "leakbench_one_off_s": statistics.median(o - p for o, p in zip(ours, steady)),
                "leakbench_first_one_off_s": ours[0] - steady[0],  # compiling K problems' objective, with compile
                "steady_speedup": statistics.median(t / p for p, t in zip(steady, theirs)),
                "breaching_peak_mib": peak_memory_mib(setting, size, "breaching"),
                "leakbench_peak_mib": peak_memory_mib(setting, size),
            }
        )
    return {
        **_header(setting, load),
        "vs": "breaching " + importlib.metadata.version("breaching"),
        "rows": rows,
        f"breaching_step_ratio_k{rows[0]['problems']}": rows[0]["step_ratio"],
        f"breaching_speedup_k{rows[-1]['problems']}": rows[-1]["speedup"],
        f"breaching_steady_speedup_k{rows[-1]['problems']}": rows[-1]["steady_speedup"],
    }


def format_report(report: dict[str, Any]) -> str:
    load = "load average {:.2f} before, {:.2f} after".format(*report["load_average"])
    if "vs" in report:
        header = (
            f"{report['attack']} on {report['task']}, {report['steps']} steps per problem, {report['threads']} "
            f"threads, {report['device']}, {load}: LeakBench's fit of K problems against {report['vs']} "
            f"attacking them one after another; medians of {report['repeats']} alternated runs"
            + ("; LeakBench's objective compiled (torch.compile)" if report.get("compiled") else "")
        )
        columns = (
            "problems",
            "breaching_s",
            "leakbench_s",
            "breaching_ms_per_problem_step",
            "leakbench_ms_per_problem_step",
            "step_ratio",
            "speedup",
            "leakbench_one_off_s",
            "leakbench_first_one_off_s",
            "steady_speedup",
            "breaching_peak_mib",
            "leakbench_peak_mib",
        )
        return header + "\n" + format_table(report["rows"], columns)
    header = (
        f"{report['attack']} on {report['task']}, {report['steps']} steps per fit, {report['threads']} threads, "
        f"{report['device']}, {load}; Lightning and plain loops: medians of {report['repeats']} alternated runs"
    )
    columns = (
        "problems",
        "batched_s",
        "one_by_one_s",
        "speedup",
        "lightning_loop_s",
        "plain_loop_s",
        "lightning_overhead",
        "lightning_setup_s",
        "problem_steps_per_s",
        "peak_memory_mib",
    )
    text = header + "\n" + format_table(report["rows"], columns)
    if "processes" in report:
        scaling = report["processes"]
        text += "\n\n20 targets, one process against several: " + ", ".join(f"{k} {v:.3g}" for k, v in scaling.items())
    return text
