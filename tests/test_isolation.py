"""Isolated fits: an attack that opens a socket, writes outside its fit folder or reads the private
batch through the file system fails under isolation with a message that says why, and writes nothing.

These tests make real sandboxes (util-linux unshare and Linux namespaces, as CI has them): where none
can be made here they fail with the one-line reason, they do not skip.
"""

import os
import re
import socket
from pathlib import Path

import pytest
import torch

import benchmark
from benchmark import isolation
from benchmark.attacks import ATTACKS
from benchmark.data import cache_dir, package_path
from benchmark.errors import AttackError, SettingError
from benchmark.isolation import Isolation, sandbox_config

from misbehaving import Misbehaving
from support import make_spec
from test_runner import _Writes

ISOLATED = " (it ran --isolated: no network; it reads only the Python installation, leakbench and its own package"


@pytest.fixture
def misbehaving(monkeypatch: pytest.MonkeyPatch) -> None:
    """The misbehaving attack registered for this test alone."""
    ATTACKS.names()
    monkeypatch.setattr(ATTACKS, "_entries", {**ATTACKS._entries, "misbehaving": Misbehaving})


def _run(out: Path, action: str, target: str, isolated: bool = True):
    return benchmark.run(make_spec(targets={"count": 1}), "misbehaving", logger=None, out=out,
                         attack_options={"action": action, "target": target},
                         isolation=Isolation() if isolated else None)


def _raised(kind: str) -> str:
    return re.escape(f"attack Misbehaving raised {kind}") + ".*" + re.escape(ISOLATED)


def test_an_isolated_attack_has_no_network(tmp_path: Path, misbehaving):
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        _run(tmp_path / "plain", "connect", address, isolated=False)
        server.accept()[0].close()  # unisolated, it connected
        with pytest.raises(AttackError, match=_raised("OSError: [Errno 101] Network is unreachable")):
            _run(tmp_path / "isolated", "connect", address)
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.accept()


def test_an_isolated_attack_cannot_write_outside_its_fit_folder(tmp_path: Path, misbehaving):
    rows = tmp_path / "run" / "targets.jsonl"  # its own run's results, beside its fit folder
    with pytest.raises(AttackError, match=_raised(f"OSError: [Errno 30] Read-only file system: '{rows}'")):
        _run(tmp_path / "run", "write", str(rows))
    assert not rows.exists()


def test_an_isolated_attack_cannot_read_the_private_batch(tmp_path: Path, misbehaving):
    image = next(package_path("foolbox", "data").glob("cifar10_00_*.png"))  # the task's target 0
    plain = _run(tmp_path / "plain", "read", str(image), isolated=False)
    assert plain.targets[0].metrics["psnr"][0] > 100  # unisolated, it returns the private image itself
    with pytest.raises(AttackError, match=_raised(f"FileNotFoundError: [Errno 2] No such file or directory: '{image}'")):
        _run(tmp_path / "isolated", "read", str(image))


def test_the_sandbox_shows_python_leakbench_and_the_attack_and_covers_the_datasets():
    config = sandbox_config(Misbehaving, Isolation())
    package = str(Path(benchmark.__file__).parent)
    attack = str(Path(__file__).with_name("misbehaving.py"))
    assert package in config["readable"] and attack in config["readable"]
    for outside in (os.getcwd(), str(Path(package).parent), str(Path(__file__).parent), str(Path.home())):
        assert not any(path == outside or outside.startswith(path + "/") for path in config["readable"]), outside
    datasets = [package_path("foolbox", "data"), package_path("sklearn", "datasets", "data", "digits.csv.gz"),
                package_path("skimage", "data", "lfw_subset.npy")]
    assert {str(path) for path in datasets} <= set(config["hidden"])
    assert config["python_path"] == [str(Path(package).parent), str(Path(__file__).parent)]
    assert config["user"] == (isolation.NOBODY if os.geteuid() == 0 else None)
    assert str(cache_dir()) not in config["readable"]


def test_isolation_runs_on_the_cpu_and_says_what_is_missing_where_it_cannot(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(SettingError, match=r"^--isolated runs the attack on the CPU .* give --accelerator cpu"):
        Isolation().check("gpu")
    monkeypatch.setenv("PATH", "")
    assert isolation._probe.__wrapped__().startswith(
        "--isolated needs util-linux's unshare command, which is not on PATH; install util-linux")
    with pytest.raises(SettingError, match="time_limit must be a whole number >= 1, got 0"):
        Isolation(time_limit=0)


def test_what_a_sandbox_returns_is_read_without_running_code_and_checked(tmp_path: Path):
    written, path = tmp_path / "written", tmp_path / "output.pt"
    torch.save({"steps": 1, "reconstructions": [_Writes(written)]}, path)
    with pytest.raises(ValueError, match=r"^output.pt is not tensors and plain values \(UnpicklingError: "):
        isolation._read_back(path)
    assert not written.exists()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.pt")
    with pytest.raises(ValueError, match=r"^no readable output.pt"):
        isolation._read_back(path)
    observation = benchmark.runner.Victim(make_spec(), 0, benchmark.runner.load_samples(
        benchmark.runner.load_source(make_spec().data), [0]), 10).observe()
    item = {"images": torch.zeros(1, 3, 8, 8), "labels": torch.zeros(1, dtype=torch.int64), "loss": 0.0, "details": "{}"}
    with pytest.raises(AttackError, match=re.escape("attack Misbehaving ran --isolated and its outcome cannot be used: "
                                                    "problem 0's images are not a float tensor of shape (1, 3, 16, 16)")):
        isolation._reconstructions(Misbehaving, {"steps": 1, "reconstructions": [item]}, [observation])
