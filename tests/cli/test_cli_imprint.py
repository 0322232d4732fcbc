"""`leakbench run` of the imprint attack (Robbing the Fed) on its malicious-server task, end to end."""

import json

from benchmark.cli import main


def test_run_imprint_on_its_task_writes_the_recovered_images_and_the_modified_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "cifar10-imprint-b8", "--attack", "imprint", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["server"] == "malicious" and len(results["targets"]) == 2
    for row in results["targets"]:
        assert row["details"]["global_model"]["modified_by"] == "imprint"
        assert row["details"]["global_model"]["bins"] == 64
    # images 0..7: two share a bin (7 bins hit); images 8..15: each alone (8 bins hit, all exact)
    assert [row["details"]["bins_hit"] for row in results["targets"]] == [7, 8]
    assert [sum(v >= 40 for v in row["metrics"]["psnr"]) for row in results["targets"]] == [6, 8]
    assert (out / "reconstructions.png").is_file()


def test_run_imprint_on_an_honest_task_is_a_one_line_refusal_that_records_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--task", "cifar10-lenetzhu-b1", "--attack", "imprint", "--targets", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "threat.server: malicious" in err and err.startswith("leakbench: error: ")
    assert list(tmp_path.iterdir()) == []  # no run folder
