"""``leakbench leaderboard pull --wandb ENTITY/PROJECT``: entries from runs kept on W&B.

A run logged with ``--logger wandb`` carries its whole ``results.json`` in its summary (key
:data:`benchmark.pipeline.loggers.WANDB_RESULT_KEY`). Finished runs of a suite's tasks measured under the
suite's protocol become unverified entries without a picture (``leakbench verify`` re-runs them);
a run with more targets than the protocol contributes its first targets (their rows record the groups
they were computed in, which ``verify`` compares with the protocol's). Runs that are unfinished, of other tasks or of another protocol are skipped.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from benchmark.apps.leaderboard.protocol import nonconformity, suite_protocols
from benchmark.apps.leaderboard.provenance import NO_GIT
from benchmark.apps.leaderboard.schema import entry_path, write_entry
from benchmark.apps.leaderboard.submit import entry_from_result
from benchmark.core.errors import LeakBenchError
from benchmark.pipeline.loggers import WANDB_RESULT_KEY
from benchmark.protocol.loading import spec_hash

log = logging.getLogger(__name__)


def _runs(path: str) -> list[Any]:
    import wandb

    try:
        return list(wandb.Api(timeout=30).runs(path))
    except (wandb.errors.Error, OSError) as err:  # no credentials, no network, no such project
        reason = " ".join(str(err).split())[:200]
        raise LeakBenchError(
            f"cannot read the W&B runs of {path} ({reason}); check the network, `wandb login` "
            f"and the ENTITY/PROJECT name"
        ) from None


def pull(path: str, suite: str, *, root: Path = Path("leaderboards"), replace: bool = False) -> list[Path]:
    """Write an entry for each usable run of the W&B project ``path``; returns the paths written.

    An existing entry is kept unless ``replace``; of several runs for one (task, attack) the last listed wins.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", path):
        raise LeakBenchError(f"'{path}' is not a W&B project; give it as ENTITY/PROJECT")
    protocols = {protocol.spec.name: protocol for protocol in suite_protocols(suite)}
    written: dict[Path, Path] = {}
    for run in _runs(path):
        result = run.summary.get(WANDB_RESULT_KEY)
        if run.state != "finished" or result is None:
            log.info(
                "skipped W&B run %s: %s", run.id, "not finished" if run.state != "finished" else "no leakbench result"
            )
            continue
        result = json.loads(json.dumps(result, default=dict))  # the API's summary objects -> plain JSON
        protocol = protocols.get(result["task"])
        if protocol is None or result["spec_hash"] != spec_hash(protocol.spec):
            log.info("skipped W&B run %s: %s is not a task of suite %s as it is now", run.id, result["task"], suite)
            continue
        entry = entry_from_result(result, protocol, source=f"wandb:{path}/{run.id}", git=NO_GIT, picture=False)
        if departures := nonconformity(entry, protocol):
            log.info("skipped W&B run %s: %s", run.id, departures)
            continue
        target = entry_path(root, entry)
        if target.exists() and not replace and target not in written:
            log.info("kept %s (pass --replace to overwrite it with W&B run %s)", target, run.id)
            continue
        written[target] = write_entry(root, entry, None)
    return list(written.values())
