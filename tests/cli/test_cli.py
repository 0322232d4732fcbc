import json
from pathlib import Path

import pytest
import torch
from support import fail_targets

from benchmark.cli import main


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leakbench: error: ") and "\n" not in err and "Traceback" not in err
    return err


def _refused(capsys, argv) -> str:
    """The one-line error of a command refused by the parser (SystemExit) or by the command (exit 2)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leakbench: error: ") and "\n" not in err and "Traceback" not in err
    return err


TINY = "include: cifar10-lenetzhu-b1\nname: tiny\ndata: {image_size: 16}\n"


def test_unknown_names_get_did_you_mean(capsys):
    assert "did you mean 'idlg'" in _one_line_error(
        capsys, ["run", "--task", "cifar10-lenetzhu-b1", "--attack", "idgl"]
    )
    assert "did you mean 'mnist-lenetzhu-b1'" in _one_line_error(
        capsys, ["run", "--task", "mnist-lenetzu-b1", "--attack", "dlg"]
    )


def test_malformed_spec_is_one_line(capsys, tmp_path: Path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: broken\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet_zhu, sed: 3}\n")
    assert "unknown key 'victim.sed'" in _one_line_error(capsys, ["run", "--task", str(spec), "--attack", "dlg"])


def test_missing_dataset_says_how_to_get_it(capsys, tmp_path: Path):
    err = _one_line_error(
        capsys, ["run", "--task", "cifar10-lenetzhu-b1", "--attack", "dlg", "--targets", "25", "--out", str(tmp_path)]
    )
    assert "not available" in err and "internet" in err and "LEAKBENCH_CACHE" in err


def test_ls(capsys):
    assert main(["ls", "attacks"]) == 0
    out = capsys.readouterr().out
    assert "dlg" in out and "idlg" in out
    assert main(["ls", "tasks"]) == 0
    assert "cifar100-lenetzhu-b1" in capsys.readouterr().out
    assert main(["ls", "label-rules"]) == 0
    out = capsys.readouterr().out
    assert "ilrg" in out and "fedsgd, fedavg" in out


def test_run_prints_a_table_and_writes_results(capsys, tmp_path: Path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("include: cifar10-lenetzhu-b1\nname: tiny\ndata: {image_size: 16}\n")
    assert (
        main(
            [
                "run",
                "--task",
                str(spec),
                "--attack",
                "dlg",
                "--targets",
                "1",
                "--max-steps",
                "1",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "psnr" in out and "tiny" in out
    assert json.loads((tmp_path / "out" / "results.json").read_text())["summary"]["targets"] == 1


def test_bench_runs_every_applicable_attack(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny-b2.yaml").write_text(
        "include: cifar10-lenetzhu-b1\nname: tiny-b2\ndata: {image_size: 16}\nfl: {batch_size: 2}\n"
    )
    (tasks / "suites.yaml").write_text("mini: {targets: 1, max_steps: 1, tasks: [mnist-lenetzhu-b1, tiny-b2]}\n")
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tasks))
    from benchmark.protocol.loading import TASKS

    monkeypatch.setattr(TASKS, "_discovered", False)
    assert main(["bench", "--suite", "mini", "--out", str(tmp_path / "bench")]) == 0
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"]
    cells = {(r["task"], r["attack"]) for r in rows}
    assert {("mnist-lenetzhu-b1", "dlg"), ("mnist-lenetzhu-b1", "idlg"), ("tiny-b2", "dlg")} <= cells
    assert ("tiny-b2", "idlg") not in cells  # the iDLG label rule does not apply to a batch of 2
    assert "mnist-lenetzhu-b1" in capsys.readouterr().out


def test_bench_runs_only_the_attacks_a_suite_gives_each_task(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "suites.yaml").write_text(
        "split: {targets: 1, max_steps: 1, attacks: [idlg], task_attacks: "
        "{mnist-lenetzhu-b1: [dlg]}, tasks: [mnist-lenetzhu-b1, cifar10-lenetzhu-b1]}\n"
    )
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tmp_path))
    assert main(["bench", "--suite", "split", "--out", str(tmp_path / "bench")]) == 0
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"]
    assert [(r["task"], r["attack"]) for r in rows] == [("mnist-lenetzhu-b1", "dlg"), ("cifar10-lenetzhu-b1", "idlg")]
    err = _one_line_error(capsys, ["bench", "--suite", "split", "--attacks", "grnn"])
    assert "suite 'split' runs none of grnn; see its attacks in tasks/suites.yaml" in err


def test_unknown_suite(capsys):
    assert "did you mean 'quick'" in _one_line_error(capsys, ["bench", "--suite", "quik"])


def test_ls_data_is_for_tasks_only(capsys):
    assert "`ls attacks` takes no --data" in _one_line_error(capsys, ["ls", "attacks", "--data"])


def test_ls_tasks_data_shows_the_threat_model_and_whether_the_data_is_here(capsys):
    assert main(["ls", "tasks", "--data"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "labels unknown, train, fedsgd" in lines["cifar10-lenetzhu-b1"]
    assert lines["cifar10-lenetzhu-b1"].rstrip().endswith("yes")  # the offline copy holds its 20 images
    assert lines["mnist-lenet5-b128"].rstrip().endswith("no")  # 128 images: the full test set is needed
    assert lines["lfw-lenet5-b1"].rstrip().endswith("no") and lines["lfwmini-lenet5-b1"].rstrip().endswith("yes")


def test_face_task_reports_reidentification_beside_ceiling_and_chance(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no LPIPS backbone here
    argv = [
        "run",
        "--task",
        "lfwmini-lenet5-b1",
        "--attack",
        "grnn",
        "--targets",
        "2",
        "--max-steps",
        "5",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--reid",
        "dlib",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "face re-identification" in out and "originals (ceiling)" in out and "noise images (chance)" in out
    assert out.count("lpips unavailable:") == 1 and "--lpips-weights" in out
    summary = json.loads((tmp_path / "run" / "results.json").read_text())["summary"]
    assert summary["reid_backend"] == "dlib" and summary["reid_top1_ceiling"] == 1.0
    assert 0 <= summary["reid_top1"] <= summary["reid_top5"] <= 1 and summary["reid_top5_chance"] is not None
    assert summary["lpips"] is None and "--lpips-weights" in summary["unavailable"]["lpips"]
    # the finished targets were scored by dlib: the run cannot be resumed with another encoder
    assert main([*argv[:-1], "facenet", "--targets", "3"]) == 2
    assert "different reid_backend" in capsys.readouterr().err


def test_lpips_weights_must_exist(capsys, tmp_path: Path):
    with pytest.raises(SystemExit):
        main(["run", "--task", "cifar10-lenetzhu-b1", "--attack", "dlg", "--lpips-weights", str(tmp_path / "none.pth")])
    assert "none.pth: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value, message",
    [
        ("gausian:sigma=1", "unknown defense 'gausian' (did you mean 'gaussian'?)"),
        ("gaussian:sigm=1", "defense 'gaussian' has no parameter 'sigm' (did you mean 'sigma'?)"),
        ("gaussian:sigma", "expected NAME or NAME:key=value[,key=value], e.g. gaussian:sigma=1e-3"),
        ("pruning:fraction=2", "defense 'pruning': fraction must be in [0, 1], got 2.0"),
    ],
)
def test_a_bad_defense_argument_is_named_before_any_work(capsys, tmp_path: Path, value, message):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--task", "cifar10-lenetzhu-b1", "--attack", "idlg", "--defense", value, "--out", str(tmp_path)])
    assert exited.value.code == 2 and f"argument --defense: {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_run_with_a_defense_records_it_and_refuses_to_resume_with_another(capsys, tmp_path: Path):
    argv = [
        "run",
        "--task",
        "cifar10-lenetzhu-b1",
        "--attack",
        "idlg",
        "--targets",
        "1",
        "--max-steps",
        "1",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--logger",
        "none",
    ]
    assert main(argv + ["--defense", "dpsgd:noise_multiplier=1,max_grad_norm=0.5"]) == 0
    assert (
        "defense: dpsgd(noise_multiplier=1, max_grad_norm=0.5); (4.729, 1e-05)-DP for the attacked round"
        in capsys.readouterr().out
    )
    recorded = json.loads((tmp_path / "results.json").read_text())["config"]["defense"]
    assert recorded["params"] == {"noise_multiplier": 1, "max_grad_norm": 0.5}
    assert recorded["privacy"]["epsilon"] == pytest.approx(4.7285, abs=1e-3)
    err = _one_line_error(capsys, argv + ["--defense", "gaussian:sigma=0.1"])
    assert "holds a run with a different defense (name, params), spec_hash" in err
    assert "holds a run with a different defense, spec_hash" in _one_line_error(capsys, argv)  # nor without one


def test_study_defense_prints_the_table_and_why_utility_is_unavailable(capsys, tmp_path: Path):
    assert (
        main(
            [
                "study",
                "defense",
                "--attack",
                "idlg",
                "--task",
                "cifar10-lenetzhu-b1",
                "--defense",
                "gaussian",
                "--strengths",
                "0,0.1",
                "--targets",
                "1",
                "--max-steps",
                "1",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "varying sigma" in out and "utility unavailable: cifar10 train images" in out
    assert (tmp_path / "study.json").is_file() and (tmp_path / "privacy-utility.png").is_file()


def test_study_defense_needs_a_strength_parameter(capsys, tmp_path: Path):
    err = _one_line_error(
        capsys,
        [
            "study",
            "defense",
            "--attack",
            "idlg",
            "--task",
            "cifar10-lenetzhu-b1",
            "--defense",
            "sign",
            "--strengths",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert "defense 'sign' has no strength parameter" in err


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            ["--accelerator", "bogus"],
            "--accelerator bogus with --devices 1 cannot run here (You selected an invalid accelerator name",
        ),
        (["--accelerator", "gpu", "--devices", "999"], "--accelerator gpu with --devices 999 cannot run here"),
        (["--max-steps", "-1"], "argument --max-steps: must be a whole number >= 1, got -1"),
        (["--max-steps", "0"], "argument --max-steps: must be a whole number >= 1, got 0"),  # 0 is not the default
        (["--restarts", "-1"], "argument --restarts: must be a whole number >= 1, got -1"),
        (["--targets", "-1"], "argument --targets: must be a whole number >= 1, got -1"),
        (["--devices", "0"], "argument --devices: must be a whole number >= 1, got 0"),
        (["--problems", "1.5"], "argument --problems: must be a whole number >= 1, got 1.5"),
        (["--seed", "-1"], "argument --seed: must be a whole number >= 0, got -1"),
        (["--num-nodes", "2"], "--num-nodes 2 needs a launcher that starts the command on every node"),
        (["--fresh", "--retry-failed"], "give one of them"),
        (["--attack", "rgap", "--compile"], "--compile compiles an optimisation attack's objective; 'rgap' is solved"),
    ],
)
def test_a_setting_error_is_one_line_and_never_a_result(capsys, tmp_path: Path, setting, message):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    argv = [
        "run",
        "--task",
        str(spec),
        "--attack",
        "dlg",
        "--targets",
        "1",
        "--max-steps",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--logger",
        "none",
        "--no-progress",
    ]
    err = _refused(capsys, argv + setting)
    assert message in err and err.endswith("--help`") == ("argument" in message)
    assert not (tmp_path / "out" / "targets.jsonl").exists()  # no target row, failed or not
    assert main(argv) == 0  # the same folder with a right setting computes the target
    assert "already finished" not in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "results.json").read_text())["summary"]["failed"] == 0


def test_accelerator_gpu_runs_on_a_gpu_and_is_refused_in_one_line_without_one(capsys, tmp_path: Path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    argv = [
        "run",
        "--task",
        str(spec),
        "--attack",
        "dlg",
        "--targets",
        "1",
        "--max-steps",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--logger",
        "none",
        "--no-progress",
        "--accelerator",
        "gpu",
    ]
    if torch.cuda.is_available():
        assert main(argv) == 0
    else:
        assert "--accelerator gpu with --devices 1 cannot run here" in _one_line_error(capsys, argv)
        assert not (tmp_path / "out" / "targets.jsonl").exists()


def test_parser_errors_are_one_line_with_did_you_mean(capsys):
    assert _refused(capsys, ["run", "--task", "x"]) == (
        "leakbench: error: the following arguments are required: --attack; see `leakbench run --help`"
    )
    assert "invalid choice: 'rn'" in (err := _refused(capsys, ["rn"])) and "(did you mean 'run'?)" in err
    assert "(did you mean 'tensorboard'?)" in _refused(
        capsys, ["run", "--task", "x", "--attack", "y", "--logger", "tensorbord"]
    )


def test_failed_targets_are_listed_with_their_reason_and_retried_on_request(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    argv = [
        "run",
        "--task",
        str(spec),
        "--attack",
        "dlg",
        "--targets",
        "3",
        "--max-steps",
        "1",
        "--problems",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--logger",
        "none",
        "--no-progress",
    ]
    with monkeypatch.context() as patch:
        fail_targets(patch, 1)
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "tiny / dlg: target(s) 1 failed: FloatingPointError: the objective became NaN" in out
        and "--retry-failed" in out
    )
    assert main(argv) == 0  # resuming keeps the failure
    assert "target(s) 1 failed" in capsys.readouterr().out
    assert main(argv + ["--retry-failed"]) == 0
    assert "failed:" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]
    assert summary["failed"] == 0 and "failures" not in summary


def test_bench_reports_a_cell_whose_metrics_are_null(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(TINY)
    (tasks / "suites.yaml").write_text("one: {targets: 1, max_steps: 1, attacks: [dlg], tasks: [tiny]}\n")
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tasks))
    from benchmark.protocol.loading import TASKS

    monkeypatch.setattr(TASKS, "_discovered", False)
    fail_targets(monkeypatch, 0)
    assert main(["bench", "--suite", "one", "--out", str(tmp_path / "bench")]) == 0  # pytest fails on a logging error
    assert "psnr - dB, label accuracy -, " in caplog.text and "1 of 1 targets failed" in caplog.text
    assert "tiny / dlg: target(s) 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["spec", "suite", "entry"])
def test_a_file_that_is_not_utf8_is_a_one_line_error_in_every_command_that_reads_it(
    capsys, mini: Path, clean_checkout: Path, where
):
    board = mini / "leaderboards"
    assert main(["submit", "--attack", "idlg", "--suite", "mini", "--tasks", "tiny-mnist", "--logger", "none"]) == 0
    entry = board / "mini" / "tiny-mnist" / "idlg.json"
    capsys.readouterr()
    path = {
        "spec": mini.parent / "tasks" / "tiny-mnist.yaml",
        "suite": mini.parent / "tasks" / "suites.yaml",
        "entry": entry,
    }[where]
    path.write_bytes(path.read_bytes() + "# café\n".encode("latin-1"))
    commands = {
        "spec": [
            ["spec", "tiny-mnist"],
            ["run", "--task", "tiny-mnist", "--attack", "dlg"],
            ["verify", str(entry), "--targets", "1"],
        ],
        "suite": [["bench", "--suite", "mini"], ["verify", str(entry), "--targets", "1"]],
        "entry": [["verify", str(entry), "--targets", "1"], ["leaderboard", "build"]],
    }[where]
    for argv in commands:
        assert "is not UTF-8 text (byte 0xe9 at offset" in _one_line_error(capsys, argv)
    assert main(["leaderboard", "check"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("leakbench: check: ") and "is not UTF-8 text" in line


def test_help_and_ls_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom benchmark.cli import main\n"
        "for argv in (['--help'], ['ls', '--help'], ['ls', 'attacks'], ['ls', 'tasks']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning_fabric', 'torchvision') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "[]", done.stderr
    assert "{run,rescore,ls,spec,perf,bench,submit,verify,leaderboard,study,victim,analyze}" in done.stdout
    assert "inverting_gradients  Inverting Gradients (Geiping et al." in done.stdout
    assert "cifar100-lenetzhu-b1" in done.stdout and "data here" not in done.stdout


def test_a_run_whose_output_is_not_a_terminal_shows_no_progress_bar(capsys, tmp_path: Path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    assert (
        main(
            [
                "run",
                "--task",
                str(spec),
                "--attack",
                "dlg",
                "--targets",
                "1",
                "--max-steps",
                "2",
                "--out",
                str(tmp_path / "out"),
                "--logger",
                "none",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err and "it/s" not in captured.out + captured.err


def test_output_read_by_a_reader_that_left_ends_without_a_traceback():
    import subprocess
    import sys

    code = "import sys\nfrom benchmark.cli import main\nsys.exit(main(['ls', 'tasks']))"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head` does once it has its lines
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
