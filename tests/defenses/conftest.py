"""The defence tests' client round: :func:`support.make_client` (a conv layer and a fully connected head)."""

from __future__ import annotations

import pytest
from support import make_client

from benchmark.defenses import ClientRound


@pytest.fixture
def client() -> ClientRound:
    return make_client()
