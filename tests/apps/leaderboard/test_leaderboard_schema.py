import json
from pathlib import Path

import pytest
from synthetic import fake_entry, png

from benchmark.apps.leaderboard.schema import EntryError, load_entry, write_entry


def test_an_entry_round_trips_with_its_picture(tmp_path: Path):
    entry = fake_entry()
    path = write_entry(tmp_path, entry, png())
    assert path == tmp_path / "quick" / "mnist-lenetzhu-b1" / "dlg.json"
    assert path.with_name("dlg.png").read_bytes() == png()
    assert load_entry(path) == entry
    assert entry.summary.metrics["psnr"] == pytest.approx(30.0) and entry.summary.seconds == pytest.approx(6.0)
    assert entry.attack_package == "leakbench 0.1.0" and not entry.verified and not entry.partial


def test_the_paper_figure_stands_beside_the_measured_one():
    [figure] = fake_entry(attack="idlg", task="cifar100-lenetzhu-b1").paper
    assert (figure.metric, figure.value) == ("label_accuracy", 1.0) and "2001.02610" in figure.url
    assert fake_entry(task="cifar10-lenetzhu-b1").paper == []  # no figure the paper states for it


def test_failed_targets_are_counted_not_averaged_and_fewer_targets_are_partial():
    entry = fake_entry(psnr=(20.0, None, 40.0))
    assert entry.summary.failed == 1 and entry.summary.metrics["psnr"] == pytest.approx(30.0)
    partial = fake_entry(psnr=(20.0,))
    assert partial.partial and (partial.targets, partial.protocol_targets) == (1, 3)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["summary"]["metrics"].update(psnr="high"),
            "field 'summary.metrics.psnr': Input should be a valid number",
        ),
        (lambda d: d.pop("spec_hash"), "field 'spec_hash' is missing"),
        (lambda d: d.update(colour="red"), "field 'colour': Extra inputs are not permitted"),
        (
            lambda d: d["rows"][0]["metrics"]["psnr"].__setitem__(0, 35.0),
            "summary.metrics.psnr is 30.0 but the rows give 35.0",
        ),
        (lambda d: d["summary"]["metrics"].update(psnr=31.0), "summary.metrics.psnr is 31.0 but the rows give 30.0"),
        (lambda d: d.update(verified=True), "verified is true exactly when a verification is recorded"),
        (lambda d: d.update(targets=4), "targets (4) exceeds protocol_targets (3)"),
        (
            lambda d: d["environment"].update(git_commit="main"),
            "field 'environment.git_commit': String should match pattern",
        ),
    ],
)
def test_schema_errors_are_one_line_naming_the_file_and_the_field(tmp_path: Path, edit, message):
    path = write_entry(tmp_path, fake_entry(), None)
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))
    with pytest.raises(EntryError) as info:
        load_entry(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text


def test_unreadable_or_misplaced_entries(tmp_path: Path):
    path = write_entry(tmp_path, fake_entry(), None)
    path.write_text('{"suite": "quick",')
    with pytest.raises(EntryError, match=r"dlg.json: not valid JSON \(.*\); restore it from git or re-submit"):
        load_entry(path)
    moved = tmp_path / "quick" / "mnist-lenetzhu-b1" / "other.json"
    moved.write_text(write_entry(tmp_path, fake_entry(), None).read_text())
    with pytest.raises(EntryError, match="fields say quick/mnist-lenetzhu-b1/dlg.json; move the file"):
        load_entry(moved)
