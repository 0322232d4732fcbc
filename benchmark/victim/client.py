"""The victim: builds the global model, holds the private batch, computes the shared update.

The private batch never leaves a :class:`Victim`. What leaves is an :class:`Observation`: exactly
what an honest-but-curious server sees of one client's round.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad
from torch.nn.modules.batchnorm import _BatchNorm

from benchmark.data import Samples
from benchmark.defenses import ClientRound, build_defense, client_generator
from benchmark.errors import FileError, SpecError, first_line
from benchmark.models import MODELS
from benchmark.registry import Registry
from benchmark.spec import FLSpec, Normalization, TaskSpec


def logistic_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary logistic loss of a one-logit head u (N, 1): mean over n of log(1 + exp(−y_n·u_n)), y = ±1.

    ``targets`` are labels t ∈ {0, 1} (N,) (y = 2t − 1) or probabilities of the two classes (N, 2),
    whose second column is P(t = 1); equal to binary cross-entropy on sigmoid(u).
    """
    positive = targets[:, 1] if targets.ndim == 2 else targets.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[:, 0], positive)


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The victim's loss, selected by the head's width: one logit (N, 1) is a binary logistic head
    (:func:`logistic_loss`, R-GAP's victims); K ≥ 2 logits (N, K) take the mean cross-entropy.

    ``targets`` are class indices (N,) or class probabilities (N, K) (K = 2 for one logit). Victim
    and attacker both use this function, so the attacker's loss is the victim's loss.
    """
    return (logistic_loss if logits.shape[1] == 1 else F.cross_entropy)(logits, targets)


UpdateRule = Callable[[nn.Module, dict[str, Tensor], dict[str, Tensor], Tensor, Tensor, FLSpec], dict[str, Tensor]]
PROTOCOLS: Registry[UpdateRule] = Registry("FL protocol")

_plain_autograd: ContextVar[bool] = ContextVar("plain_autograd", default=False)


@contextmanager
def plain_autograd() -> Iterator[None]:
    """Within this block :func:`gradient` differentiates with ``torch.autograd`` instead of
    ``torch.func.grad``: the same gradient without functorch's per-operation overhead, for a caller
    outside any ``torch.func`` transform (the attacker's engine with one problem)."""
    token = _plain_autograd.set(True)
    try:
        yield
    finally:
        _plain_autograd.reset(token)


LossOfParameters = Callable[..., Tensor]  # (params: dict[str, Tensor], *args) -> a scalar loss


def gradient(loss: LossOfParameters) -> Callable[..., dict[str, Tensor]]:
    """``torch.func.grad(loss)``: (params, *args) ↦ ∂loss/∂params, composable with ``vmap``; within
    :func:`plain_autograd` the same by ``torch.autograd.grad``, as ``torch.func.grad`` behaves: the
    gradient is computed under an outer ``no_grad`` too, and is differentiable again where the
    caller records gradients; a parameter the loss does not use gets zeros."""
    if not _plain_autograd.get():
        return grad(loss)

    def differentiate(params: dict[str, Tensor], *args: Tensor) -> dict[str, Tensor]:
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            leaves = {name: p if p.requires_grad else p.detach().requires_grad_() for name, p in params.items()}
            values = torch.autograd.grad(loss(leaves, *args), list(leaves.values()), create_graph=recording,
                                         allow_unused=True, materialize_grads=True)
        return dict(zip(leaves, values))

    return differentiate


def _loss_of(model: nn.Module) -> Callable[[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor], Tensor]:
    # Buffers are an argument, not captured: a model in train mode updates its BatchNorm statistics
    # in place, which torch.func allows only on the function's own inputs.
    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return task_loss(functional_call(model, (params, buffers), (inputs,)), targets)

    return loss


@PROTOCOLS.register("fedsgd")
def fedsgd_update(model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor,
                  targets: Tensor, fl: FLSpec) -> dict[str, Tensor]:
    """FedSGD: ∇θ L(f_θ(x), y), the gradient of the mean loss over the batch, per parameter name.

    Written with ``torch.func`` so that the victim and the attacker (inside ``vmap``, differentiating
    w.r.t. its candidates) compute the update with this one function.
    """
    return gradient(_loss_of(model))(params, buffers, inputs, targets)


@PROTOCOLS.register("fedavg")
def fedavg_update(model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor,
                  targets: Tensor, fl: FLSpec) -> dict[str, Tensor]:
    """FedAvg (McMahan et al., 2017) client: ``local_epochs`` passes of SGD over the batch in order,
    mini-batches of ``local_batch_size``; the update is θ_before − θ_after (Geiping et al.'s setting)."""
    loss, current = _loss_of(model), params
    size = fl.local_batch_size or len(inputs)
    for _ in range(fl.local_epochs):
        for start in range(0, len(inputs), size):
            step = gradient(loss)(current, buffers, inputs[start:start + size], targets[start:start + size])
            current = {name: current[name] - fl.local_lr * step[name] for name in current}
    return {name: params[name] - current[name] for name in params}


BatchStatistics = tuple[tuple[Tensor, Tensor], ...]  # per BatchNorm layer, in module order: (mean, variance), (C,)


def _batch_norms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def batch_statistics(model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
                     inputs: Tensor) -> BatchStatistics:
    """Mean and unbiased variance over (N, H, W) of the input of every BatchNorm layer, in module
    order, in a forward pass of ``inputs``; the victim's statistics and, inside ``vmap``, the
    attacker's of its candidates. ``buffers`` may be updated in place (train mode): pass copies."""
    collected: list[tuple[Tensor, Tensor]] = []

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        dims = [0, *range(2, args[0].ndim)]
        collected.append((args[0].mean(dims), args[0].var(dims, correction=1)))

    handles = [module.register_forward_pre_hook(record) for _, module in _batch_norms(model)]
    try:
        functional_call(model, (params, buffers), (inputs,))
    finally:
        for handle in handles:
            handle.remove()
    return tuple(collected)


def statistics_from_buffers(model: nn.Module, before: dict[str, Tensor], after: dict[str, Tensor]) -> BatchStatistics:
    """The batch mean and unbiased variance of every BatchNorm layer, read off its running buffers
    before and after one train-mode forward pass: r_after = (1 − m)·r_before + m·batch statistic."""
    statistics = []
    for name, module in _batch_norms(model):
        m = module.momentum
        if m is None or not module.track_running_stats:
            raise SpecError(f"BatchNorm layer '{name}' keeps no exponential running statistics; "
                            f"threat.bn_statistics: batch cannot be read off its buffers, use 'known'")
        prefix = f"{name}." if name else ""
        statistics.append(tuple((after[prefix + key] - (1 - m) * before[prefix + key]) / m
                                for key in ("running_mean", "running_var")))
    return tuple(statistics)


@dataclass(frozen=True)
class Observation:
    """What the server sees: the security boundary of the benchmark.

    Attributes:
        model: the server's copy of the global model the client trained (architecture, parameters,
            train/eval mode); attacks may run it but changing it changes nothing of the victim.
        update: the shared update, one tensor per ``model.parameters()`` entry (FedSGD: ∇θ L), after the
            client's defence if the task has one (the attack is not told which).
        fl: the FL setting (protocol, and FedAvg's local epochs, mini-batch size and learning rate).
        batch_size: number of private samples behind the update.
        input_shape: (C, H, W) of one model input.
        num_classes: K.
        normalization: preprocessing from [0, 1] images to model inputs, known to the server.
        labels: the private labels (N,), only where the threat model gives them; else None.
        bn_statistics: the private batch's (mean, variance) at every BatchNorm layer, only where the
            threat model gives them (``threat.bn_statistics``: batch or known); else None.
    """

    model: nn.Module
    update: tuple[Tensor, ...]
    fl: FLSpec
    batch_size: int
    input_shape: tuple[int, int, int]
    num_classes: int
    normalization: Normalization | None = None
    labels: Tensor | None = None
    bn_statistics: BatchStatistics | None = None

    def to_images(self, inputs: Tensor) -> Tensor:
        """Model inputs (N, C, H, W) → images in [0, 1] (de-normalised, clamped)."""
        images = inputs if self.normalization is None else self.normalization.invert(inputs)
        return images.clamp(0, 1)

    def to_record(self) -> dict[str, Any]:
        """This observation as tensors and JSON-ready values, for ``torch.save`` and a reader that loads
        with ``weights_only=True`` (no object that runs code crosses): the model as its registered
        architecture, mode and state."""
        return {"model": MODELS.name_of(type(self.model)), "training": self.model.training,
                "state": self.model.state_dict(), "update": list(self.update), "fl": self.fl.model_dump(mode="json"),
                "batch_size": self.batch_size, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "normalization": None if self.normalization is None else self.normalization.model_dump(mode="json"),
                "labels": self.labels,
                "bn_statistics": None if self.bn_statistics is None else [list(layer) for layer in self.bn_statistics]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Observation:
        """The observation :meth:`to_record` made."""
        channels, size, _ = shape = tuple(record["input_shape"])
        model = MODELS.get(record["model"])(channels, size, record["num_classes"])
        model.load_state_dict(record["state"])
        statistics = record["bn_statistics"]
        return cls(model=model.train(record["training"]), update=tuple(record["update"]),
                   fl=FLSpec.model_validate(record["fl"]), batch_size=record["batch_size"], input_shape=shape,
                   num_classes=record["num_classes"],
                   normalization=None if record["normalization"] is None else Normalization.model_validate(
                       record["normalization"]),
                   labels=record["labels"],
                   bn_statistics=None if statistics is None else tuple(tuple(layer) for layer in statistics))


def model_inputs(spec: TaskSpec, images: Tensor) -> Tensor:
    """[0, 1] images (N, C, H, W) → the task's model inputs (normalised where the spec says so)."""
    norm = spec.data.normalize
    return images if norm is None else norm.apply(images)


def build_model(spec: TaskSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """The task's victim architecture, initialised from ``seed`` (global RNG state untouched)."""
    channels, size, _ = input_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS.get(spec.victim.model)(channels, size, num_classes)
        if spec.victim.init == "uniform":
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.uniform_(-spec.victim.init_scale, spec.victim.init_scale)
    return model.train(spec.victim.mode == "train")


def global_model(spec: TaskSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """The model the server sends: initialised from ``seed``, or the stored trained weights of
    ``victim.state: trained@E`` (see :mod:`benchmark.training`)."""
    model = build_model(spec, input_shape, num_classes, seed)
    if spec.victim.trained_epochs is not None:
        from benchmark.training import load_trained_state

        try:
            model.load_state_dict(load_trained_state(spec, spec.victim.trained_epochs))
        except RuntimeError as err:  # stored by another version of the architecture
            raise FileError(f"the trained weights of task '{spec.name}' do not fit its model "
                            f"({first_line(err, 100)}); train them again with `leakbench victim train "
                            f"--task {spec.name} --epochs {spec.victim.trained_epochs}`") from None
    return model


class Victim:
    """One FL client holding one target's private batch.

    Args:
        spec: the task.
        target: target number (with ``victim.reinit: per_target`` its model is initialised from
            ``victim.seed + target``, else from ``victim.seed``).
        samples: the private batch (images in [0, 1]).
        num_classes: K of the dataset.
    """

    def __init__(self, spec: TaskSpec, target: int, samples: Samples, num_classes: int) -> None:
        self.spec = spec
        self._private = samples
        self.input_shape: tuple[int, int, int] = tuple(samples.images.shape[1:])  # type: ignore[assignment]
        self.num_classes = num_classes
        self.target = target
        seed = spec.victim.seed + (target if spec.victim.reinit == "per_target" else 0)
        self.model = global_model(spec, self.input_shape, num_classes, seed)

    def _model_inputs(self) -> Tensor:
        return model_inputs(self.spec, self._private.images)

    def observe(self) -> Observation:
        """Compute the update on the private batch, apply the task's defence, return what the server sees."""
        server_copy = copy.deepcopy(self.model)  # the global model as sent, before the client's round
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}  # the client's own BN state
        try:
            update = PROTOCOLS.get(self.spec.fl.protocol)(self.model, params, buffers, self._model_inputs(),
                                                         self._private.labels, self.spec.fl)
            statistics = self._bn_statistics(server_copy, params, buffers)
        except RuntimeError as err:  # torch's shape errors: the task's inputs do not fit its model
            raise SpecError(
                f"task '{self.spec.name}': model '{self.spec.victim.model}' cannot take inputs of shape "
                f"{self.input_shape} ({first_line(err)}); change data.image_size/channels or victim.model"
            ) from None
        if self.spec.defense is not None:
            before = {name: b.clone() for name, b in server_copy.named_buffers()}
            client = ClientRound(model=self.model, params=params, buffers=before, inputs=self._model_inputs(),
                                 targets=self._private.labels, fl=self.spec.fl,
                                 generator=client_generator(self.spec.defense, self.target))
            update = build_defense(self.spec.defense).apply(update, client)
        return Observation(
            model=server_copy,
            update=tuple(update[name] for name in params),
            fl=self.spec.fl,
            batch_size=len(self._private.labels),
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            normalization=self.spec.data.normalize,
            labels=self._private.labels.clone() if self.spec.threat.labels == "known" else None,
            bn_statistics=statistics,
        )

    def _bn_statistics(self, server_copy: nn.Module, params: dict[str, Tensor],
                       buffers_after: dict[str, Tensor]) -> BatchStatistics | None:
        """What ``threat.bn_statistics`` lets the server learn: for ``batch`` computed from what it
        observes alone (its copy's buffers and the uploaded ones)."""
        setting = self.spec.threat.bn_statistics
        if setting != "none" and not _batch_norms(self.model):
            raise SpecError(f"task '{self.spec.name}': threat.bn_statistics: {setting}, but model "
                            f"'{self.spec.victim.model}' has no BatchNorm layer; set it to none")
        if setting == "batch":
            return statistics_from_buffers(server_copy, dict(server_copy.named_buffers()), buffers_after)
        if setting == "known":
            copies = {name: b.clone() for name, b in self.model.named_buffers()}
            return tuple((m.detach(), v.detach()) for m, v in batch_statistics(self.model, params, copies,
                                                                              self._model_inputs()))
        return None
