"""What a board fixes for each task of a suite; an entry is ranked only when measured under it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from benchmark.apps.leaderboard.schema import Entry
from benchmark.core.errors import LeakBenchError
from benchmark.core.registry import did_you_mean
from benchmark.metrics import metric_info
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.loading import load_suite, spec_hash
from benchmark.protocol.spec import TaskSpec

PROTOCOL_SEED = 0  # the attack seed of every board; target t, restart r are seeded from (0, t, r)


@dataclass(frozen=True)
class Protocol:
    """One task of a suite as its board measures it: the spec (victim seeds, threat model, metrics,
    attack options it fixes), the first ``targets`` targets, the budget and the seed. An attack
    chooses none of these."""

    suite: str
    spec: TaskSpec
    targets: int  # the suite's count, else the spec's
    max_steps: int | None  # the suite's cap, else the spec's budget; None: the attack's own default
    restarts: int
    attacks: tuple[str, ...] | None  # the attacks the suite runs on this task; None: every registered one

    def runs(self, attack: str) -> bool:
        return self.attacks is None or attack in self.attacks


def suite_protocols(suite: str, tasks: Sequence[str] | None = None) -> list[Protocol]:
    """The protocols of ``suite``, or of the given subset of its tasks."""
    definition = load_suite(suite)
    for name in tasks or ():
        if name not in definition.tasks:
            raise LeakBenchError(
                f"task '{name}' is not in suite '{suite}'{did_you_mean(name, list(definition.tasks))}; "
                f"its tasks: {', '.join(definition.tasks)}"
            )
    protocols = []
    for name in tasks or definition.tasks:
        spec = load_task(name)
        protocols.append(
            Protocol(
                suite,
                spec,
                definition.targets or spec.targets.count,
                definition.max_steps or spec.budget.max_steps,
                spec.budget.restarts,
                definition.attacks_of(name),
            )
        )
    return protocols


def protocol_of(entry: Entry) -> Protocol:
    """The protocol an entry belongs to (its suite and task must still exist)."""
    return suite_protocols(entry.suite, [entry.task])[0]


def same_task(entry: Entry, spec: TaskSpec) -> bool:
    """Whether the entry's recorded spec, read under today's schema, is ``spec``: fields the schema
    gained since take their defaults (which keep the old behaviour), so only a real change differs."""
    try:
        return spec_hash(TaskSpec.model_validate(entry.task_spec)) == spec_hash(spec)
    except ValidationError:  # a field it records was removed or changed type
        return False


def nonconformity(entry: Entry, protocol: Protocol) -> str | None:
    """How the entry departs from the protocol (e.g. the task changed since), or None when it does not."""
    checks = [
        ("task_version", entry.task_version, protocol.spec.version),
        ("protocol_targets", entry.protocol_targets, protocol.targets),
        ("seed", entry.seed, PROTOCOL_SEED),
        ("restarts", entry.restarts, protocol.restarts),
    ]
    if protocol.max_steps is not None:
        checks.append(("attack_config.max_steps", entry.attack_config.get("max_steps"), protocol.max_steps))
    for key, value in protocol.spec.budget.options.get(entry.attack, {}).items():
        checks.append((f"attack_config.{key}", entry.attack_config.get(key), value))
    departures = [f"{name} {got!r} (the protocol's: {want!r})" for name, got, want in checks if got != want]
    if not protocol.runs(entry.attack):
        departures.append(
            f"the suite does not run {entry.attack} on this task (its attacks: {', '.join(protocol.attacks)})"
        )
    if not same_task(entry, protocol.spec):
        departures.append("the task spec changed since")
    redefined = sorted(
        name
        for name, value in entry.summary.metrics.items()
        if value is not None and not metric_info(name).defines(entry.metric_definitions.get(name))
    )
    if redefined:
        departures.append(f"measured under another definition of {', '.join(redefined)} (or none recorded)")
    return ", ".join(departures) or None
