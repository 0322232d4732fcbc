"""The sandbox's side of an isolated fit or description (:mod:`benchmark.pipeline.isolation` is the
parent's): it reads its input, runs the fit, and leaves the outcome or the error."""

from __future__ import annotations

import importlib
import json
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchmark.attacks import ATTACKS
from benchmark.core.errors import ATTACK_FAILURES, LeakBenchError, NotApplicableError
from benchmark.core.files import write_atomic
from benchmark.pipeline.config import attack_config
from benchmark.pipeline.fit import FitOptions, fit
from benchmark.pipeline.isolation import INPUT, OUTPUT, _saved, _values, observation_from_record

if TYPE_CHECKING:
    pass


def serve(folder: Path) -> None:
    """The sandbox's side of an isolated fit (or description): its input from ``folder``, the fit, its
    outcome (the reconstructions, or the error as [kind, type name, message]; the kind is the failure
    class of :data:`~benchmark.core.errors.ATTACK_FAILURES` it is, ``error``, ``memory``, ``crash``, or, for
    a description, ``load``) left in ``folder``."""
    try:
        payload = torch.load(folder / INPUT, map_location="cpu", weights_only=True)
        torch.set_num_threads(payload["threads"])
        outcome = (_description if "describe" in payload else _fitted)(payload)
    except Exception as err:  # every error crosses back as its kind, name and message; its traceback stays here
        failure = [cls.__name__ for cls in ATTACK_FAILURES if isinstance(err, cls)]
        if failure:
            kind = failure[0]
        elif isinstance(err, LeakBenchError):
            kind = "error"
        elif isinstance(err, MemoryError) or "can't allocate memory" in str(err):  # torch's CPU allocator
            kind = "memory"
        else:
            kind = "crash"
            traceback.print_exc()
        outcome = {"error": [kind, type(err).__name__, str(err)]}
    write_atomic(folder / OUTPUT, _saved(outcome))


def _imported(module: str, attribute: str) -> Any:
    found = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _description(payload: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's side of :meth:`Isolation.describe`: the class's name and its config's values."""
    request = payload["describe"]
    try:
        attack_cls = _imported(*payload["attack"])
        ATTACKS.check(request["name"], attack_cls)
    except Exception as err:  # what would make the entry point a broken plugin unisolated
        return {"error": ["load", type(err).__name__, str(err)]}
    config = attack_config(attack_cls, request["overrides"], request["max_steps_cap"])
    return {"name": attack_cls.__name__, "config": _values(config)}


def _fitted(payload: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's side of :meth:`Isolation.fit`: after asking the attack's ``unsupported()`` of each
    observation (a reason is a :class:`NotApplicableError`), the fit's reconstructions and steps."""
    attack_cls = _imported(*payload["attack"])
    distinct = [observation_from_record(record) for record in payload["observations"]]
    for observation in distinct:
        if (reason := attack_cls.unsupported(observation)) is not None:
            raise NotApplicableError(reason)
    settings = payload["fit"]
    options = FitOptions(
        progress=settings["progress"],
        checkpoint_every=settings["checkpoint_every"],
        checkpoint=None if settings["checkpoint"] is None else Path(settings["checkpoint"]),
    )
    reconstructions, steps = fit(
        attack_cls,
        [distinct[k] for k in payload["problems"]],
        attack_cls.Config(**payload["config"]),
        payload["seeds"],
        options,
        settings["step_offset"],
    )
    return {
        "steps": int(steps),
        "reconstructions": [
            {
                "images": r.images.detach().cpu(),
                "labels": r.labels.detach().cpu(),
                "loss": float(r.loss),
                "details": json.dumps(r.details),
            }
            for r in reconstructions
        ],
    }
