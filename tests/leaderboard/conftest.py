"""The leaderboard tests' fixture: a board of synthetic quick-suite entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.leaderboard.schema import write_entry

from synthetic import fake_entry, png


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A leaderboard root with three quick-suite entries (one partial) and their pictures."""
    for entry in (fake_entry(attack="dlg", psnr=(20.0, 30.0, 40.0)), fake_entry(attack="idlg", psnr=(50.0, 60.0, 70.0)),
                  fake_entry(attack="slow", psnr=(90.0,))):
        write_entry(tmp_path, entry, png())
    return tmp_path
