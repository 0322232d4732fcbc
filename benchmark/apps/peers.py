"""breaching (Geiping et al., github.com/JonasGeiping/breaching), the field's reference framework, as a peer.

:class:`BreachingPeer` runs a task's victim and one attack through breaching's own API: the case
and attack configs (``breaching.get_case_config``, ``get_attack_config``), the model it builds
(``breaching.cases.construct_model``) holding LeakBench's victim weights, its honest server
(``construct_server``), its user computing the update (``UserSingleStep.compute_local_updates``
with the private batch as ``custom_data``) and its attacker (``breaching.attacks.prepare_attack``,
``reconstruct``). LeakBench's settings are translated into breaching's config keys; a setting
breaching cannot express is refused, never approximated. ``leakbench perf --vs breaching`` times
it beside LeakBench; ``tests/apps/test_peers.py`` holds the two frameworks' objectives, metrics and
reconstructions to each other; ``docs/breaching.md`` lists what differs by design.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.core.errors import LeakBenchError, NotApplicableError, SettingError, first_line
from benchmark.fl.observation import Observation, model_inputs
from benchmark.protocol.spec import TaskSpec

INSTALL = "pip install 'leakbench[peers]'"
MODELS = {"lenet_zhu": "lenet_zhu", "convnet": "ConvNet"}  # LeakBench's victim name → breaching's
ATTACKS = {"inverting_gradients": "invertinggradients", "dlg": "deepleakage"}  # → breaching's attack config
IG_DECAY = (3 / 8, 5 / 8, 7 / 8)  # breaching's "step-lr": lr ×0.1 at max_iterations // 2.667, // 1.6, // 1.142
SETUP = dict(device=torch.device("cpu"), dtype=torch.float)


def import_breaching() -> Any:
    """The ``breaching`` package, or a one-line error saying how to install it."""
    try:
        with _quiet():
            import breaching
    except ImportError as err:
        raise LeakBenchError(f"the breaching peer is not installed ({first_line(err, 80)}): {INSTALL}") from None
    logging.getLogger("breaching").setLevel(logging.WARNING)  # its attacks log every few hundred steps
    return breaching


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """breaching prints the case it builds and Hydra warns about its config API; neither is ours to show."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _attack_config(attack: str, config: Any, labels_known: bool) -> tuple[str, list[str]]:
    """breaching's attack config name and the overrides that give it LeakBench's ``config``."""
    if attack not in ATTACKS:
        raise SettingError(f"the breaching peer runs {' and '.join(ATTACKS)}, not '{attack}'")
    steps = [f"optim.max_iterations={config.max_steps}", f"optim.step_size={config.lr}"]
    if config.patience is not None:
        raise SettingError("breaching runs every step: compare it without patience")
    if attack == "inverting_gradients":
        if config.bn_prior > 0 or tuple(config.lr_decay_at) != IG_DECAY:
            raise SettingError(
                "breaching's Inverting Gradients has no BatchNorm prior and decays lr at 3/8, 5/8, 7/8 "
                "only: compare it with bn_prior 0 and the default lr_decay_at"
            )
        return ATTACKS[attack], steps + [
            f"regularization.total_variation.scale={config.tv}",
            f"optim.signed={'hard' if config.signed else 'null'}",
            f"optim.boxed={config.boxed}",
            "label_strategy=iDLG",
        ]
    if config.lbfgs_iterations != 20 or config.stop_loss is not None:
        raise SettingError(
            "breaching's DLG runs torch's L-BFGS with 20 iterations a step and no stopping loss: "
            "compare it with lbfgs_iterations 20 and no stop_loss"
        )
    # breaching's euclidean objective is ½·Σ‖∇'−∇‖²; scale 2 makes it DLG's Σ‖∇'−∇‖²
    known = ["attack_type=optimization"] if labels_known else []  # its joint (label-learning) attacker refuses labels
    return ATTACKS[attack], steps + ["objective.scale=2.0", *known]


