"""Studies across tasks: how an attack's success changes with one protocol setting.

The defence study runs one attack on one task under a defence at several strengths and reports,
per strength, the attack's metrics (privacy) beside the victim's test accuracy after a short
training run with that defence (utility, :mod:`benchmark.apps.utility`): the privacy-utility trade-off.

The training study runs one attack on one task's victim untrained and after E epochs of training on
the dataset's training split (:mod:`benchmark.apps.training`, ``victim.state: trained@E``) and reports,
per E, the attack's metrics beside the victim's test accuracy: how leakage changes as the model
learns (the seed protocols attack untrained victims; Geiping et al. 2020, Table 1, compare trained
and untrained ResNets).

The batch-size study (GRNN, Ren et al. 2022, Table 3) runs attacks on every batch-size variant of a
task family (``mnist-lenet5`` → ``mnist-lenet5-b1``, ``-b4``, …) under several attack seeds and
reports, per batch size, the share of private images recovered under named success criteria
(:data:`CRITERIA`; GRNN states none, its authors' later FedKL code counts SSIM ≥ 0.6 in scikit-image's
default SSIM) with mean PSNR and SSIM, and their spread over the seeds. Each (attack, batch size,
seed) is an ordinary run folder, so an interrupted study resumes.
"""

from __future__ import annotations

import io
import json
import logging
import re
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.apps.training import held_out_accuracy, trained_victim
from benchmark.apps.utility import UtilitySetting, measure_utility
from benchmark.attacks import ATTACKS
from benchmark.core.errors import DataUnavailableError, NotApplicableError, SpecError
from benchmark.core.files import write_atomic
from benchmark.core.registry import Registry, did_you_mean
from benchmark.data import load_source
from benchmark.defenses import DEFENSES, defense_record, with_strength
from benchmark.metrics import metric_info
from benchmark.pipeline.result import Result, finite_or_null
from benchmark.pipeline.run import run
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.loading import TASKS
from benchmark.protocol.spec import DefenseSpec, TaskSpec
from benchmark.victim.client import build_model
from benchmark.victim.trained import BATCH_SIZE, LEARNING_RATE, MOMENTUM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Criterion:
    """When an image counts as recovered: ``metric`` (a per-image value of the run) ≥ ``threshold``."""

    name: str
    metric: str
    threshold: float
    source: str

    def describe(self) -> str:
        return f"{metric_info(self.metric).title} >= {self.threshold:g}"


CRITERIA: Registry[Criterion] = Registry("success criterion")
CRITERIA.add(
    "fedkl-asr",
    Criterion(
        "fedkl-asr",
        "ssim_skimage7",
        0.6,
        "Rand2AI/FedKL evaluation_metrics.py, Quantitation.ASR ('successfully reconstructed if SSIM >= 0.6'), with its "
        "SSIM: scikit-image's defaults on 8-bit images; GRNN's authors' later code (the GRNN paper states no criterion)",
    ),
)
CRITERIA.add(
    "ssim-0.6", Criterion("ssim-0.6", "ssim", 0.6, "the reference SSIM (Wang et al. 2004) at FedKL's threshold 0.6")
)
CRITERIA.add(
    "psnr-40",
    Criterion(
        "psnr-40",
        "psnr",
        40.0,
        "an image recovered exactly: PSNR >= 40 dB on [0, 1] images (the threshold of LeakBench's imprint "
        "protocols, for Robbing the Fed's verbatim copies; the paper's own threshold is not stated here)",
    ),
)
DEFAULT_CRITERIA = ("fedkl-asr", "ssim-0.6")


def family_tasks(family: str) -> dict[int, str]:
    """The batch-size variants ``{family}-b{B}`` of a task family, by B."""
    pattern = re.compile(rf"{re.escape(family)}-b(\d+)")
    found = {int(m.group(1)): name for name in TASKS.names() if (m := pattern.fullmatch(name))}
    if not found:
        families = sorted({name.rsplit("-b", 1)[0] for name in TASKS.names() if re.search(r"-b\d+$", name)})
        raise SpecError(
            f"no tasks named '{family}-bB'{did_you_mean(family, families)}; task families: {', '.join(families)}"
        )
    return dict(sorted(found.items()))


