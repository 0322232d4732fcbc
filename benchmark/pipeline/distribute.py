"""A run over several processes (devices, nodes): Lightning Fabric launches them, and each attacks its
share of the groups (:func:`~benchmark.pipeline.loop.run_targets`); the shares meet in the run folder."""

from __future__ import annotations

import dataclasses

from lightning_fabric import Fabric

from benchmark.core.errors import SpecError
from benchmark.pipeline.folder import RunStore
from benchmark.pipeline.hardware import launched_externally
from benchmark.pipeline.loop import run_targets
from benchmark.pipeline.plan import RunPlan
from benchmark.pipeline.result import Result


class _AttackShare:
    """What each process of a multi-process run executes: its share of the targets on its own device.

    A plain callable object holding the plan: Lightning's launcher walks a function's arguments and
    cannot rebuild the frozen dataclasses a plan holds.
    """

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan

    def __call__(self, fabric: Fabric) -> Result:
        plan = self.plan
        if fabric.global_rank == 0:  # checks (or clears, or drops its failed rows from) the folder once
            RunStore(plan.out, plan.definition, fresh=plan.fresh, retry_failed=plan.retry_failed)
        fabric.barrier()
        device = [fabric.local_rank] if fabric.device.type != "cpu" else 1
        return run_targets(
            dataclasses.replace(plan, fresh=False, retry_failed=False),
            rank=fabric.global_rank,
            world=fabric.world_size,
            barrier=fabric.barrier,
            device=device,
        )


def run_distributed(plan: RunPlan, devices: int, num_nodes: int) -> Result:
    """The run of ``plan`` over ``devices`` processes per node on ``num_nodes`` nodes."""
    if plan.out is None:
        raise SpecError(
            "a run over several processes needs an output folder (--out): the processes' results "
            "meet there (on a file system every node sees)"
        )
    strategy = "ddp" if launched_externally() else "ddp_spawn"
    fabric = Fabric(accelerator=plan.accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
    return fabric.launch(_AttackShare(plan))
