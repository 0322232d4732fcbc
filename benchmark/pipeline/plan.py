"""What a run is: its options (:class:`RunOptions`, the keywords of :func:`benchmark.run`) and the plan
every process of it follows (:class:`RunPlan`: the task, the attack, its config and the groups of
targets that share a fit)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.attacks import code_module
from benchmark.attacks.base import Attack
from benchmark.core.code import attack_code
from benchmark.metrics import EvaluationSettings
from benchmark.metrics.reid import resolve_backend
from benchmark.pipeline.folder import RunStore
from benchmark.pipeline.isolation import Described, Isolation
from benchmark.protocol.loading import spec_hash
from benchmark.protocol.spec import DefenseSpec, TaskSpec


@dataclass(frozen=True)
class RunOptions:
    """How :func:`benchmark.run` runs a (task, attack): each field is one of its keywords (documented there)."""

    targets: int | None = None
    seed: int = 0
    max_steps: int | None = None
    restarts: int | None = None
    out: str | Path | None = None
    logger: str | None = "csv"
    accelerator: str = "cpu"
    progress: bool = False
    attack_options: dict[str, Any] | None = None
    fresh: bool = False
    problems: int = 32
    max_steps_cap: int | None = None
    images_every: int | None = None
    devices: int = 1
    num_nodes: int = 1
    lpips_weights: str | Path | None = None
    reid: str = "auto"
    defense: DefenseSpec | None = None
    retry_failed: bool = False
    extent: int | None = None
    isolation: Isolation | None = None
    compile: bool = False


@dataclass(frozen=True)
class RunPlan:
    """What every process of a run needs to attack its targets (picklable, for spawned processes)."""

    spec: TaskSpec
    attack: str
    config: Any
    count: int
    extent: int  # the targets the groups are laid over (at least count)
    tries: int
    seed: int
    out: Path | None
    logger: str | None
    accelerator: str
    progress: bool
    fresh: bool
    problems: int
    images_every: int | None
    evaluation: EvaluationSettings
    retry_failed: bool = False
    isolation: Isolation | None = None
    attack_cls: type[Attack] | Described | None = None  # None: the registered class of ``attack``
    compile: bool = False  # the attack's objective compiled: its results round otherwise, so part of the definition

    @property
    def per_fit(self) -> int:
        """Targets per fit, G: target t shares its fit with the other targets of block ⌊t/G⌋."""
        return max(1, self.problems // self.tries)

    @property
    def reach(self) -> int:
        """The targets the groups of the first ``count`` targets hold: those below this number."""
        return min(self.extent, -(-self.count // self.per_fit) * self.per_fit)

    def groups(self, finished: set[int]) -> list[list[int]]:
        """The fits still to run: each block of G targets below ``extent`` that holds an unfinished
        target of the first ``count``, as its unfinished targets."""
        blocks = [range(first, min(first + self.per_fit, self.reach)) for first in range(0, self.count, self.per_fit)]
        return [
            [t for t in block if t not in finished]
            for block in blocks
            if any(t not in finished for t in block if t < self.count)
        ]

    @property
    def definition(self) -> dict[str, Any]:
        defense = {} if self.spec.defense is None else {"defense": self.spec.defense.model_dump(mode="json")}
        # the face encoder scores every target: a resumed run must not change it
        reid = {"reid_backend": resolve_backend(self.evaluation.reid_backend)} if "reid" in self.spec.metrics else {}
        return {
            "task": self.spec.name,
            "task_version": self.spec.version,
            "spec_hash": spec_hash(self.spec),
            "attack": self.attack,
            "attack_config": dataclasses.asdict(self.config),
            "attack_code": attack_code(code_module(self.attack)),
            "seed": self.seed,
            "restarts": self.tries,
            "targets_per_fit": self.per_fit,
            **defense,
            **reid,
            **({"compiled": True} if self.compile else {}),
        }

    def nothing_pending(self) -> bool:
        """Whether the run folder already holds every target, none of them failed where failed ones are
        retried (a finished cell: no process to start)."""
        if self.out is None or self.fresh or not (self.out / "run.json").exists():
            return False
        finished = RunStore(self.out, self.definition).finished()
        return not self.groups(
            {target for target, (row, _) in finished.items() if not (self.retry_failed and row.failed is not None)}
        )
