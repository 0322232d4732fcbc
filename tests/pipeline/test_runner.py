import hashlib
import json
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from support import fail_targets, make_spec

import benchmark
from benchmark.core.errors import (
    AttackError,
    AttackFailure,
    FileError,
    LeakBenchError,
    NotApplicableError,
    SettingError,
    SpecError,
)
from benchmark.data import load_samples, load_source
from benchmark.defenses import DEFENSES
from benchmark.pipeline import attack
from benchmark.pipeline.isolation import Isolation
from benchmark.victim.client import Victim


def test_run_writes_results_picture_and_logs(tmp_path: Path):
    result = benchmark.run(
        make_spec(), "dlg", targets=2, max_steps=10, out=tmp_path, attack_options={"lbfgs_iterations": 2}
    )
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["task"] == "tiny" and data["attack"] == "dlg" and len(data["targets"]) == 2
    assert data["config"]["attack"]["max_steps"] == 10 and data["summary"] == result.summary
    assert data["targets"][1]["indices"] == [1] and data["targets"][1]["labels"] == [8]
    assert Image.open(tmp_path / "reconstructions.png").size[0] > 2 * 16
    header = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "attack/grad_loss" in header and "eval/psnr" in header


def test_a_target_does_not_depend_on_the_other_targets_of_its_batch(tmp_path: Path):
    # Batched kernels round differently (~1e-7 relative); a converging attack lands on the same point,
    # up to pixels the gradient barely constrains (torch 2.14 moves two of 768 by 0.012): 50 dB apart at least.
    alone = benchmark.run(make_spec(), "idlg", targets=1, max_steps=20, logger=None, out=tmp_path / "alone")
    together = benchmark.run(make_spec(), "idlg", targets=3, max_steps=20, logger=None, out=tmp_path / "together")
    assert alone.targets[0].recovered_labels == together.targets[0].recovered_labels
    assert alone.targets[0].loss < 1e-5 and together.targets[0].loss < 1e-5
    images = [torch.load(p / "reconstructions" / "target-0000.pt") for p in (tmp_path / "alone", tmp_path / "together")]
    apart = -10 * torch.log10((images[0].clamp(0, 1) - images[1].clamp(0, 1)).pow(2).mean())
    assert apart > 50, f"the two reconstructions are only {apart:.1f} dB apart"


def test_the_batch_size_of_fits_changes_no_result_beyond_rounding(tmp_path: Path):
    batched = benchmark.run(make_spec(), "idlg", targets=2, max_steps=20, logger=None, problems=32)
    one_by_one = benchmark.run(make_spec(), "idlg", targets=2, max_steps=20, logger=None, problems=1)
    for a, b in zip(batched.targets, one_by_one.targets):
        assert a.recovered_labels == b.recovered_labels
        assert abs(a.metrics["ssim"][0] - b.metrics["ssim"][0]) < 1e-3


def test_restarts_keep_the_lowest_loss():
    single = benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, logger=None)
    several = benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, restarts=3, logger=None)
    assert several.targets[0].tries == 3 and several.targets[0].loss <= single.targets[0].loss


def test_attack_that_does_not_apply_is_refused_before_any_work():
    with pytest.raises(NotApplicableError, match="iDLG label rule needs batch size 1"):
        benchmark.run(make_spec(fl={"batch_size": 2}), "idlg", targets=1, logger=None)


def test_known_labels_let_idlg_run_on_batches():
    result = benchmark.run(
        make_spec(fl={"batch_size": 2}, threat={"labels": "known"}), "idlg", targets=1, max_steps=1, logger=None
    )
    assert result.summary["label_accuracy"] == 1.0


def test_unknown_attack_option_is_named():
    with pytest.raises(LeakBenchError, match=r"attack option 'learning_rate' does not exist"):
        benchmark.run(make_spec(), "dlg", attack_options={"learning_rate": 1})


