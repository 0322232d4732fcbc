"""Label-recovery rules, registered by name: the private batch's labels read from an Observation.

A rule takes one observation and returns the batch's label multiset (order-free: position i of a
rule's labels says nothing about image i) with its per-class counts and its own numbers, or refuses
with the reason its paper's assumptions fail (:meth:`LabelRule.unsupported`). Attacks that need
labels take a rule by name from their config (``labels: <rule>``); ``leakbench study labels``
measures every rule side by side. Plugins add rules through the ``leakbench.label_rules``
entry-point group.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from benchmark.attacks.labels.head import counts_to_labels, head_layer
from benchmark.core.errors import NotApplicableError
from benchmark.core.registry import Registry
from benchmark.fl.observation import Observation

_BUILTIN = ("single", "analytic", "yin", "llg", "geng", "ilrg")


@dataclass(frozen=True)
class RecoveredLabels:
    """What a rule reads from one observation."""

    labels: Tensor  # (B,) int64, sorted: a multiset
    counts: Tensor  # (K,) int64, labels per class
    details: dict[str, Any] = field(default_factory=dict)  # the rule's own numbers, JSON-ready


class LabelRule:
    """A label-recovery rule: :meth:`estimate_counts` under the assumptions :meth:`unsupported` checks.

    Subclasses set ``paper`` (the citation) and ``protocols`` (the FL protocols whose update they read).
    """

    paper: ClassVar[str]
    protocols: ClassVar[tuple[str, ...]] = ("fedsgd",)

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        """Why the rule's assumptions fail on such an observation, or None where they hold."""
        if observation.fl.protocol not in cls.protocols:
            return f"it reads a {' or '.join(cls.protocols)} update, not {observation.fl.protocol}"
        try:
            head = head_layer(observation.model)
        except ValueError as err:
            return str(err)
        if head.out_features < 2:
            return "it reads a softmax head of at least two classes (this model has one logit)"
        return None

    @classmethod
    def estimate_counts(cls, observation: Observation) -> tuple[Tensor, dict[str, Any]]:
        """The batch's labels per class (K,) int64, summing to the batch size, and the rule's details."""
        raise NotImplementedError


def _discover() -> None:
    for module in _BUILTIN:
        importlib.import_module(f"benchmark.attacks.labels.{module}")


LABEL_RULES: Registry[type[LabelRule]] = Registry(
    "label rule", base=LabelRule, discover=_discover, entry_point_group="leakbench.label_rules"
)


def recover_labels(rule: str, observation: Observation) -> RecoveredLabels:
    """The labels rule ``rule`` reads from ``observation``; a :class:`NotApplicableError` naming the
    failed assumption where the rule does not apply."""
    found = LABEL_RULES.get(rule)
    if (reason := found.unsupported(observation)) is not None:
        raise NotApplicableError(f"label rule '{LABEL_RULES.canonical(rule)}' does not apply: {reason}")
    counts, details = found.estimate_counts(observation)
    return RecoveredLabels(counts_to_labels(counts), counts, details)