@dataclass
class StudyCell:
    """One attack at one batch size under one seed: images recovered per criterion, means over its images."""

    attack: str
    batch_size: int
    task: str
    seed: int = 0
    targets: int = 0
    images: int = 0
    recovered: dict[str, int] = field(default_factory=dict)  # criterion -> images recovered
    psnr: float | None = None
    ssim: float | None = None
    label_accuracy: float | None = None
    unavailable: str | None = None  # why the cell has no result (data missing, attack not applicable)

    def success_rate(self, criterion: str) -> float | None:
        return self.recovered[criterion] / self.images if self.images and criterion in self.recovered else None


def cell_from_result(result: Result, batch_size: int, criteria: Sequence[Criterion], seed: int = 0) -> StudyCell:
    """Success counted per image under each criterion; the images of a failed target count as not recovered."""
    images = sum(len(row.indices) for row in result.targets)
    recovered = {
        c.name: sum(
            value is not None and value >= c.threshold
            for row in result.targets
            for value in row.metrics.get(c.metric, [])
        )
        for c in criteria
    }
    summary = result.summary
    return StudyCell(
        attack=result.attack,
        batch_size=batch_size,
        task=result.task,
        seed=seed,
        targets=len(result.targets),
        images=images,
        recovered=recovered,
        psnr=summary.get("psnr"),
        ssim=summary.get("ssim"),
        label_accuracy=summary.get("label_accuracy"),
    )


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean, minimum and maximum of the measured values (None where none was measured)."""
    measured = [v for v in values if v is not None]
    if not measured:
        return {"mean": None, "min": None, "max": None}
    return {"mean": sum(measured) / len(measured), "min": min(measured), "max": max(measured)}


@dataclass
class BatchSizeStudy:
    family: str
    criteria: list[Criterion]
    seeds: list[int]
    cells: list[StudyCell] = field(default_factory=list)

    def groups(self) -> dict[tuple[str, int], list[StudyCell]]:
        """The cells of each (attack, batch size), one per seed, in the order they ran."""
        groups: dict[tuple[str, int], list[StudyCell]] = {}
        for cell in self.cells:
            groups.setdefault((cell.attack, cell.batch_size), []).append(cell)
        return groups

    def summary(self) -> list[dict[str, Any]]:
        """Per (attack, batch size): each criterion's success rate and the means' spread over the seeds."""
        rows = []
        for (attack, batch_size), cells in self.groups().items():
            measured = [c for c in cells if c.unavailable is None]
            row: dict[str, Any] = {
                "attack": attack,
                "batch_size": batch_size,
                "seeds": len(measured),
                "images": measured[0].images if measured else 0,
                "unavailable": next((c.unavailable for c in cells if c.unavailable), None),
            }
            for criterion in self.criteria:
                row[criterion.name] = spread([c.success_rate(criterion.name) for c in measured])
            for name in ("psnr", "ssim", "label_accuracy"):
                row[name] = spread([getattr(c, name) for c in measured])
            rows.append(row)
        return rows

    def largest_recovered(self, attack: str, criterion: str, share: float = 0.5) -> int | None:
        """The largest batch size at which at least ``share`` of the images are recovered (mean over seeds)."""
        sizes = [
            row["batch_size"]
            for row in self.summary()
            if row["attack"] == attack and row[criterion]["mean"] is not None and row[criterion]["mean"] >= share
        ]
        return max(sizes, default=None)

    def as_dict(self) -> dict[str, Any]:
        attacks = dict.fromkeys(c.attack for c in self.cells)
        return {
            "study": "batch-size",
            "family": self.family,
            "seeds": self.seeds,
            "criteria": [{**asdict(c), "description": c.describe()} for c in self.criteria],
            "largest_batch_recovered": {
                c.name: {a: self.largest_recovered(a, c.name) for a in attacks} for c in self.criteria
            },
            "summary": self.summary(),
            "cells": [asdict(c) for c in self.cells],
        }


def batch_size_study(
    family: str,
    attacks: Sequence[str],
    *,
    batch_sizes: Sequence[int] | None = None,
    criteria: Sequence[str] = DEFAULT_CRITERIA,
    seeds: Sequence[int] = (0,),
    out: str | Path,
    targets: int | None = None,
    max_steps: int | None = None,
    accelerator: str = "cpu",
    progress: bool = False,
) -> BatchSizeStudy:
    """Run ``attacks`` on the family's batch-size variants under each seed (run folders
    ``out/TASK/ATTACK/seed-S``) and write ``study.json`` and ``success-rate.png`` into ``out``; a cell
    whose data is missing is reported unavailable, not fatal."""
    chosen = [CRITERIA.get(name) for name in criteria]  # unknown names fail before any work
    if not chosen or not seeds:
        raise SpecError("a batch-size study needs at least one success criterion and one seed")
    for name in attacks:
        ATTACKS.get(name)
    tasks = family_tasks(family)
    if batch_sizes is not None:
        missing = sorted(set(batch_sizes) - set(tasks))
        if missing:
            raise SpecError(f"family '{family}' has no batch sizes {missing}; it has {list(tasks)}")
        tasks = {b: tasks[b] for b in sorted(batch_sizes)}
    out = Path(out)
    study = BatchSizeStudy(family=family, criteria=chosen, seeds=list(seeds))
    for attack in attacks:
        for batch_size, task in tasks.items():
            for seed in seeds:
                log.info("%s on %s, seed %d", attack, task, seed)
                try:
                    result = run(
                        task,
                        attack,
                        targets=targets,
                        max_steps=max_steps,
                        seed=seed,
                        out=out / task / attack / f"seed-{seed}",
                        accelerator=accelerator,
                        progress=progress,
                    )
                    cell = cell_from_result(result, batch_size, chosen, seed)
                except (DataUnavailableError, NotApplicableError) as err:
                    cell = StudyCell(
                        attack=ATTACKS.canonical(attack),
                        batch_size=batch_size,
                        task=task,
                        seed=seed,
                        unavailable=str(err),
                    )
                study.cells.append(cell)
                write_atomic(out / "study.json", json.dumps(finite_or_null(study.as_dict()), indent=2))
    plot_success(study, out / "success-rate.png")
    return study


def new_figure(width: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt.subplots(1, 1 if width < 6 else 2, figsize=(width, 3.5))


def save_figure(figure, path: Path) -> Path:
    from matplotlib import pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return write_atomic(path, buffer.getvalue())


def plot_success(study: BatchSizeStudy, path: Path) -> Path:
    """Success rate against batch size (log₂ axis) under the first criterion, one line per attack, the
    seeds' range as error bars, as a PNG."""
    figure, axes = new_figure(5)
    criterion = study.criteria[0]
    rows = [row for row in study.summary() if row[criterion.name]["mean"] is not None]
    for attack in dict.fromkeys(row["attack"] for row in rows):
        mine = [row[criterion.name] | {"b": row["batch_size"]} for row in rows if row["attack"] == attack]
        means = [100 * r["mean"] for r in mine]
        errors = [[m - 100 * r["min"] for m, r in zip(means, mine)], [100 * r["max"] - m for m, r in zip(means, mine)]]
        axes.errorbar([r["b"] for r in mine], means, yerr=errors, marker="o", capsize=3, label=attack)
    axes.set_xscale("log", base=2)
    sizes = sorted({c.batch_size for c in study.cells})
    axes.set_xticks(sizes, labels=[str(size) for size in sizes])
    axes.set_xlabel("batch size")
    axes.set_ylabel(f"images recovered (%, {criterion.describe()})")
    axes.set_ylim(-5, 105)
    axes.set_title(f"{study.family}, {len(study.seeds)} seed(s)")
    axes.legend()
    return save_figure(figure, path)


