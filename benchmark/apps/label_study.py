"""The label study: every label-recovery rule on the same observations, side by side.

For a task family (its smallest batch-size member's protocol: victim, FL setting, data) and each batch
size B, the victims' rounds of consecutive B-image targets are observed with the labels unknown, and
every rule reads them (:data:`benchmark.attacks.labels.LABEL_RULES`). Per (rule, B): the mean label
accuracy (multiset, order-free: Σ_j min(recovered_j, true_j) / B), the share of targets whose label
multiset is recovered exactly, and the seconds per target; a rule whose assumptions fail is reported
with its reason. As many targets as the data here holds are used (offline: MNIST's and CIFAR's 20
bundled test images, lfwmini's 100 faces). ``study.json`` is rewritten after every cell; a rerun keeps
the cells it holds for the same targets, so an interrupted study resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmark.apps.study import family_tasks, new_figure, save_figure
from benchmark.attacks.labels import LABEL_RULES, recover_labels
from benchmark.core.errors import NotApplicableError, SpecError
from benchmark.core.files import write_atomic
from benchmark.data import Samples, data_available, load_samples, load_source
from benchmark.pipeline.result import finite_or_null
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.spec import TaskSpec
from benchmark.victim.client import Victim

log = logging.getLogger(__name__)

# what a rule's paper reports for its own label accuracy, where REFERENCE.md records it (the others'
# papers are not summarised there, so no figure is given for them)
PAPER_ACCURACY = {
    "idlg": "100 % at B = 1 on MNIST, CIFAR-10, CIFAR-100 (1000 trials; Zhao et al. 2020)",
    "ilrg": "exact on untrained networks under its rank condition (Ma et al. 2023)",
}


@dataclass
class LabelCell:
    """One rule at one batch size over the study's targets."""

    rule: str
    batch_size: int
    targets: int = 0
    accuracy: float | None = None  # mean over targets of the multiset label accuracy
    exact: float | None = None  # share of targets whose label multiset is recovered exactly
    repeated: int = 0  # targets whose true labels repeat a class
    seconds: float | None = None  # per target
    unavailable: str | None = None  # why the rule does not apply (its assumption that fails)
    rows: list[dict[str, Any]] = field(default_factory=list)  # per target: true and recovered labels


@dataclass
class LabelStudy:
    family: str
    task: str  # the member whose protocol every batch size uses
    cells: list[LabelCell] = field(default_factory=list)

    def cell(self, rule: str, batch_size: int) -> LabelCell | None:
        return next((c for c in self.cells if c.rule == rule and c.batch_size == batch_size), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": "labels",
            "family": self.family,
            "task": self.task,
            "accuracy": "multiset: sum over classes of min(recovered, true) / B, mean over targets",
            "paper_accuracy": PAPER_ACCURACY,
            "cells": [asdict(c) for c in self.cells],
        }


def study_spec(task: TaskSpec, batch_size: int, targets: int) -> TaskSpec:
    """``task`` with batches of ``batch_size``, ``targets`` targets and the labels unknown to the server."""
    return task.model_copy(
        update={
            "fl": task.fl.model_copy(update={"batch_size": batch_size}),
            "targets": task.targets.model_copy(update={"count": targets}),
            "threat": task.threat.model_copy(update={"labels": "unknown"}),
        }
    )


def available_targets(task: TaskSpec, batch_size: int, wanted: int) -> int:
    """The most targets (at most ``wanted``) of ``batch_size`` images whose data is here; 0 if none."""
    for count in range(wanted, 0, -1):
        if data_available(study_spec(task, batch_size, count)):
            return count
    return 0


def observe(spec: TaskSpec) -> list[tuple[Tensor, Any]]:
    """Each target's true labels (B,) and the server's observation of its round."""
    source = load_source(spec.data, spec.targets)
    samples = load_samples(source, [i for t in range(spec.targets.count) for i in spec.target_indices(t)])
    size, rounds = spec.fl.batch_size, []
    for number in range(spec.targets.count):
        part = slice(number * size, (number + 1) * size)
        private = Samples(samples.images[part], samples.labels[part], samples.origin)
        rounds.append((private.labels, Victim(spec, number, private, source.num_classes).observe()))
    return rounds


