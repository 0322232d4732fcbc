import json

import pytest

from benchmark.apps.analysis import analyze_model
from benchmark.cli import main
from benchmark.core.errors import SettingError


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
        report["layers"][0]
    )


def test_user_errors_are_one_line(capsys):
    for argv, message in [
        (["--model", "cnn6", "--input-shape", "3,32"], "is not C,H,W"),
        (["--model", "cnn7"], "did you mean 'cnn6'"),
        (["--model", "convnet", "--input-shape", "3,16,16"], "BatchNorm2d"),
        (["--model", "lenet5", "--input-shape", "1,4,4"], "model 'lenet5' cannot take inputs of shape 1,4,4"),
    ]:
        assert main(["analyze", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("leakbench: error: ") and message in err and "\n" not in err


def test_fewer_than_two_classes_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--model", "cnn6", "--num-classes", "0"])
    assert capsys.readouterr().err.strip() == (
        "leakbench: error: argument --num-classes: must be a whole number >= 2, got 0; see `leakbench analyze --help`"
    )
    with pytest.raises(SettingError, match="num_classes must be a whole number >= 2, got 1"):
        analyze_model("cnn6", (3, 8, 8), 1)