@dataclass(kw_only=True)
class AttackMeans:
    """An attack's means over the targets of one run, or why it has none."""

    targets: int = 0
    failed: int = 0
    psnr: float | None = None
    ssim: float | None = None
    mse: float | None = None
    label_accuracy: float | None = None
    unavailable: str | None = None  # why the attack has no result (data missing, attack not applicable)

    def measure(self, spec: TaskSpec, attack: str, out: Path, **options: Any) -> None:
        """Run ``attack`` on ``spec`` (an ordinary, resumable run folder ``out``) and keep its means, or
        the reason it cannot run here."""
        try:
            summary = run(spec, attack, out=out, **options).summary
        except (DataUnavailableError, NotApplicableError) as err:
            self.unavailable = str(err)
            return
        self.targets, self.failed = summary["targets"], summary["failed"]
        self.psnr, self.ssim, self.mse = summary["psnr"], summary["ssim"], summary["mse"]
        self.label_accuracy = summary["label_accuracy"]


@dataclass
class DefenseCell(AttackMeans):
    """One strength: the attack's means over its targets (privacy) and the defended victim's test
    accuracy (utility), or why either is unavailable."""

    strength: float
    defense: dict[str, Any]  # the defence as run, with its guarantee for the attacked round
    utility: float | None = None  # test accuracy after the training run, in [0, 1]
    utility_privacy: dict[str, float] | None = None  # the defence's guarantee over the training run
    utility_unavailable: str | None = None  # why utility was not measured (e.g. no training data)


