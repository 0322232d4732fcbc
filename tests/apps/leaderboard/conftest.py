"""The leaderboard tests' fixture: a board of synthetic quick-suite entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import git
from synthetic import fake_entry, png, traced

from benchmark.apps.leaderboard.schema import write_entry


@pytest.fixture
def commit(clean_checkout: Path) -> str:
    """The commit of the clean checkout leakbench is seen to run from."""
    return git(clean_checkout, "rev-parse", "HEAD")


@pytest.fixture
def board(tmp_path: Path, commit: str) -> Path:
    """A leaderboard root with three verified quick-suite entries of ``commit`` (one partial) and their pictures."""
    root = tmp_path / "leaderboards"
    for entry in (
        fake_entry(attack="dlg", psnr=(20.0, 30.0, 40.0)),
        fake_entry(attack="idlg", psnr=(50.0, 60.0, 70.0)),
        fake_entry(attack="slow", psnr=(90.0,)),
    ):
        write_entry(root, traced(entry, commit), png())
    return root