def measure(rule: str, batch_size: int, rounds: list[tuple[Tensor, Any]]) -> LabelCell:
    """Rule ``rule`` on every round: its label accuracy, exact rate and time."""
    cell = LabelCell(rule=rule, batch_size=batch_size, targets=len(rounds))
    accuracies, exact, seconds = [], 0, 0.0
    for truth, observation in rounds:
        start = time.perf_counter()
        try:
            recovered = recover_labels(rule, observation)
        except NotApplicableError as err:
            return LabelCell(rule=rule, batch_size=batch_size, targets=len(rounds), unavailable=str(err))
        seconds += time.perf_counter() - start
        true_counts = torch.bincount(truth, minlength=len(recovered.counts))
        accuracies.append(float(torch.minimum(recovered.counts, true_counts).sum()) / batch_size)
        exact += bool(torch.equal(recovered.counts, true_counts))
        cell.repeated += bool(int(true_counts.max()) > 1)
        cell.rows.append({"labels": sorted(truth.tolist()), "recovered": recovered.labels.tolist()})
    cell.accuracy = sum(accuracies) / len(accuracies)
    cell.exact = exact / len(rounds)
    cell.seconds = seconds / len(rounds)
    return cell


def label_study(
    family: str,
    *,
    rules: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = (1, 4, 8, 16),
    targets: int | None = None,
    out: str | Path,
) -> LabelStudy:
    """Every rule (default: all registered) at every batch size on ``family``'s protocol; writes
    ``study.json`` after each cell and ``label-accuracy.png`` at the end into ``out``."""
    names = [LABEL_RULES.canonical(rule) for rule in (rules or LABEL_RULES.names())]  # unknown names fail first
    if not batch_sizes or min(batch_sizes) < 1:
        raise SpecError(f"a label study needs batch sizes of at least 1, got {list(batch_sizes)}")
    members = family_tasks(family)
    base = load_task(members[min(members)])
    out = Path(out)
    study = LabelStudy(family=family, task=base.name)
    kept = _previous(out / "study.json", family, base.name)
    for batch_size in sorted(set(batch_sizes)):
        count = available_targets(base, batch_size, targets or base.targets.count)
        rounds = None
        for rule in names:
            previous = kept.get((rule, batch_size))
            if previous is not None and previous.targets == count:
                study.cells.append(previous)
                continue
            if count == 0:
                cell = LabelCell(rule, batch_size, unavailable=f"no {batch_size} images of {base.data.dataset} here")
            else:
                rounds = rounds if rounds is not None else observe(study_spec(base, batch_size, count))
                log.info("label rule %s at B = %d on %d targets", rule, batch_size, count)
                cell = measure(rule, batch_size, rounds)
            study.cells.append(cell)
            write_atomic(out / "study.json", json.dumps(finite_or_null(study.as_dict()), indent=2))
    plot_label_accuracy(study, out / "label-accuracy.png")
    return study


def _previous(path: Path, family: str, task: str) -> dict[tuple[str, int], LabelCell]:
    """The cells a previous run of the same study wrote, by (rule, batch size)."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    if stored.get("study") != "labels" or stored.get("family") != family or stored.get("task") != task:
        return {}
    return {(c["rule"], c["batch_size"]): LabelCell(**c) for c in stored["cells"]}


def plot_label_accuracy(study: LabelStudy, path: Path) -> Path:
    """Label accuracy and exact-multiset rate against batch size (log₂ axis), one line per rule."""
    figure, (accuracy_axis, exact_axis) = new_figure(9)
    for number, rule in enumerate(dict.fromkeys(c.rule for c in study.cells)):
        style = {"marker": "osv^Dx+*"[number % 8], "linestyle": ("-", "--", ":", "-.")[number % 4], "label": rule}
        measured = sorted((c.batch_size, c) for c in study.cells if c.rule == rule and c.accuracy is not None)
        if not measured:
            continue
        sizes = [b for b, _ in measured]
        accuracy_axis.plot(sizes, [100 * c.accuracy for _, c in measured], **style)
        exact_axis.plot(sizes, [100 * c.exact for _, c in measured], **style)
    for axis, title in ((accuracy_axis, "label accuracy (%)"), (exact_axis, "label multiset exact (% of targets)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size")
        axis.set_ylabel(title)
        axis.set_ylim(-5, 105)
        axis.grid(alpha=0.3)
    accuracy_axis.legend(fontsize=7)
    figure.suptitle(f"label rules on {study.task}'s protocol", fontsize=9)
    return save_figure(figure, path)