@dataclass
class DefenseStudy:
    task: str
    attack: str
    defense: str
    strength: str  # the parameter varied
    utility_setting: dict[str, Any]
    cells: list[DefenseCell] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": "defense",
            **{k: v for k, v in asdict(self).items() if k != "cells"},
            "cells": [asdict(c) for c in self.cells],
        }


def defense_study(
    task: str,
    attack: str,
    defense: DefenseSpec,
    strengths: Sequence[float],
    *,
    out: str | Path,
    targets: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    utility: UtilitySetting | None = None,
    accelerator: str = "cpu",
    progress: bool = False,
) -> DefenseStudy:
    """Run ``attack`` on ``task`` with ``defense`` at each strength (one resumable run folder each,
    ``out/NAME-STRENGTH``), measure the defended victim's utility, and write ``study.json`` and
    ``privacy-utility.png`` into ``out``. Missing training data makes utility unavailable, with the
    reason, and the study goes on. ``utility``: the training run (default :class:`UtilitySetting`'s)."""
    utility = utility or UtilitySetting()
    spec = load_task(task)
    attack = ATTACKS.canonical(attack)
    cells = [with_strength(defense, value) for value in strengths]  # bad names and values fail before any work
    out = Path(out)
    study = DefenseStudy(
        task=spec.name,
        attack=attack,
        defense=DEFENSES.canonical(defense.name),
        strength=DEFENSES.get(defense.name).strength,
        utility_setting=asdict(utility),
    )
    for value, cell_defense in zip(strengths, cells):
        log.info("%s on %s, %s %s = %g", attack, spec.name, study.defense, study.strength, value)
        cell = DefenseCell(strength=value, defense=defense_record(cell_defense))
        cell.measure(
            spec,
            attack,
            out / f"{study.defense}-{value:g}",
            targets=targets,
            max_steps=max_steps,
            seed=seed,
            defense=cell_defense,
            accelerator=accelerator,
            progress=progress,
        )
        try:
            measured = measure_utility(spec.model_copy(update={"defense": cell_defense}), utility)
            cell.utility, cell.utility_privacy = measured.accuracy, measured.privacy
            study.utility_setting = measured.setting  # the image counts as used (a smaller split whole)
        except DataUnavailableError as err:
            cell.utility_unavailable = str(err)
        study.cells.append(cell)
        write_atomic(out / "study.json", json.dumps(finite_or_null(study.as_dict()), indent=2))
    plot_privacy_utility(study, out / "privacy-utility.png")
    return study


def plot_privacy_utility(study: DefenseStudy, path: Path) -> Path:
    """Left: attack PSNR against the defence's strength; right: PSNR against utility (test accuracy),
    each point labelled with its strength, or the reason utility is unavailable."""
    figure, (by_strength, by_utility) = new_figure(9)
    attacked = [c for c in study.cells if c.psnr is not None]
    by_strength.plot([c.strength for c in attacked], [c.psnr for c in attacked], marker="o")
    positive = [c.strength for c in study.cells if c.strength > 0]
    if positive and min(c.strength for c in study.cells) >= 0:
        by_strength.set_xscale("symlog", linthresh=min(positive))
    by_strength.set_xlabel(f"{study.defense}: {study.strength}")
    by_strength.set_ylabel(f"{study.attack} PSNR (dB, higher leaks more)")
    by_strength.set_title(study.task)
    measured = [c for c in attacked if c.utility is not None]
    for cell in measured:
        by_utility.annotate(
            f"{cell.strength:g}", (100 * cell.utility, cell.psnr), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    by_utility.plot([100 * c.utility for c in measured], [c.psnr for c in measured], marker="o")
    by_utility.set_xlabel("utility: test accuracy (%)")
    by_utility.set_ylabel(f"{study.attack} PSNR (dB)")
    if not measured:
        reason = next((c.utility_unavailable for c in study.cells if c.utility_unavailable), "no cell measured")
        by_utility.text(
            0.5,
            0.5,
            "utility unavailable:\n" + textwrap.fill(reason[:300], 50),
            ha="center",
            va="center",
            fontsize=7,
            transform=by_utility.transAxes,
        )
        by_utility.set_xticks([])
        by_utility.set_yticks([])
    by_utility.set_title("privacy-utility trade-off")
    return save_figure(figure, path)


@dataclass
class TrainingCell(AttackMeans):
    """The attack on the victim after ``epochs`` epochs of training (0: untrained), beside the
    victim's accuracy on the whole test split; ``unavailable`` also says why a victim could not be trained."""

    epochs: int
    victim_sha256: str | None = None  # the trained weights attacked; None: untrained
    test_accuracy: float | None = None  # None where the test split is not here


@dataclass
class TrainingStudy:
    task: str
    attack: str
    training: dict[str, Any]  # the victim's fixed training setting
    cells: list[TrainingCell] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"study": "training", **asdict(self)}


