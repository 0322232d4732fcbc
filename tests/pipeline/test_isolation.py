"""Isolated fits: an attack that opens a socket, writes outside its fit folder or reads the private
batch through the file system fails under isolation with a message that says why, and writes nothing.

These tests make real sandboxes (util-linux unshare and Linux namespaces, as CI has them): where none
can be made here they fail with the one-line reason, they do not skip.
"""

import json
import logging
import os
import re
import socket
import sys
from pathlib import Path

import pytest
import torch
from misbehaving import Misbehaving
from support import make_spec
from test_runner import _Writes

import benchmark
from benchmark.apps.leaderboard import load_entry, submit, verify
from benchmark.attacks import ATTACKS
from benchmark.core.downloads import cache_dir, package_path
from benchmark.core.errors import AttackError, LeakBenchError, SettingError
from benchmark.data import load_samples, load_source
from benchmark.pipeline import isolation
from benchmark.pipeline.isolation import Isolation, sandbox_config
from benchmark.victim.client import Victim

ISOLATED = " (it ran --isolated: no network; it reads only the Python installation, leakbench and its own package"


@pytest.fixture
def misbehaving(monkeypatch: pytest.MonkeyPatch) -> None:
    """The misbehaving attack registered for this test alone."""
    ATTACKS.names()
    monkeypatch.setattr(ATTACKS, "_entries", {**ATTACKS._entries, "misbehaving": Misbehaving})


def _run(out: Path, action: str, target: str, isolated: bool = True):
    return benchmark.run(
        make_spec(targets={"count": 1}),
        "misbehaving",
        logger=None,
        out=out,
        attack_options={"action": action, "target": target},
        isolation=Isolation() if isolated else None,
    )


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
    with pytest.raises(
        AttackError, match=_raised(f"FileNotFoundError: [Errno 2] No such file or directory: '{image}'")
    ):
        _run(tmp_path / "isolated", "read", str(image))


def test_the_sandbox_shows_python_leakbench_and_the_attack_and_covers_the_datasets():
    config = sandbox_config(Misbehaving.__module__, Isolation())
    package = str(Path(benchmark.__file__).parent)
    attack = str(Path(__file__).with_name("misbehaving.py"))
    assert package in config["readable"] and attack in config["readable"]
    for outside in (os.getcwd(), str(Path(package).parent), str(Path(__file__).parent), str(Path.home())):
        assert not any(path == outside or outside.startswith(path + "/") for path in config["readable"]), outside
    datasets = [
        package_path("foolbox", "data"),
        package_path("sklearn", "datasets", "data", "digits.csv.gz"),
        package_path("skimage", "data", "lfw_subset.npy"),
    ]
    assert {str(path) for path in datasets} <= set(config["hidden"])
    assert config["python_path"] == [str(Path(package).parent), str(Path(__file__).parent)]
    assert config["user"] == (isolation.NOBODY if os.geteuid() == 0 else None)
    assert str(cache_dir()) not in config["readable"]


