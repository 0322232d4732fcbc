"""The victim: builds the global model, holds the private batch, computes the shared update.

The private batch never leaves a :class:`Victim`. What leaves is an :class:`Observation`: exactly
what an honest-but-curious server sees of one client's round. A malicious server may send the client
another global model before the round (:meth:`Victim.receive`); the observation then holds that one.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from benchmark.core.errors import FileError, SpecError, first_line
from benchmark.data import Samples
from benchmark.defenses import ClientRound, build_defense, client_generator
from benchmark.fl.batchnorm import BatchStatistics, batch_norm_layers, batch_statistics, statistics_from_buffers
from benchmark.fl.observation import Observation, model_inputs
from benchmark.fl.updates import PROTOCOLS
from benchmark.models import MODELS
from benchmark.protocol.spec import TaskSpec
from benchmark.victim.trained import load_trained_state


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
    ``victim.state: trained@E`` (see :mod:`benchmark.apps.training`)."""
    model = build_model(spec, input_shape, num_classes, seed)
    if spec.victim.trained_epochs is not None:
        try:
            model.load_state_dict(load_trained_state(spec, spec.victim.trained_epochs))
        except RuntimeError as err:  # stored by another version of the architecture
            raise FileError(
                f"the trained weights of task '{spec.name}' do not fit its model "
                f"({first_line(err, 100)}); train them again with `leakbench victim train "
                f"--task {spec.name} --epochs {spec.victim.trained_epochs}`"
            ) from None
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

    def receive(self, model: nn.Module) -> None:
        """Train ``model`` in this round instead of the task's global model: the model a malicious
        server sent (``threat.server: malicious``), in the task's train/eval mode."""
        if self.spec.threat.server != "malicious":
            raise SpecError(
                f"task '{self.spec.name}': its server is honest (threat.server: honest) and sends the task's "
                f"global model; set threat.server: malicious for a server that modifies it"
            )
        self.model = model.train(self.spec.victim.mode == "train")

    def _model_inputs(self) -> Tensor:
        return model_inputs(self.spec, self._private.images)

    def observe(self) -> Observation:
        """Compute the update on the private batch, apply the task's defence, return what the server sees."""
        server_copy = copy.deepcopy(self.model)  # the global model as sent, before the client's round
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}  # the client's own BN state
        try:
            update = PROTOCOLS.get(self.spec.fl.protocol)(
                self.model, params, buffers, self._model_inputs(), self._private.labels, self.spec.fl
            )
            statistics = self._bn_statistics(server_copy, params, buffers)
        except RuntimeError as err:  # torch's shape errors: the task's inputs do not fit its model
            raise SpecError(
                f"task '{self.spec.name}': model '{self.spec.victim.model}' cannot take inputs of shape "
                f"{self.input_shape} ({first_line(err)}); change data.image_size/channels or victim.model"
            ) from None
        if self.spec.defense is not None:
            before = {name: b.clone() for name, b in server_copy.named_buffers()}
            client = ClientRound(
                model=self.model,
                params=params,
                buffers=before,
                inputs=self._model_inputs(),
                targets=self._private.labels,
                fl=self.spec.fl,
                generator=client_generator(self.spec.defense, self.target),
            )
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

    def _bn_statistics(
        self, server_copy: nn.Module, params: dict[str, Tensor], buffers_after: dict[str, Tensor]
    ) -> BatchStatistics | None:
        """What ``threat.bn_statistics`` lets the server learn: for ``batch`` computed from what it
        observes alone (its copy's buffers and the uploaded ones)."""
        setting = self.spec.threat.bn_statistics
        if setting != "none" and not batch_norm_layers(self.model):
            raise SpecError(
                f"task '{self.spec.name}': threat.bn_statistics: {setting}, but model "
                f"'{self.spec.victim.model}' has no BatchNorm layer; set it to none"
            )
        if setting == "batch":
            return statistics_from_buffers(server_copy, dict(server_copy.named_buffers()), buffers_after)
        if setting == "known":
            copies = {name: b.clone() for name, b in self.model.named_buffers()}
            return tuple(
                (m.detach(), v.detach()) for m, v in batch_statistics(self.model, params, copies, self._model_inputs())
            )
        return None
