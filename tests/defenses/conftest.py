"""The defence tests' client round: :func:`support.make_client` (a conv layer and a fully connected head)."""

from __future__ import annotations

import pytest

from benchmark.defenses import ClientRound

from support import make_client


@pytest.fixture
def client() -> ClientRound:
    return make_client()
