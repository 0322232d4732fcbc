"""The attack interface: a LightningModule built from observations and a typed config.

An attack instance solves K independent problems: ``observations[k]`` attacked from ``seeds[k]``
(targets, and restarts of a target, are problems). ``trainer.fit(attack)`` runs it and
:meth:`Attack.reconstructions` gives one result per problem. Optimisation attacks take one
optimiser step on all their candidates per ``training_step``; closed-form attacks share the
interface with a single step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from benchmark.attacks.components.engine import ProblemBatch
from benchmark.attacks.labels import recover_labels
from benchmark.core.errors import AttackFailure, NotApplicableError
from benchmark.fl.observation import ModifiedModel, Observation, ServerKnowledge


@dataclass(frozen=True)
class Reconstruction:
    """What an attack returns for one problem."""

    images: Tensor  # (B, C, H, W) in [0, 1]
    labels: Tensor  # (B,) int64
    loss: float  # the attack's final objective (lower is better): the criterion between restarts
    details: dict[str, Any] = field(default_factory=dict)  # JSON-ready facts kept in the target's row


class Attack(pl.LightningModule):
    """Base class of every attack.

    Subclasses set ``Config`` (a frozen dataclass whose defaults are the paper's and which has a
    ``max_steps`` field) and implement :meth:`reconstructions`.

    Args:
        observations: one per problem; all of one task (same architecture and FL setting).
        config: the attack's config (default: the paper's).
        seeds: one per problem; a problem's random initialisation depends on its seed alone.
    """

    Config: ClassVar[type]

    def __init__(
        self, observations: Sequence[Observation], config: Any = None, seeds: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.config = config if config is not None else self.Config()
        self.observations = list(observations)
        self.seeds = list(seeds) if seeds is not None else list(range(len(self.observations)))
        if len(self.seeds) != len(self.observations):
            raise ValueError("give one seed per observation")
        self.log_step_offset = 0  # set by the runner: steps of several fits share one logger axis

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        """Why this attack cannot run on such an observation, or None when it can."""
        return None

    @classmethod
    def prepare_model(cls, model: nn.Module, server: ServerKnowledge, config: Any) -> ModifiedModel:
        """A malicious server's step before the round (``threat.server: malicious``): the global model
        it sends the client instead of ``model`` (the task's, a copy the attack may change), built from
        what it knows before the round and the attack's ``config``. An attack that defines it runs
        only on malicious-server tasks, and the client trains the model it returns; the attack then
        receives the round's :class:`Observation` (whose model is this one) as any attack does. Honest
        attacks do not define it."""
        raise NotImplementedError(f"{cls.__name__} sends the global model unchanged (an honest server)")

    @classmethod
    def modifies_model(cls) -> bool:
        """Whether the attack modifies the global model before the round (defines :meth:`prepare_model`)."""
        return cls.prepare_model.__func__ is not Attack.prepare_model.__func__  # type: ignore[attr-defined]

    def reconstructions(self) -> list[Reconstruction]:
        raise NotImplementedError

    def rule_labels(self) -> Tensor | None:
        """(K, B) labels read by the label rule the config names (``labels: <rule>``, one of
        :data:`benchmark.attacks.labels.LABEL_RULES`), or None where it names none (``auto``: the
        attack's own way). A rule on a task whose threat model gives the labels is refused."""
        rule = getattr(self.config, "labels", "auto")
        if rule == "auto":
            return None
        if any(observation.labels is not None for observation in self.observations):
            raise NotApplicableError(
                f"labels: {rule} would replace the labels the threat model gives (threat.labels: known); "
                "a label rule applies to tasks whose labels are unknown"
            )
        read: dict[int, Tensor] = {}  # restarts of a target share its observation
        for observation in self.observations:
            if id(observation) not in read:
                read[id(observation)] = recover_labels(rule, observation).labels
        return torch.stack([read[id(observation)] for observation in self.observations])

    def train_dataloader(self) -> DataLoader:
        # The data an attack fits is the observations it holds; the loader only counts steps.
        return DataLoader(range(self.config.max_steps), batch_size=None)


class OptimizationAttack(Attack):
    """An attack that minimises a per-problem :meth:`objective` over candidate tensors (K, ...).

    One backward pass of the summed objective gives every problem its own gradient. Keeps each
    problem's best candidates seen at any objective evaluation (line searches included), so a
    diverging run returns its best point, never its last or its first. A problem is done, and
    frozen, once its objective is below ``config.stop_loss``, stops being finite, or (with
    ``config.patience``) has not improved its best by 0.01 % for that many steps; the fit ends when
    every problem is done. A subclass that sets ``label_source`` has it in every reconstruction's details.
    """

    label_source: str | None = None  # where the labels came from: "known", "rule NAME", "optimised", ...

    def __init__(
        self, observations: Sequence[Observation], config: Any = None, seeds: Sequence[int] | None = None
    ) -> None:
        super().__init__(observations, config, seeds)
        self.automatic_optimization = False
        self.problems = ProblemBatch(self.observations)
        count = len(self.observations)
        self.register_buffer("best_loss", torch.full((count,), float("inf")))
        self.register_buffer("done", torch.zeros(count, dtype=torch.bool))
        self.register_buffer("stalled_steps", torch.zeros(count, dtype=torch.long))
        self.register_buffer("_best_at_last_progress", torch.full((count,), float("inf")))
        self._best: dict[str, Tensor] = {}

    @property
    def streams(self) -> list[torch.Generator]:
        """Problem k's random stream, seeded from ``seeds[k]``; successive draws continue it."""
        if not hasattr(self, "_streams"):
            self._streams = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        return self._streams

    def randn(self, *shape: int) -> Tensor:
        """(K, *shape) standard normal draws, problem k's from its own stream."""
        return torch.stack([torch.randn(shape, generator=stream) for stream in self.streams])

    def candidates(self) -> list[Tensor]:
        """The tensors the optimiser changes, each (K, ...)."""
        raise NotImplementedError

    def objective(self) -> Tensor:
        """Loss of every problem's current candidates, (K,)."""
        raise NotImplementedError

    def current(self) -> dict[str, Tensor]:
        """The current solution of every problem: ``images`` (K, B, C, H, W) in [0, 1], ``labels`` (K, B)."""
        raise NotImplementedError

    def compile_objective(self) -> None:
        """Compile :meth:`objective` with ``torch.compile`` (TorchInductor): the same computation, fused
        into fewer kernels, rounded differently from the eager one; compiled at its first evaluation."""
        self.objective = torch.compile(self.objective)

    def after_backward(self) -> None:
        """Called after each backward pass (gradient transforms, e.g. taking the sign)."""

    def after_step(self) -> None:
        """Called after each optimiser step (projections)."""

    def _remember(self, losses: Tensor) -> None:
        improved = (losses < self.best_loss) & ~self.done  # NaN compares False: never kept
        if not bool(improved.any()):
            return
        self.best_loss = torch.where(improved, losses, self.best_loss)
        for key, value in self.current().items():
            mask = improved.view(-1, *[1] * (value.dim() - 1))
            self._best[key] = torch.where(mask, value, self._best[key]) if key in self._best else value.clone()

    def closure(self, optimizer: torch.optim.Optimizer, backward: Callable[..., None]) -> Callable[[], Tensor]:
        """The optimiser's closure: evaluate all problems, remember the best, backpropagate their sum."""

        def evaluate() -> Tensor:
            optimizer.zero_grad()
            losses = self.objective()
            self._remember(losses.detach())
            backward(losses.sum(), inputs=self.candidates())
            self.after_backward()
            return losses

        return evaluate

    def optimise_step(
        self, optimizer: torch.optim.Optimizer, backward: Callable[..., None], schedulers: Sequence[Any] = ()
    ) -> Tensor:
        """One optimiser step on every problem that is not done; updates which problems are done.

        The whole step of the attack, with or without Lightning: ``backward`` is Lightning's
        ``manual_backward`` in :meth:`training_step`. Returns the losses at the start of the step (K,).
        """
        frozen = [c.detach().clone() for c in self.candidates()] if bool(self.done.any()) else None
        losses = optimizer.step(closure=self.closure(optimizer, backward)).detach()
        self.after_step()
        for scheduler in schedulers:
            scheduler.step()
        if frozen is not None:  # done problems keep their point, so they do not depend on their batch
            with torch.no_grad():
                for candidate, kept in zip(self.candidates(), frozen):
                    mask = self.done.view(-1, *[1] * (candidate.dim() - 1))
                    candidate.copy_(torch.where(mask, kept, candidate))
        stop, patience = getattr(self.config, "stop_loss", None), getattr(self.config, "patience", None)
        self.done |= ~torch.isfinite(losses) | (self.best_loss <= stop if stop is not None else False)
        if patience is not None:
            improving = self.best_loss < self._best_at_last_progress * (1 - 1e-4)
            self._best_at_last_progress = torch.where(improving, self.best_loss, self._best_at_last_progress)
            self.stalled_steps = torch.where(improving, 0, self.stalled_steps + 1)
            self.done |= self.stalled_steps >= patience
        return losses

    def training_step(self, batch: Any, batch_idx: int) -> None:
        losses = self.optimise_step(self.optimizers(), self.manual_backward, self.schedulers())
        step = self.log_step_offset + self.global_step
        watched = self.trainer.loggers or self.trainer.progress_bar_callback is not None
        # self.log costs about 1 ms in Lightning's result collection: every N steps, and only where a
        # logger or the progress bar shows it
        if watched and (self.global_step % self.trainer.log_every_n_steps == 0 or bool(self.done.all())):
            self.log(
                "attack/grad_loss",
                losses[~self.done].mean() if not bool(self.done.all()) else losses.mean(),
                prog_bar=True,
            )
            self.log("step", float(step))
        if bool(self.done.all()):
            self.trainer.should_stop = True

    def optimizer_and_schedulers(self) -> tuple[torch.optim.Optimizer, list[Any]]:
        """What :meth:`configure_optimizers` returns, as (optimiser, schedulers), for a loop without Lightning."""
        configured = self.configure_optimizers()
        return (configured[0][0], list(configured[1])) if isinstance(configured, tuple | list) else (configured, [])

    @classmethod
    def solve_plainly(
        cls, observations: Sequence[Observation], config: Any, seeds: Sequence[int]
    ) -> list[Reconstruction]:
        """The attack's reconstructions from a plain PyTorch loop of :meth:`optimise_step`, the steps a
        Lightning fit takes (seeded as it is, at most ``config.max_steps``, until every problem is
        done), for an attack that runs another inside its own step (SSRAS's DLG label guess)."""
        pl.seed_everything(seeds[0] % 2**32, verbose=False)
        attack = cls(observations, config, seeds)
        optimizer, schedulers = attack.optimizer_and_schedulers()
        for _ in range(config.max_steps):
            attack.optimise_step(optimizer, lambda loss, inputs: loss.backward(inputs=inputs), schedulers)
            if bool(attack.done.all()):
                break
        return attack.reconstructions()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_candidates"] = self._best  # the best points seen so far are not parameters

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._best = checkpoint["best_candidates"]

    def schedulers(self) -> list[Any]:
        """The learning-rate schedulers configured with the optimiser (stepped once per step)."""
        configured = self.lr_schedulers()
        return [] if configured is None else configured if isinstance(configured, list) else [configured]

    def reconstructions(self) -> list[Reconstruction]:
        if not self._best:
            raise AttackFailure("no finite objective was reached: the attack diverged")
        images, labels = self._best["images"].cpu(), self._best["labels"].cpu()
        details = {"label_source": self.label_source} if self.label_source else {}
        return [
            Reconstruction(images=images[k], labels=labels[k], loss=float(self.best_loss[k]), details=details)
            for k in range(len(self.observations))
        ]


class GradientMatchingAttack(OptimizationAttack):
    """Dummy inputs x' ~ N(0, 1), and where no labels are known dummy label logits y' ~ N(0, 1) (drawn
    in that order from each problem's stream), optimised so that their update matches the observed one:
    the set-up DLG (Zhu et al., NeurIPS 2019) and Inverting Gradients (Geiping et al., NeurIPS 2020)
    share. Subclasses give :meth:`objective`, :meth:`configure_optimizers` and, for labels read
    before optimising, :meth:`known_labels` (whose rule ``own_label_rule`` names).

    The labels, in order: the config's label rule (:meth:`Attack.rule_labels`), the threat model's,
    the attack's own rule, else soft labels optimised jointly; each reconstruction's
    ``label_source`` says which.
    """

    own_label_rule: ClassVar[str | None] = None

    def __init__(
        self, observations: Sequence[Observation], config: Any = None, seeds: Sequence[int] | None = None
    ) -> None:
        super().__init__(observations, config, seeds)
        first = self.observations[0]
        self.inputs = nn.Parameter(self.randn(first.batch_size, *first.input_shape))
        labels = self.rule_labels()
        if labels is not None:
            self.label_source = f"rule {self.config.labels}"
        else:
            labels = self.known_labels()
            known = self.problems.labels is not None
            self.label_source = "known" if known else "optimised" if labels is None else f"rule {self.own_label_rule}"
        self.learns_labels = labels is None
        if self.learns_labels:
            self.label_logits = nn.Parameter(self.randn(first.batch_size, first.num_classes))
        else:
            self.register_buffer("labels", labels)

    def known_labels(self) -> Tensor | None:
        """(K, B) labels fixed before optimising: the threat model's, if any."""
        return self.problems.labels

    def candidates(self) -> list[Tensor]:
        return [self.inputs, self.label_logits] if self.learns_labels else [self.inputs]

    def label_targets(self) -> Tensor:
        """What the dummy update is computed with: softmax(y') (K, B, classes), or the fixed labels (K, B)."""
        return self.label_logits.softmax(dim=-1) if self.learns_labels else self.labels

    def current(self) -> dict[str, Tensor]:
        labels = self.label_logits.argmax(dim=-1) if self.learns_labels else self.labels
        return {"images": self.problems.to_images(self.inputs.detach()), "labels": labels.detach()}


class ClosedFormAttack(Attack):
    """An attack solved in closed form (no optimisation loop): one training step calls :meth:`solve`
    for each problem. Its config's ``max_steps`` is 1; it is deterministic, so seeds do not matter.
    """

    def __init__(
        self, observations: Sequence[Observation], config: Any = None, seeds: Sequence[int] | None = None
    ) -> None:
        super().__init__(observations, config, seeds)
        self.automatic_optimization = False
        self._solutions: list[Reconstruction] = []

    def solve(self, observation: Observation) -> Reconstruction:
        """Compute the reconstruction of one observation."""
        raise NotImplementedError

    def configure_optimizers(self) -> None:
        return None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(1), batch_size=None)  # one step solves every problem

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self._solutions = [self.solve(observation) for observation in self.observations]
        self.log("attack/residual", sum(s.loss for s in self._solutions) / len(self._solutions))

    def reconstructions(self) -> list[Reconstruction]:
        if not self._solutions:
            raise RuntimeError("the attack has not run: call trainer.fit(attack) first")
        return self._solutions