@pytest.mark.parametrize(
    ("logger", "pattern"),
    [("tensorboard", "logs/version_0/events.out.tfevents.*"), ("wandb", "wandb/offline-run-*/run-*.wandb")],
)
def test_other_loggers_write_their_files(tmp_path: Path, logger: str, pattern: str):
    benchmark.run(
        make_spec(), "dlg", targets=1, max_steps=10, out=tmp_path, logger=logger, attack_options={"lbfgs_iterations": 2}
    )
    assert list(tmp_path.glob(pattern)), sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))[:20]


class _Kill(pl.Callback):
    """Interrupts a fit after ``step`` steps, as a killed process would (the checkpoint is older)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("killed")


@pytest.mark.parametrize("attack", ["inverting_gradients", "dlg", "grnn"])  # Adam + schedule, L-BFGS, RMSprop
def test_an_interrupted_fit_resumes_from_its_checkpoint_to_the_same_result(tmp_path: Path, attack: str, caplog):
    from benchmark.attacks import ATTACKS
    from benchmark.pipeline.config import attack_config
    from benchmark.pipeline.fit import FitOptions, fit

    spec = make_spec()
    source = load_source(spec.data)
    observation = Victim(spec, 0, load_samples(source, [0]), 10).observe()
    cls = ATTACKS.get(attack)
    config = attack_config(cls, {"max_steps": 6, **({"lbfgs_iterations": 2} if attack == "dlg" else {})})
    (whole,), _ = fit(cls, [observation], config, [0])
    path = tmp_path / "fit.ckpt"
    with pytest.raises(RuntimeError, match="killed"):
        fit(cls, [observation], config, [0], FitOptions(checkpoint=path, checkpoint_every=2, callbacks=(_Kill(5),)))
    assert path.is_file()
    assert path.with_name("fit.ckpt.sha256").read_text() == hashlib.sha256(path.read_bytes()).hexdigest()
    (resumed,), steps = fit(cls, [observation], config, [0], FitOptions(checkpoint=path, checkpoint_every=2))
    assert steps == 6 and "starts afresh" not in caplog.text  # resumed, not recomputed
    assert torch.allclose(resumed.images, whole.images, atol=1e-6) and resumed.loss == pytest.approx(whole.loss)


def test_a_torn_checkpoint_is_dropped_and_the_fit_starts_afresh(tmp_path: Path):
    path = tmp_path / "checkpoints" / "targets-0000-0000" / "fit.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"torn")
    benchmark.run(make_spec(), "idlg", targets=1, max_steps=2, logger=None, out=tmp_path)
    assert not path.parent.exists()  # replaced, then removed once the target's row was stored
    assert len((tmp_path / "targets.jsonl").read_text().splitlines()) == 1


class _Writes:
    """Unpickling this writes a file: what a malicious checkpoint does when loaded with pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.write_text, (self.path, "written while loading a checkpoint")


@pytest.mark.parametrize(
    ("content", "recorded", "reason"),
    [
        ("malicious", None, "has no sha256 recorded beside it"),
        ("malicious", "its own", "is not a Lightning checkpoint of tensors and plain values (UnpicklingError: "),
        ("plain", "another", "does not match the sha256 its fit recorded"),
    ],
)
def test_a_checkpoint_that_would_run_code_or_is_not_the_fits_own_is_refused(
    tmp_path: Path, caplog, content: str, recorded: str | None, reason: str
):
    written = tmp_path / "written"
    path = tmp_path / "run" / "checkpoints" / "targets-0000-0000" / "fit.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": _Writes(written) if content == "malicious" else {}, "loops": {}, "global_step": 1}, path)
    if content == "malicious":  # it is: pickle would run it
        torch.load(path, weights_only=False)
        assert written.is_file()
        written.unlink()
    if recorded is not None:
        digest = hashlib.sha256(path.read_bytes() + (b"" if recorded == "its own" else b"x")).hexdigest()
        path.with_name("fit.ckpt.sha256").write_text(digest)
    result = benchmark.run(make_spec(), "idlg", targets=1, max_steps=2, logger=None, out=tmp_path / "run")
    assert not written.exists() and result.targets[0].failed is None
    assert f"checkpoint {path} {reason}" in caplog.text and "it is removed and the fit starts afresh" in caplog.text
    assert not path.parent.exists()  # the fit's folder is gone once the target's row is stored