def copy_weights(source: nn.Module, target: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Copy ``source``'s parameters and buffers into ``target`` in registration order, refused unless
    every shape matches and the two models then give the same output on a random input."""
    pairs = list(zip(source.parameters(), target.parameters())) + list(zip(source.buffers(), target.buffers()))
    counts = (
        len(list(source.parameters())) + len(list(source.buffers())),
        len(list(target.parameters())) + len(list(target.buffers())),
    )
    if counts[0] != counts[1] or any(a.shape != b.shape for a, b in pairs):
        raise NotApplicableError("breaching builds this model with other parameter shapes than LeakBench's")
    with torch.no_grad():
        for ours, theirs in pairs:
            theirs.copy_(ours)
        probe = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
        same = torch.allclose(copy.deepcopy(source).eval()(probe), copy.deepcopy(target).eval()(probe), atol=1e-5)
    if not same:
        raise NotApplicableError("breaching's model holding LeakBench's weights computes another function")


@dataclass(frozen=True)
class Round:
    """One FL round in breaching's terms: the server's payload (a copy of the model as sent) and
    the user's shared data (its gradients and metadata)."""

    payload: dict[str, Any]
    shared: dict[str, Any]


class BreachingPeer:
    """A task's victim and attack, in breaching.

    Args:
        spec: the task (its victim must be one of :data:`MODELS`; BatchNorm only in eval mode).
        attack: ``inverting_gradients`` or ``dlg``.
        config: the LeakBench attack config to translate.
        observation: one observation of the task (its shapes, class count and preprocessing).
    """

    def __init__(self, spec: TaskSpec, attack: str, config: Any, observation: Observation) -> None:
        breaching = import_breaching()
        if spec.victim.model not in MODELS:
            raise SettingError(f"the breaching peer builds {', '.join(MODELS)}, not '{spec.victim.model}'")
        if observation.model.training and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in observation.model.modules()
        ):
            raise NotApplicableError(
                "breaching's honest server sends BatchNorm buffers, so its user runs in eval "
                "mode: compare a task with victim.mode: eval"
            )
        labels_known = observation.labels is not None
        if attack == "inverting_gradients" and not labels_known and observation.batch_size != 1:
            raise NotApplicableError(
                "LeakBench's Inverting Gradients learns unknown labels of a batch, breaching's "
                "reads them off the update: compare batch size 1 or known labels"
            )
        self.spec, self.input_shape = spec, observation.input_shape
        channels, height, width = observation.input_shape
        normalization = observation.normalization
        mean, std = (normalization.mean, normalization.std) if normalization else ((0.0,) * channels, (1.0,) * channels)
        name, overrides = _attack_config(attack, config, labels_known)
        with _quiet():
            case = breaching.get_case_config(
                "1_single_image_small",
                overrides=[
                    f"model={MODELS[spec.victim.model]}",
                    f"data.classes={observation.num_classes}",
                    f"data.shape=[{channels},{height},{width}]",
                    f"data.mean={list(mean)}",
                    f"data.std={list(std)}",
                    f"user.num_data_points={observation.batch_size}",
                    f"user.provide_labels={labels_known}",
                ],
            )
            model, loss = breaching.cases.construct_model(case.model, case.data, pretrained=False)
            self.server = breaching.cases.construct_server(model, loss, case, SETUP)
            self.model = self.server.vet_model(model)
            self.user = breaching.cases.users.UserSingleStep(self.model, loss, None, SETUP, idx=0, cfg_user=case.user)
            self.attacker = breaching.attacks.prepare_attack(
                self.model, loss, breaching.get_attack_config(name, overrides=overrides), SETUP
            )
        self.user.data_key = "inputs"  # what the user sets when it loads its own data, which custom_data skips
        self.case = case

    def observe(self, model: nn.Module, images: Tensor, labels: Tensor) -> Round:
        """The server sends ``model``'s weights; breaching's user computes its update on the private
        ``images`` (N, C, H, W) in [0, 1] with ``labels`` (N,)."""
        copy_weights(model, self.model, self.input_shape)
        payload = self.server.distribute_payload()
        payload = {
            **payload,
            "parameters": [p.detach().clone() for p in payload["parameters"]],
            "buffers": None if payload["buffers"] is None else [b.clone() for b in payload["buffers"]],
        }
        shared, _ = self.user.compute_local_updates(
            payload, custom_data={"inputs": model_inputs(self.spec, images), "labels": labels}
        )
        return Round(payload, shared)

    def reconstruct(self, round_: Round, initial: Tensor | None = None) -> Tensor:
        """breaching's attack on one round, from its own random start or from ``initial`` (model
        inputs (N, C, H, W)); returns its reconstruction in model-input coordinates (N, C, H, W)."""
        with _quiet():
            reconstruction, _ = self.attacker.reconstruct([round_.payload], [round_.shared], {}, initial_data=initial)
        return reconstruction["data"].detach()