def test_isolation_runs_on_the_cpu_and_says_what_is_missing_where_it_cannot(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(SettingError, match=r"^--isolated runs the attack on the CPU .* give --accelerator cpu"):
        Isolation().check("gpu")
    monkeypatch.setenv("PATH", "")
    assert isolation._probe.__wrapped__().startswith(
        "--isolated needs util-linux's unshare command, which is not on PATH; install util-linux"
    )
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
    observation = Victim(make_spec(), 0, load_samples(load_source(make_spec().data), [0]), 10).observe()
    item = {
        "images": torch.zeros(1, 3, 8, 8),
        "labels": torch.zeros(1, dtype=torch.int64),
        "loss": 0.0,
        "details": "{}",
    }
    with pytest.raises(
        AttackError,
        match=re.escape(
            "attack Misbehaving ran --isolated and its outcome cannot be used: "
            "problem 0's images are not a float tensor of shape (1, 3, 16, 16)"
        ),
    ):
        isolation._reconstructions(Misbehaving, {"steps": 1, "reconstructions": [item]}, [observation])


SPY = '''"""A plugin that leaves a mark where its code runs: its import, its Config and its unsupported() each
touch MARKERS/<what>-<process id> (which its sandbox cannot reach); iDLG otherwise, on colour images only."""
import os
from dataclasses import dataclass
from pathlib import Path

from benchmark.attacks.idlg import IDLG

MARKERS = Path({markers!r})


def mark(what):
    try:
        (MARKERS / f"{{what}}-{{os.getpid()}}").touch()
    except OSError:  # in a sandbox: no such folder
        pass


mark("import")


@dataclass(frozen=True)
class SpyConfig(IDLG.Config):
    def __post_init__(self):
        mark("config")


class Spy(IDLG):
    Config = SpyConfig

    @classmethod
    def unsupported(cls, observation):
        mark("unsupported")
        return "grey images" if observation.input_shape[0] == 1 else super().unsupported(observation)
'''


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plugin ``spy`` (package leakbench-spy 0.1.0, with a broken entry point ``spy-broken``) installed on
    sys.path, not yet loaded; the folder of its marks."""
    markers, site = tmp_path / "markers", tmp_path / "spy-site"
    markers.mkdir()
    (site / "leakbench_spy").mkdir(parents=True)
    (site / "leakbench_spy" / "__init__.py").write_text(SPY.format(markers=str(markers)))
    info = site / "leakbench_spy-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leakbench-spy\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[leakbench.attacks]\nspy = leakbench_spy:Spy\nspy-broken = leakbench_spy:Missing\n"
    )
    ATTACKS.names()  # the built-ins, before the plugin is on sys.path
    monkeypatch.syspath_prepend(str(site))
    for name, value in (
        ("_entries", dict(ATTACKS._entries)),
        ("_broken", {}),
        ("_plugins", set()),
        ("_discovered", False),
    ):
        monkeypatch.setattr(ATTACKS, name, value)
    yield markers
    sys.modules.pop("leakbench_spy", None)


def _results(runs: Path) -> tuple[list[dict], dict]:
    result = json.loads((runs / "tiny-cifar" / "spy" / "results.json").read_text())
    return [{key: value for key, value in row.items() if key != "seconds"} for row in result["targets"]], result[
        "config"
    ]


def test_an_isolated_plugin_runs_none_of_its_code_here_and_verifies_as_unisolated(
    spy: Path, mini: Path, clean_checkout: Path, caplog
):
    caplog.set_level(logging.INFO)
    (path,) = submit("spy", "mini", logger=None, isolation=Isolation())  # tiny-mnist skipped: its unsupported()
    isolated = verify(path, runs=Path("isolated"), isolation=Isolation())
    assert not list(spy.iterdir()) and "leakbench_spy" not in sys.modules  # neither imported nor run here
    assert "skipped tiny-mnist: attack 'spy' does not apply to task 'tiny-mnist': grey images" in caplog.messages
    plain = verify(path, runs=Path("plain"))  # unisolated, as before: its code runs here
    assert {marker.name for marker in spy.iterdir()} == {
        f"{what}-{os.getpid()}" for what in ("import", "config", "unsupported")
    }
    assert isolated.differences == plain.differences == [] and isolated.complete
    assert isolated.code.attack_changes == plain.code.attack_changes == ()
    assert isolated.code.package == plain.code.package == load_entry(path).attack_package == "leakbench-spy 0.1.0"
    rows = [
        _results(runs) for runs in (Path("runs/submit-mini"), Path("isolated/verify-mini"), Path("plain/verify-mini"))
    ]
    assert len(rows[0][0]) == 2 and rows[0] == rows[1] == rows[2]
    assert set(rows[0][1]["attack_code"]) >= {"leakbench_spy", "benchmark.attacks.idlg"}


def test_an_isolated_plugin_s_setting_errors_read_as_unisolated(spy: Path, mini: Path):
    def raised(attack: str, options: dict, isolated: bool) -> str:
        with pytest.raises(LeakBenchError) as info:
            benchmark.run(
                "tiny-cifar",
                attack,
                targets=1,
                logger=None,
                attack_options=options,
                isolation=Isolation() if isolated else None,
            )
        return f"{type(info.value).__name__}: {info.value}"

    cases = [("spy", {"lr": "big"}), ("spy", {"max_step": 2}), ("spy-broken", {})]
    for attack, options in cases:
        assert raised(attack, options, True) == raised(attack, options, False)
    assert raised("spy-broken", {}, True).startswith(
        "PluginError: attack 'spy-broken' cannot be used: its entry point "
        "'spy-broken = leakbench_spy:Missing' (group leakbench.attacks, "
        "package leakbench-spy 0.1.0) failed to load: AttributeError"
    )