def test_two_processes_give_each_target_the_result_of_one_process(tmp_path: Path):
    spec = make_spec(targets={"count": 4})
    one = benchmark.run(spec, "idlg", max_steps=10, logger=None, out=tmp_path / "one", problems=2)
    two = benchmark.run(spec, "idlg", max_steps=10, logger=None, out=tmp_path / "two", devices=2, problems=2)
    assert sorted(p.name for p in (tmp_path / "two").glob("targets-rank*.jsonl")) == [
        "targets-rank0.jsonl",
        "targets-rank1.jsonl",
    ]
    assert two.environment["processes"] == "2" and len(two.targets) == 4
    for alone, shared in zip(one.targets, two.targets):  # groups [0, 1] and [2, 3], whichever process: bit for bit
        assert {**alone.row(), "seconds": 0} == {**shared.row(), "seconds": 0}
    again = benchmark.run(spec, "idlg", max_steps=10, logger=None, out=tmp_path / "two", devices=2, problems=2)
    assert [t.row() for t in again.targets] == [t.row() for t in two.targets]  # finished: read back, not re-run


def test_rows_record_the_datasets_own_indices_of_targets_chosen_per_identity(tmp_path: Path):
    for person, count in (("ada", 2), ("bob", 1), ("cy", 2)):
        (tmp_path / person).mkdir()
        for k in range(count):
            Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(tmp_path / person / f"{k}.png")
    spec = make_spec(
        data={"dataset": "folder", "path": str(tmp_path), "image_size": 16},
        targets={"count": 2, "select": "per_identity"},
    )
    result = benchmark.run(spec, "dlg", max_steps=1, logger=None)
    assert [t.indices for t in result.targets] == [[0], [3]] and [t.labels for t in result.targets] == [[0], [2]]


def test_several_processes_need_a_run_folder():
    with pytest.raises(LeakBenchError, match="needs an output folder"):
        benchmark.run(make_spec(), "idlg", max_steps=1, logger=None, devices=2)


def test_lpips_is_scored_with_the_weights_a_user_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision

    from benchmark.metrics import perceptual

    weights = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), weights)
    monkeypatch.setattr(perceptual, "BACKBONE_SHA256_PREFIX", perceptual.sha256(weights)[:8])  # a stand-in file
    result = benchmark.run(make_spec(), "dlg", targets=1, max_steps=2, out=tmp_path / "run", lpips_weights=weights)
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["summary"]["lpips"] == result.summary["lpips"] > 0 and "unavailable" not in written["summary"]
    assert len(written["targets"][0]["metrics"]["lpips"]) == 1


