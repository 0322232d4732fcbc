"""Leaderboards: one JSON entry per (suite, task, attack), a schema in code, boards rendered from them.

``leaderboards/<suite>/<task>/<attack>.json`` is written by :func:`submit` (or :func:`pull` from
W&B), re-run by :func:`verify`, and rendered to ``leaderboards/README.md`` and
``leaderboards/site/index.html`` by :func:`build`; :func:`check` fails on an invalid entry or a
stale rendering.
"""

from benchmark.apps.leaderboard.pull import pull
from benchmark.apps.leaderboard.render import build, check
from benchmark.apps.leaderboard.schema import Entry, load_entry
from benchmark.apps.leaderboard.submit import submit
from benchmark.apps.leaderboard.verify import format_verdict, verify

__all__ = ["Entry", "build", "check", "format_verdict", "load_entry", "pull", "submit", "verify"]
