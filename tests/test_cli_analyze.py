import json

from benchmark.cli import main


def test_prints_a_table_with_a_verdict(capsys):
    assert main(["analyze", "--model", "fcn3", "--input-shape", "1,28,28", "--num-classes", "2"]) == 0
    out = capsys.readouterr().out
    assert "deficiency" in out and "ra_i" in out and "layers.3" in out
    assert "R-GAP recovers the input: yes" in out


def test_json_has_one_row_per_layer(capsys):
    assert main(["analyze", "--model", "lenet_zhu", "--input-shape", "3,16,16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [3, 16, 16] and report["rgap_recovers_input"] is True
    assert [row["layer"] for row in report["layers"]] == ["features.0", "features.2", "features.4", "classifier"]
    assert {"unknowns", "weight_constraints", "gradient_constraints", "rank", "deficiency", "ra_i", "verdict"} <= set(
        report["layers"][0])


def test_user_errors_are_one_line(capsys):
    for argv, message in [(["--model", "cnn6", "--input-shape", "3,32"], "is not C,H,W"),
                          (["--model", "cnn7"], "did you mean 'cnn6'"),
                          (["--model", "convnet", "--input-shape", "3,16,16"], "BatchNorm2d")]:
        assert main(["analyze", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("leakbench: error: ") and message in err and "\n" not in err
