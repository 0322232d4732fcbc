"""An attack's config for a run, and whether the attack applies to a task."""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import Attack
from benchmark.attacks.labels import LABEL_RULES
from benchmark.core.errors import LeakBenchError, NotApplicableError, SettingError, at_least
from benchmark.core.registry import did_you_mean
from benchmark.fl.observation import Observation
from benchmark.protocol.spec import TaskSpec


def attack_config(attack_cls: type[Attack], overrides: dict[str, Any], max_steps_cap: int | None = None) -> Any:
    """The attack's config dataclass with paper defaults, updated by ``overrides`` (each of its default's
    kind: a number for a number, a list for a tuple; ``max_steps`` at least 1, and at most ``max_steps_cap``)."""
    fields = {f.name: f.default for f in dataclasses.fields(attack_cls.Config)}
    for key, value in overrides.items():
        if key not in fields:
            raise LeakBenchError(
                f"attack option '{key}' does not exist{did_you_mean(key, list(fields))}; options: {', '.join(fields)}"
            )
        if not _same_kind(value, fields[key]):
            raise SettingError(
                f"attack option '{key}' takes a value like its default {fields[key]!r} "
                f"({type(fields[key]).__name__}), got {value!r}"
            )
    config = attack_cls.Config(**overrides)
    at_least("max_steps", config.max_steps, 1)
    if getattr(config, "labels", "auto") != "auto":
        LABEL_RULES.get(config.labels)  # an unknown rule fails here, before any work, with "did you mean"
    if max_steps_cap is not None and config.max_steps > max_steps_cap:
        config = dataclasses.replace(config, max_steps=max_steps_cap)
    return config


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` can stand where the config's ``default`` stands (None: any value)."""
    if default is None or default is dataclasses.MISSING:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_applies(
    attack: str, spec: TaskSpec, observation: Observation, attack_cls: type[Attack] | None = None
) -> None:
    """A :class:`NotApplicableError` where ``attack`` (whose class is ``attack_cls``, default the
    registered one) cannot run on an observation of task ``spec``."""
    if (reason := (attack_cls or ATTACKS.get(attack)).unsupported(observation)) is not None:
        raise not_applicable(attack, spec, reason)


def not_applicable(attack: str, spec: TaskSpec, reason: object) -> NotApplicableError:
    return NotApplicableError(f"attack '{attack}' does not apply to task '{spec.name}': {reason}")


def modifies_model(attack: str, spec: TaskSpec, attack_cls: type[Attack]) -> bool:
    """Whether ``attack`` hands the victim a modified global model before the round (it defines
    ``prepare_model``): only on a task whose server is malicious, else a :class:`NotApplicableError`."""
    if not attack_cls.modifies_model():
        return False
    if spec.threat.server != "malicious":
        raise not_applicable(
            attack,
            spec,
            "it modifies the global model before the round (a malicious server) and this task's server is "
            "honest; run it on a task with threat.server: malicious",
        )
    return True