def training_study(
    task: str,
    attack: str,
    epochs: Sequence[int],
    *,
    out: str | Path,
    targets: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: bool = False,
) -> TrainingStudy:
    """Run ``attack`` on ``task``'s victim after each number of training ``epochs``, one resumable run
    folder each (``out/epochs-E``), and write ``study.json`` and ``leakage-training.png`` into ``out``.

    Every row attacks one model for all its targets: E = 0 the init that training starts from
    (``victim.seed``, ``reinit: once``), E > 0 the stored ``trained@E`` weights, trained first where
    the cache lacks them. A missing training split makes a trained row unavailable, with the reason."""
    if not epochs or min(epochs) < 0:
        raise SpecError(f"epochs must be whole numbers from 0 (untrained) on, got {list(epochs)}")
    spec = load_task(task)
    attack = ATTACKS.canonical(attack)
    out = Path(out)
    study = TrainingStudy(
        task=spec.name,
        attack=attack,
        training={"batch_size": BATCH_SIZE, "lr": LEARNING_RATE, "momentum": MOMENTUM, "optimizer": "sgd"},
    )
    for count in epochs:
        log.info("%s on %s, victim trained for %d epoch(s)", attack, spec.name, count)
        cell = TrainingCell(epochs=count)
        victim = {"state": f"trained@{count}"} if count else {"state": "untrained", "reinit": "once"}
        cell_spec = spec.model_copy(update={"victim": spec.victim.model_copy(update=victim)})
        try:
            if count:
                trained = trained_victim(spec, count, accelerator=accelerator, progress=progress)
                cell.victim_sha256, cell.test_accuracy = trained.sha256, trained.test_accuracy
            else:
                source = load_source(spec.data)
                cell.test_accuracy = held_out_accuracy(
                    spec, build_model(spec, source.input_shape(), source.num_classes, spec.victim.seed)
                )
        except DataUnavailableError as err:
            cell.unavailable = str(err)
        else:
            cell.measure(
                cell_spec,
                attack,
                out / f"epochs-{count}",
                targets=targets,
                max_steps=max_steps,
                seed=seed,
                accelerator=accelerator,
                progress=progress,
            )
        study.cells.append(cell)
        write_atomic(out / "study.json", json.dumps(finite_or_null(study.as_dict()), indent=2))
    plot_training(study, out / "leakage-training.png")
    return study


def plot_training(study: TrainingStudy, path: Path) -> Path:
    """Attack PSNR (left axis) and the victim's test accuracy (right axis) against training epochs."""
    figure, psnr_axis = new_figure(5)
    attacked = [c for c in study.cells if c.psnr is not None]
    psnr_axis.plot([c.epochs for c in attacked], [c.psnr for c in attacked], marker="o", color="C0")
    psnr_axis.set_xlabel("victim training epochs (0: untrained)")
    psnr_axis.set_ylabel(f"{study.attack} PSNR (dB, higher leaks more)", color="C0")
    accuracy_axis = psnr_axis.twinx()
    measured = [c for c in study.cells if c.test_accuracy is not None]
    accuracy_axis.plot(
        [c.epochs for c in measured], [100 * c.test_accuracy for c in measured], marker="s", color="C1", linestyle="--"
    )
    accuracy_axis.set_ylabel("victim test accuracy (%)", color="C1")
    accuracy_axis.set_ylim(-5, 105)
    psnr_axis.set_xticks(sorted({c.epochs for c in study.cells}))
    psnr_axis.set_title(study.task)
    return save_figure(figure, path)
