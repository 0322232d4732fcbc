"""Defences: client-side transformations of the shared update (the ``defense:`` key of a task).

A defence runs inside the :class:`~benchmark.victim.Victim`, after the FL protocol has computed the
update and before the server sees it; the attack sees only the transformed update (it is unaware of
the defence). Each defence is a frozen dataclass of its parameters with one ``strength`` parameter
(the one ``leakbench study defense`` sweeps); its :meth:`Defense.apply` receives the update and the
:class:`ClientRound` it came from (model, private batch, FL setting, a seeded generator), which
defences that look at single examples (DP-SGD) or at the model's representation (Soteria) need.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.core.errors import SpecError
from benchmark.core.registry import Registry, did_you_mean
from benchmark.protocol.spec import DefenseSpec, FLSpec

Update = dict[str, Tensor]  # parameter name -> its tensor of the shared update


@dataclass(frozen=True)
class ClientRound:
    """What a defence may use on the client's side: never leaves the victim.

    Attributes:
        model: the global model the client trained (architecture; ``params``/``buffers`` are its state).
        params, buffers: the model's parameters and buffers by name, as the protocol used them.
        inputs: the private batch as model inputs (N, C, H, W).
        targets: its labels (N,).
        fl: the FL setting of the round.
        generator: the defence's random source, seeded from the defence seed and the target.
    """

    model: nn.Module
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    inputs: Tensor
    targets: Tensor
    fl: FLSpec
    generator: torch.Generator


@dataclass(frozen=True)
class Defense:
    """Base class: a registered defence is a frozen dataclass of its parameters."""

    strength: ClassVar[str | None] = None  # the parameter a study sweeps; None: the defence has none

    def apply(self, update: Update, client: ClientRound) -> Update:
        """The defended update, one tensor per name of ``update`` (same shapes)."""
        raise NotImplementedError

    def privacy(self, steps: int | None = None, sample_rate: float | None = None) -> dict[str, float] | None:
        """A formal guarantee (e.g. ``{epsilon, delta}``) for ``steps`` rounds at this sampling rate
        (default: the setting the defence states), or None where the defence gives none."""
        return None

    def _require(self, condition: bool, problem: str) -> None:
        if not condition:
            raise SpecError(f"defense '{DEFENSES.name_of(type(self))}': {problem}")


def _discover() -> None:
    for module in ("noise", "clipping", "dpsgd", "pruning", "quantization", "soteria"):
        importlib.import_module(f"benchmark.defenses.{module}")


class _DefenseRegistry(Registry[type[Defense]]):
    def name_of(self, cls: type[Defense]) -> str:
        return next(name for name, entry in self if entry is cls)


DEFENSES = _DefenseRegistry("defense", base=Defense, discover=_discover)


def build_defense(spec: DefenseSpec) -> Defense:
    """The defence a spec names, its parameters checked (names, types, ranges) with one-line errors."""
    cls = DEFENSES.get(spec.name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in spec.params.items():
        if key not in fields:
            raise SpecError(
                f"defense '{spec.name}' has no parameter '{key}'{did_you_mean(key, list(fields))}; "
                f"parameters: {', '.join(fields) or 'none'}"
            )
        kind = fields[key].type
        try:
            values[key] = float(value) if kind == "float" else int(value) if kind == "int" else value
        except (TypeError, ValueError):
            raise SpecError(
                f"defense '{spec.name}': parameter '{key}' must be a number ({kind}), got {value!r}"
            ) from None
        if kind == "int" and values[key] != value:
            raise SpecError(f"defense '{spec.name}': parameter '{key}' must be an integer, got {value!r}")
        if kind == "float" and not math.isfinite(values[key]):
            raise SpecError(f"defense '{spec.name}': parameter '{key}' must be a finite number, got {value!r}")
    return cls(**values)


def with_strength(spec: DefenseSpec, value: float) -> DefenseSpec:
    """``spec`` with its defence's strength parameter set to ``value`` (an int parameter takes an integral value)."""
    cls = DEFENSES.get(spec.name)
    if cls.strength is None:
        raise SpecError(
            f"defense '{spec.name}' has no strength parameter to vary; defences with one: "
            f"{', '.join(name for name, entry in DEFENSES if entry.strength is not None)}"
        )
    kind = next(f.type for f in dataclasses.fields(cls) if f.name == cls.strength)
    strength = value if kind != "int" else int(value) if float(value).is_integer() else value
    params = {**spec.params, cls.strength: strength}
    build_defense(spec.model_copy(update={"params": params}))  # checks the value
    return spec.model_copy(update={"params": params})


def defense_record(spec: DefenseSpec) -> dict[str, Any]:
    """What a result records of its defence: the spec, and the guarantee it gives in its stated setting
    (``privacy``, e.g. DP-SGD's ε and δ; None where there is none)."""
    return {**spec.model_dump(mode="json"), "privacy": build_defense(spec).privacy()}


def client_generator(spec: DefenseSpec, target: int) -> torch.Generator:
    """The random source of the defence of target ``target``: a function of (defence seed, target) alone."""
    seed = int(np.random.SeedSequence([spec.seed, target]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


def global_norm(tensors: list[Tensor]) -> Tensor:
    """‖(t₁, …, t_m)‖₂: the L2 norm of the tensors concatenated (a scalar)."""
    return torch.sqrt(sum(t.pow(2).sum() for t in tensors))