@pytest.mark.parametrize("defense, strengths", [("gaussian", [0.0, 1e-2, 1e-1]), ("pruning", [0.0, 0.7, 0.99])])
def test_idlg_leaks_less_as_the_defence_strengthens(defense, strengths):
    """iDLG on the first CIFAR-10 test image (offline), 40 L-BFGS steps: the attack succeeds undefended, so a
    falling PSNR is the defence's doing."""
    from benchmark.protocol.spec import DefenseSpec

    psnr = [
        benchmark.run(
            task="cifar10-lenetzhu-b1",
            attack="idlg",
            targets=1,
            max_steps=40,
            logger=None,
            defense=DefenseSpec(name=defense, params={DEFENSES.get(defense).strength: value}),
        ).summary["psnr"]
        for value in strengths
    ]
    assert psnr[0] > 20, psnr  # undefended, the image is recovered (iDLG reaches ~40 dB at its 300 steps)
    assert psnr[0] > psnr[1] > psnr[2], psnr


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("max_steps", 0, "max_steps must be a whole number >= 1, got 0"),
        ("max_steps", -1, "max_steps must be a whole number >= 1, got -1"),
        ("targets", -1, "targets must be a whole number >= 1, got -1"),
        ("restarts", 0, "restarts must be a whole number >= 1, got 0"),
        ("problems", 2.5, "problems must be a whole number >= 1, got 2.5"),
        ("devices", 0, "devices must be a whole number >= 1, got 0"),
        ("images_every", 0, "images_every must be a whole number >= 1, got 0"),
        ("seed", -1, "seed must be a whole number >= 0, got -1"),
        ("accelerator", "bogus", "--accelerator bogus with --devices 1 cannot run here"),
        (
            "attack_options",
            {"max_steps": "10"},
            "attack option 'max_steps' takes a value like its default 300 (int), got '10'",
        ),
        (
            "lpips_weights",
            "not-weights.pth",
            "--lpips-weights: not-weights.pth is not torchvision's AlexNet weights (sha256",
        ),
        (
            "lpips_weights",
            "absent.pth",
            "--lpips-weights: cannot read backbone weights absent.pth (No such file or directory)",
        ),
    ],
)
def test_a_bad_setting_raises_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argument, value, message
):
    monkeypatch.chdir(tmp_path)
    Path("not-weights.pth").write_bytes(b"")
    with pytest.raises(LeakBenchError, match="^" + re.escape(message)):
        benchmark.run(make_spec(), "dlg", out=tmp_path / "run", logger=None, **{argument: value})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "error",
    [
        AttackFailure("the solver did not converge"),
        FloatingPointError("loss is NaN"),
        torch.linalg.LinAlgError("the system is singular"),
    ],
)
def test_an_attacks_mathematics_failing_is_a_failed_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error):
    fail_targets(monkeypatch, 1, error=error)
    result = benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    assert [t.failed for t in result.targets] == [None, f"{type(error).__name__}: {error}"]
    assert result.summary["failed"] == 1 and result.summary["failures"] == {f"{type(error).__name__}: {error}": [1]}


@pytest.mark.parametrize(
    "error, raised, message",
    [
        (
            ValueError("a bug in the attack"),
            AttackError,
            "attack DLG raised ValueError: a bug in the attack; this is not a result",
        ),
        (RuntimeError("CUDA error: device-side assert"), AttackError, "raised RuntimeError: CUDA error"),
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory"),
            SettingError,
            "1 problems in one fit do not fit in the memory",
        ),
    ],
)
def test_any_other_error_stops_the_run_and_writes_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog, error, raised, message
):
    fail_targets(monkeypatch, 1, error=error)
    with pytest.raises(raised, match=message):
        benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)
    rows = [json.loads(line) for line in (tmp_path / "targets.jsonl").read_text().splitlines()]
    assert [(row["target"], row["failed"]) for row in rows] == [(0, None)]  # target 1 has no row, failed or not
    if raised is AttackError:
        assert "Traceback" in caplog.text and "raise error" in caplog.text  # where it raised, in the log


def test_retry_failed_recomputes_only_the_failed_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        benchmark.run(make_spec(), "dlg", targets=3, max_steps=1, out=tmp_path, logger=None, problems=1)
    before = (tmp_path / "targets.jsonl").read_bytes().splitlines(keepends=True)
    assert (
        benchmark.run(make_spec(), "dlg", targets=3, max_steps=1, out=tmp_path, logger=None, problems=1).summary[
            "failed"
        ]
        == 1
    )
    monkeypatch.setattr(attack, "attack_targets", _only(attack.attack_targets, [1]))
    result = benchmark.run(
        make_spec(), "dlg", targets=3, max_steps=1, out=tmp_path, logger=None, problems=1, retry_failed=True
    )
    assert result.summary["failed"] == 0 and "failures" not in result.summary
    after = (tmp_path / "targets.jsonl").read_bytes().splitlines(keepends=True)
    assert after[:2] == [before[0], before[2]] and json.loads(after[2])["target"] == 1  # the others byte for byte


