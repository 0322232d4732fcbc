"""Seeds of the problems a run solves."""

from __future__ import annotations

import numpy as np


def problem_seed(seed: int, target: int, restart: int) -> int:
    """The seed of one problem: a function of (run seed, target, restart) alone."""
    return int(np.random.SeedSequence([seed, target, restart]).generate_state(1)[0])
