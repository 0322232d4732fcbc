"""The run's first stage: its folder, data, evaluator and logger opened once (:func:`open_run`), then,
for each group of targets, the victims' rounds: the private batches, the global model a malicious
server sends where the attack modifies it (:func:`send_modified_model`), and what the server observes
of them (:func:`prepare_targets`)."""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from pytorch_lightning.loggers import Logger
from torch import Tensor

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import Attack
from benchmark.data import ImageSource, Samples, load_samples, load_source
from benchmark.defenses import defense_record
from benchmark.fl.observation import Observation, ServerKnowledge
from benchmark.metrics import Evaluator
from benchmark.pipeline.config import check_applies, modifies_model
from benchmark.pipeline.fit import FitOptions
from benchmark.pipeline.folder import RunStore
from benchmark.pipeline.hardware import environment
from benchmark.pipeline.isolation import Described
from benchmark.pipeline.loggers import log_config, make_logger
from benchmark.pipeline.plan import RunPlan
from benchmark.pipeline.result import Result, TargetResult
from benchmark.protocol.spec import TaskSpec
from benchmark.victim.client import Victim

log = logging.getLogger(__name__)


@dataclass
class Target:
    """One target of a run while it is attacked: its private batch stays here, in the pipeline."""

    number: int
    indices: list[int]  # the dataset's own indices of its images
    private: Samples
    observation: Observation
    global_model: dict[str, Any] | None = None  # what a malicious server changed in the model it sent (None: nothing)


@dataclass
class OpenRun:
    """What one process of a run holds while it attacks its groups."""

    plan: RunPlan
    attack_cls: type[Attack] | Described
    store: RunStore | None
    source: ImageSource
    samples: Samples  # the images of every target the run's groups reach
    finished: dict[int, tuple[TargetResult, Tensor | None]]
    evaluator: Evaluator
    logger: Logger | None
    result: Result
    options: FitOptions
    groups: list[list[int]]  # this process's share of the fits still to run
    writer: bool  # process 0: it writes the results
    shape: tuple[int, ...]  # of every target's reconstruction
    steps: int = 0  # of the fits so far: the logger's axis


def open_run(plan: RunPlan, rank: int = 0, world: int = 1, device: int | list[int] = 1) -> OpenRun:
    """The run folder (checked, or resumed), the targets' images, the evaluator and the logger of process
    ``rank`` of ``world``, and its share of the pending groups."""
    spec, definition, out = plan.spec, plan.definition, plan.out
    store = (
        RunStore(out, definition, fresh=plan.fresh, retry_failed=plan.retry_failed, rank=rank if world > 1 else None)
        if out
        else None
    )
    source = load_source(spec.data, spec.targets)
    samples = load_samples(source, [i for t in range(plan.reach) for i in spec.target_indices(t)])
    shape = (spec.fl.batch_size, *samples.images.shape[1:])
    finished = store.finished(shape) if store is not None else {}
    evaluator = Evaluator.for_task(spec.metrics, dataclasses.replace(plan.evaluation, source=source))
    writer = rank == 0
    logger = make_logger(plan.logger, out, f"{spec.name}/{plan.attack}") if plan.logger and out and writer else None
    defense = {} if spec.defense is None else {"defense": defense_record(spec.defense)}
    server = {"server": spec.threat.server} if spec.threat.server != "honest" else {}
    result = Result(
        task=spec.name,
        task_version=spec.version,
        spec_hash=definition["spec_hash"],
        attack=plan.attack,
        config={
            "attack": definition["attack_config"],
            "attack_code": definition["attack_code"],
            "seed": plan.seed,
            "targets": plan.count,
            "restarts": plan.tries,
            **defense,
            **server,
            **({"compiled": True} if plan.compile else {}),
        },
        data_origin=samples.origin,
        environment=environment(plan.accelerator, world),
    )
    log_config(logger, {**definition, "targets": plan.count, "environment": result.environment})
    options = FitOptions(
        accelerator=plan.accelerator,
        devices=device,
        logger=logger,
        progress=plan.progress and writer,
        images_every=plan.images_every,
        isolation=plan.isolation,
        compile=plan.compile,
    )
    if writer and (resumed := sum(target in finished for target in range(plan.count))):
        log.info("resuming %s: %d of %d targets already finished", out, resumed, plan.count)
    groups = plan.groups(set(finished))
    if writer and 0 < len(groups) < world:  # the groups are the run's, whatever the processes: some idle
        log.warning(
            "%d group(s) of at most %d targets to share among %d processes, so %d of them have nothing to "
            "do: give --problems %d (or fewer) to solve fewer targets per fit",
            len(groups),
            plan.per_fit,
            world,
            world - len(groups),
            max(1, plan.tries * (sum(map(len, groups)) // world)),
        )
    return OpenRun(
        plan=plan,
        attack_cls=plan.attack_cls or ATTACKS.get(plan.attack),
        store=store,
        source=source,
        samples=samples,
        finished=finished,
        evaluator=evaluator,
        logger=logger,
        result=result,
        options=options,
        groups=groups[rank::world],
        writer=writer,
        shape=shape,
    )


def prepare_targets(run: OpenRun, group: list[int]) -> list[Target]:
    """The targets of one group: each victim's private batch and its observation, checked against the
    attack (a described plugin's fit asks it in its sandbox)."""
    spec, batch, chunk = run.plan.spec, run.plan.spec.fl.batch_size, []
    modifies = not isinstance(run.attack_cls, Described) and modifies_model(run.plan.attack, spec, run.attack_cls)
    for number in group:
        part = slice(number * batch, (number + 1) * batch)
        private = Samples(run.samples.images[part], run.samples.labels[part], run.samples.origin)
        victim = Victim(spec, number, private, run.source.num_classes)
        change = send_modified_model(run, victim) if modifies else None
        observation = victim.observe()
        if not isinstance(run.attack_cls, Described):
            check_applies(run.plan.attack, spec, observation, run.attack_cls)
        indices = run.source.dataset_indices(spec.target_indices(number))
        chunk.append(Target(number, indices, private, observation, change))
    return chunk


def send_modified_model(run: OpenRun, victim: Victim) -> dict[str, Any]:
    """The malicious server's step before the round: the attack's ``prepare_model`` builds the global
    model from a copy of the task's and what the server knows (never the private batch), and the victim
    trains it. Returns what was changed, as the target's row records it."""
    modified = run.attack_cls.prepare_model(  # type: ignore[union-attr]
        copy.deepcopy(victim.model), server_knowledge(run.plan.spec, victim), run.plan.config
    )
    victim.receive(modified.model)
    return {"modified_by": run.plan.attack, **modified.description}


def server_knowledge(spec: TaskSpec, victim: Victim) -> ServerKnowledge:
    """What the server of task ``spec`` knows before ``victim``'s round: the public setting and the
    data statistics its threat model grants."""
    return ServerKnowledge(
        input_shape=victim.input_shape,
        num_classes=victim.num_classes,
        batch_size=spec.fl.batch_size,
        fl=spec.fl,
        normalization=spec.data.normalize,
        data_statistics=spec.threat.data_statistics,
    )
