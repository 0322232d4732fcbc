"""Loggers: the resolved config and the result with reconstructions reach every logger; W&B runs offline."""

import json
from pathlib import Path

import pytest
import wandb
from support import make_spec
from wandb.proto.wandb_internal_pb2 import Record

import benchmark
from benchmark.pipeline.loggers import WANDB_RESULT_KEY, OfflineAwareWandbLogger


def wandb_records(path: Path) -> list[Record]:
    """The records of a ``.wandb`` run file: LevelDB log format, 32 KiB blocks of chunks, each with a
    7-byte header (checksum, length, type; 1 = whole record, 2/3/4 = first/middle/last part),
    after a 7-byte file header."""
    data, position, records, pending = path.read_bytes(), 7, [], b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            records.append(Record.FromString(pending))
            pending = b""
    return records


def _items(updates) -> dict[str, object]:
    return {item.key: json.loads(item.value_json) for update in updates for item in update if item.key}


def _config(records: list[Record]) -> dict[str, object]:
    """The run's config: its config records, and the run record (which carries the config the run
    held when wandb wrote it)."""
    kinds = [(r, r.WhichOneof("record_type")) for r in records]
    return _items(
        r.config.update if kind == "config" else r.run.config.update for r, kind in kinds if kind in ("config", "run")
    )


def _summary(records: list[Record]) -> dict[str, object]:
    return _items(r.summary.update for r in records if r.WhichOneof("record_type") == "summary")


@pytest.fixture
def no_wandb_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where nobody ran ``wandb login``: no key, no netrc, no WANDB_MODE."""
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("HOME", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "NETRC"):
        monkeypatch.setenv(variable, str(tmp_path / "home"))


def test_wandb_without_a_login_writes_an_offline_run_for_wandb_sync(tmp_path: Path, no_wandb_login):
    result = benchmark.run(make_spec(), "dlg", targets=2, max_steps=10, out=tmp_path / "run", logger="wandb")
    wandb.finish()  # the run is still live: wandb writes its file in a service process, complete once finished
    [run] = (tmp_path / "run" / "wandb").glob("offline-run-*")
    [run_file] = run.glob("run-*.wandb")
    records = wandb_records(run_file)
    config = _config(records)
    assert config.get("task") == "tiny", (
        f"config keys: {sorted(config)}, records: {[r.WhichOneof('record_type') for r in records]}"
    )
    assert config["attack_config"]["max_steps"] == 10 and config["targets"] == 2
    assert config["environment"]["torch"] == result.environment["torch"]
    history = [
        {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert any("attack/grad_loss" in row for row in history)  # Lightning logs every 10 steps
    assert [row["eval/psnr"] for row in history if "eval/psnr" in row] == pytest.approx(
        [t.row()["psnr"] for t in result.targets]
    )
    summary = _summary(records)
    assert summary[WANDB_RESULT_KEY]["summary"]["psnr"] == pytest.approx(result.summary["psnr"])
    [table] = (run / "files" / "media" / "table" / "eval").glob("reconstructions_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"][:3] == ["target", "truth", "reconstruction"] and len(content["data"]) == 2
    assert [row[content["columns"].index("psnr")] for row in content["data"]] == pytest.approx(
        [t.metrics["psnr"][0] for t in result.targets]
    )


def test_wandb_goes_online_only_with_credentials(tmp_path: Path, no_wandb_login, monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr(wandb, "login", lambda **kwargs: calls.append(kwargs) or True)
    assert "mode" not in OfflineAwareWandbLogger(save_dir=str(tmp_path), name="run")._wandb_init
    assert calls == [{"prompt": False, "verify": False}]  # a check, never a prompt or a network call
    monkeypatch.setattr(wandb, "login", lambda **kwargs: False)
    assert OfflineAwareWandbLogger(save_dir=str(tmp_path), name="run")._wandb_init["mode"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert OfflineAwareWandbLogger(save_dir=str(tmp_path), name="run")._wandb_init["mode"] == "disabled"


def test_wandb_honours_a_mode_set_after_its_first_use(tmp_path: Path, no_wandb_login, monkeypatch: pytest.MonkeyPatch):
    """wandb reads the environment into process-wide settings once; a WANDB_MODE set after that (here:
    offline, after a run without any) still decides, rather than an online run that asks for a key."""
    benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, out=tmp_path / "first", logger="wandb")
    wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "offline")
    benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, out=tmp_path / "second", logger="wandb")
    wandb.finish()
    assert list((tmp_path / "second" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_csv_and_tensorboard_get_the_config_and_the_summary(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for logger in ("csv", "tensorboard"):
        benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, out=tmp_path / logger, logger=logger)
    [hparams] = (tmp_path / "csv" / "logs").glob("version_*/hparams.yaml")
    assert "spec_hash:" in hparams.read_text() and "attack_config:" in hparams.read_text()
    [metrics] = (tmp_path / "csv" / "logs").glob("version_*/metrics.csv")
    assert "summary/psnr" in metrics.read_text().splitlines()[0]
    [folder] = (tmp_path / "tensorboard" / "logs").glob("version_*")
    tags = EventAccumulator(str(folder)).Reload().Tags()
    assert "eval/reconstructions" in tags["images"] and "summary/psnr" in tags["scalars"]


def test_reconstructions_are_logged_as_images_every_n_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import benchmark

    benchmark.run(
        make_spec(), "inverting_gradients", targets=1, max_steps=5, out=tmp_path, logger="tensorboard", images_every=2
    )
    steps = []
    for events in tmp_path.glob("logs/version_0/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        if "attack/reconstructions" in accumulator.Tags()["images"]:
            steps += [event.step for event in accumulator.Images("attack/reconstructions")]
    assert steps == [2, 4]  # after the 2nd and the 4th of 5 steps
