"""``leakbench rescore``: recompute the metrics of finished run folders from their stored reconstructions.

A run folder keeps each target's reconstruction (``reconstructions/target-NNNN.pt``, the attack's own
output order) beside its row, so a change of a metric's definition, or a metric that became
available (LPIPS weights that arrived), needs no new attack: the private images are read again from
the task's data source, matched and scored with today's metrics, and the rows, ``results.json`` and
``reconstructions.png`` are rewritten. The attack's outputs (recovered labels, loss, time, details)
are kept as they are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from benchmark.core.errors import LeakBenchError
from benchmark.core.files import read_json
from benchmark.data import load_samples, load_source
from benchmark.metrics import EvaluationSettings, Evaluator
from benchmark.pipeline.folder import RUN_FILE, RunStore
from benchmark.pipeline.result import Result
from benchmark.pipeline.store import collect
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.loading import spec_hash
from benchmark.protocol.spec import DefenseSpec, TaskSpec


def run_spec(definition: dict, task: str | Path | None = None) -> TaskSpec:
    """The spec a run folder was measured under, checked against the hash its ``run.json`` recorded."""
    spec = load_task(task or definition["task"])
    if definition.get("defense") is not None:
        spec = spec.model_copy(update={"defense": DefenseSpec.model_validate(definition["defense"])})
    if spec_hash(spec) != definition["spec_hash"]:
        raise LeakBenchError(
            f"task '{spec.name}' is not the one this run measured (spec hash {spec_hash(spec)[:12]}, "
            f"recorded {definition['spec_hash'][:12]}); give its YAML with --task, or re-run"
        )
    return spec


def rescore(
    folder: str | Path, *, task: str | Path | None = None, lpips_weights: Path | None = None, reid: str | None = None
) -> Result:
    """Score every finished target of ``folder`` anew and rewrite its rows and outputs.

    Args:
        folder: a finished run folder (``run.json``, ``results.json``, rows and reconstructions).
        task: the task's YAML, for a run of a spec that is not registered by name.
        lpips_weights: AlexNet weights for LPIPS (default: torchvision's cache).
        reid: the face encoder (default: the one the run recorded).
    """
    folder = Path(folder)
    fix = "rescore reads finished run folders: run the attack to the end (or again with --fresh) first"
    definition = read_json(folder / RUN_FILE, "run record", fix)
    recorded = read_json(folder / "results.json", "results file", fix)
    spec = run_spec(definition, task)
    store = RunStore(folder, definition)
    finished = store.finished()
    count = len(recorded.get("targets", []))
    missing = [t for t in range(count) if t not in finished]
    if missing:
        raise LeakBenchError(
            f"{folder}: targets {missing[:5]} have no stored row or reconstruction; resume the run "
            f"(the same leakbench run command) before rescoring it"
        )
    source = load_source(spec.data, spec.targets)
    samples = load_samples(source, [i for t in range(count) for i in spec.target_indices(t)])
    batch = spec.fl.batch_size
    evaluator = Evaluator.for_task(
        spec.metrics,
        EvaluationSettings(
            source=source, lpips_weights=lpips_weights, reid_backend=reid or definition.get("reid_backend", "auto")
        ),
    )
    rows = []
    for target in range(count):
        row, images = finished[target]
        if images is not None:
            part = slice(target * batch, (target + 1) * batch)
            metrics = evaluator(images, torch.tensor(row.recovered_labels), samples.images[part], samples.labels[part])
            row = dataclasses.replace(row, metrics={name: values.tolist() for name, values in metrics.items()})
        rows.append((row, images))
    store.rewrite([row for row, _ in rows])
    result = Result(
        **{
            key: recorded[key]
            for key in ("task", "task_version", "spec_hash", "attack", "config", "data_origin", "environment")
        }
    )
    collect(result, rows, evaluator, samples.images, batch, folder)
    return result
