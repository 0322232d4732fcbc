"""The attack interface: a LightningModule built from an Observation and a typed config.

``trainer.fit(attack)`` runs it; :meth:`Attack.reconstruction` gives the result. Optimisation
attacks take one optimiser step on their candidates per ``training_step``; closed-form attacks
share the interface with a single step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from benchmark.victim import Observation


@dataclass(frozen=True)
class Reconstruction:
    """What an attack returns for one target."""

    images: Tensor  # (B, C, H, W) in [0, 1]
    labels: Tensor  # (B,) int64
    loss: float  # the attack's final objective (lower is better): the criterion between restarts
    details: dict[str, Any] = field(default_factory=dict)  # JSON-ready facts kept in the target's row


class _TensorSet(nn.Module):
    """Fixed tensors kept as buffers, so they follow the attack to its device."""

    def __init__(self, tensors: tuple[Tensor, ...]) -> None:
        super().__init__()
        for index, tensor in enumerate(tensors):
            self.register_buffer(str(index), tensor.detach().clone())

    def __iter__(self):
        return iter(self._buffers.values())


class Attack(pl.LightningModule):
    """Base class of every attack.

    Subclasses set ``Config`` (a frozen dataclass whose defaults are the paper's and which has a
    ``max_steps`` field) and implement :meth:`reconstruction`.
    """

    Config: ClassVar[type]

    def __init__(self, observation: Observation, config: Any = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.Config()
        self.observation = observation
        self.victim_model = observation.model  # a submodule, so it follows the attack's device
        self.target_update = _TensorSet(observation.update)
        self.log_step_offset = 0  # set by the runner: steps of several fits share one logger axis

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        """Why this attack cannot run on such an observation, or None when it can."""
        return None

    def reconstruction(self) -> Reconstruction:
        raise NotImplementedError

    def converged(self) -> bool:
        """True when another restart cannot do better (e.g. the objective reached its floor)."""
        return False

    def train_dataloader(self) -> DataLoader:
        # The data an attack fits is the observation it holds; the loader only counts steps.
        return DataLoader(range(self.config.max_steps), batch_size=None)


class OptimizationAttack(Attack):
    """An attack that minimises :meth:`objective` over its candidate tensors.

    Keeps the best candidates seen at any objective evaluation (line searches included), so a
    diverging run returns its best point, never its last or its first. Stops early once the
    objective is below ``config.stop_loss`` or stops being finite.
    """

    def __init__(self, observation: Observation, config: Any = None) -> None:
        super().__init__(observation, config)
        self.automatic_optimization = False
        self.best_loss = math.inf
        self._best: Reconstruction | None = None

    def candidates(self) -> list[Tensor]:
        """The tensors the optimiser changes."""
        raise NotImplementedError

    def objective(self) -> Tensor:
        """Scalar loss of the current candidates."""
        raise NotImplementedError

    def current(self, loss: float) -> Reconstruction:
        """The current candidates as a reconstruction (detached copies)."""
        raise NotImplementedError

    def reconstruction(self) -> Reconstruction:
        if self._best is None:
            raise RuntimeError("the attack has not run: call trainer.fit(attack) first")
        return self._best

    def converged(self) -> bool:
        stop = getattr(self.config, "stop_loss", None)
        return stop is not None and self.best_loss <= stop

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = self.objective()
            value = loss.item()
            if value < self.best_loss:  # NaN compares False: a diverged point is never kept
                self.best_loss = value
                self._best = self.current(value)
            self.manual_backward(loss, inputs=self.candidates())
            return loss

        loss = optimizer.step(closure=closure)
        self.log("attack/grad_loss", loss.detach(), prog_bar=True)
        self.log("step", float(self.log_step_offset + self.global_step))
        if self.converged() or not torch.isfinite(loss):
            self.trainer.should_stop = True


class ClosedFormAttack(Attack):
    """An attack solved in closed form (no optimisation loop): one training step calls :meth:`solve`.

    Its config's ``max_steps`` is 1; it is deterministic, so restarts stop after the first.
    """

    def __init__(self, observation: Observation, config: Any = None) -> None:
        super().__init__(observation, config)
        self.automatic_optimization = False
        self._solution: Reconstruction | None = None

    def solve(self) -> Reconstruction:
        """Compute the reconstruction from the observation."""
        raise NotImplementedError

    def configure_optimizers(self) -> None:
        return None

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self._solution = self.solve()
        self.log("attack/residual", self._solution.loss)

    def reconstruction(self) -> Reconstruction:
        if self._solution is None:
            raise RuntimeError("the attack has not run: call trainer.fit(attack) first")
        return self._solution

    def converged(self) -> bool:
        return True