def _only(attack_targets, numbers):
    """``attack_targets`` that fails the test when asked for targets other than ``numbers``."""

    def checked(attack_cls, config, chunk, **kwargs):
        assert [t.number for t in chunk] == numbers, "recomputed a finished target"
        return attack_targets(attack_cls, config, chunk, **kwargs)

    return checked


def test_dpsgd_on_a_victim_with_train_mode_batchnorm_is_refused_with_the_reason(tmp_path: Path):
    spec = make_spec(
        victim={"model": "convnet", "mode": "train", "init": "default"},
        defense={"name": "dpsgd", "params": {"noise_multiplier": 1.0}},
    )
    with pytest.raises(
        SpecError, match="a per-example gradient does not exist under BatchNorm in train mode.*set victim.mode: eval"
    ):
        benchmark.run(spec, "dlg", targets=1, max_steps=1, out=tmp_path, logger=None)
    assert not (tmp_path / "targets.jsonl").exists()


def test_a_corrupt_image_in_an_image_folder_is_named(tmp_path: Path):
    for person in ("ada", "bob"):
        (tmp_path / person).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / person / "0.png")
    (tmp_path / "bob" / "0.png").write_bytes((tmp_path / "ada" / "0.png").read_bytes()[:30])
    spec = make_spec(data={"dataset": "folder", "path": str(tmp_path), "image_size": 16})
    with pytest.raises(FileError, match=r"bob/0.png is not a readable image \(.*\); replace or remove it"):
        benchmark.run(spec, "dlg", targets=2, max_steps=1, logger=None)


def test_a_run_of_fewer_targets_computes_the_whole_groups_that_hold_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    trial = benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, out=tmp_path, logger=None, problems=2, extent=3)
    assert [t.group for t in trial.targets] == [[0, 1]]  # blocks of 2 over 3 targets: [0, 1], [2]
    rows = [json.loads(line) for line in (tmp_path / "targets.jsonl").read_text().splitlines()]
    assert [(row["target"], row["group"]) for row in rows] == [(0, [0, 1]), (1, [0, 1])]
    with monkeypatch.context() as patch:
        patch.setattr(attack, "attack_targets", lambda *a, **k: pytest.fail("recomputed a finished target"))
        assert benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=2).targets[
            1
        ].group == [0, 1]
    with pytest.raises(LeakBenchError, match="different targets_per_fit; resume it with the same settings"):
        benchmark.run(make_spec(), "dlg", targets=2, max_steps=1, out=tmp_path, logger=None, problems=1)


def test_a_compiled_run_says_so_and_its_folder_resumes_only_compiled(tmp_path: Path):
    compiled = benchmark.run(
        make_spec(), "inverting_gradients", targets=2, max_steps=3, out=tmp_path, logger=None, compile=True
    )
    assert compiled.config["compiled"] is True and all(t.failed is None for t in compiled.targets)
    assert json.loads((tmp_path / "run.json").read_text())["compiled"] is True
    with pytest.raises(LeakBenchError, match="different compiled; resume it with the same settings"):
        benchmark.run(make_spec(), "inverting_gradients", targets=2, max_steps=3, out=tmp_path, logger=None)
    assert "compiled" not in benchmark.run(make_spec(), "dlg", targets=1, max_steps=1, logger=None).config


@pytest.mark.parametrize(
    "options, message",
    [
        ({"attack": "rgap"}, "--compile compiles an optimisation attack's objective; 'rgap' is solved in closed form"),
        ({"isolation": Isolation()}, "--compile needs a C\\+\\+ compiler and a cache folder"),
    ],
)
def test_compile_is_refused_where_it_cannot_apply(options, message):
    attack_name = options.pop("attack", "dlg")
    with pytest.raises(SettingError, match=message):
        benchmark.run(make_spec(), attack_name, targets=1, max_steps=1, logger=None, compile=True, **options)
