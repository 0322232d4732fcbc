"""The environment of an entry: the constraints file it names, and how a re-run's differs."""

from pathlib import Path

import torch
from synthetic import ENVIRONMENT, fake_entry, png, traced

from benchmark.apps.leaderboard.environment import compare_environment, installed, read_constraints, write_constraints
from benchmark.apps.leaderboard.render import check
from benchmark.apps.leaderboard.schema import write_entry


def test_the_constraints_file_pins_what_the_index_serves_and_is_named_by_its_content(tmp_path: Path):
    versions = installed()
    assert versions["torch"] == torch.__version__.split("+")[0]
    assert "leakbench" not in versions  # installed from its checkout: the entry names the commit instead
    name = write_constraints(tmp_path)
    assert name.startswith("environments/") and write_constraints(tmp_path) == name
    assert read_constraints(tmp_path / name) == versions
    assert (tmp_path / name).read_text().splitlines()[1] == "# pip install -e . -c <this file>"


def test_verify_names_the_packages_that_differ_from_the_entrys_and_how_to_install_them(tmp_path: Path):
    name = write_constraints(tmp_path)
    here = {**ENVIRONMENT, "torch": torch.__version__}
    recorded = fake_entry().environment.model_copy(update={"constraints": name, **here})
    assert compare_environment(recorded, tmp_path, here) == f"environment: as the entry's {name}"
    path = tmp_path / name
    path.write_text(path.read_text().replace(f"torch=={installed()['torch']}", "torch==2.0.0") + "gone==1.0\n")
    line = compare_environment(recorded, tmp_path, {**here, "device": "NVIDIA H200"})
    assert line == (
        f"environment: differs from the entry's {name} in torch {installed()['torch']} (the entry's: "
        f"2.0.0), gone not installed (the entry's: 1.0), device NVIDIA H200 (the entry's: cpu); "
        f"`pip install -e . -c {path}` installs the entry's versions"
    )


def test_an_entry_without_a_constraints_file_is_compared_by_its_recorded_versions(tmp_path: Path):
    recorded = fake_entry().environment
    assert compare_environment(recorded, tmp_path, {**ENVIRONMENT, "torch": "2.15.0"}) == (
        "environment: differs from the entry's (which names no constraints file: torch, lightning, python and device "
        "compared) in torch 2.15.0 (the entry's: 2.5.0)"
    )


def test_check_fails_on_an_entry_whose_constraints_file_is_missing(board: Path, commit: str):
    entry = traced(fake_entry(attack="pinned"), commit)
    entry = entry.model_copy(
        update={"environment": entry.environment.model_copy(update={"constraints": "environments/0123456789ab.txt"})}
    )
    path = write_entry(board, entry, png())
    assert (
        f"{path}: its constraints file environments/0123456789ab.txt is missing; restore it from git or "
        f"re-submit it" in check(board)
    )
