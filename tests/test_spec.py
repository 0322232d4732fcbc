from pathlib import Path

import pytest

from benchmark.errors import SpecError
from benchmark.spec import TASKS, load_suite, load_task, parse_task, spec_hash, task_dirs

from conftest import BASE_SPEC, make_spec


@pytest.mark.parametrize("name", TASKS.names())
def test_every_shipped_spec_loads_and_validates(name):
    spec = load_task(name)
    assert spec.name == name and spec.version >= 1


def test_suite_tasks_exist():
    for task in load_suite("quick").tasks:
        load_task(task)


def test_include_merges_mappings_and_overrides(tmp_path: Path):
    base = load_task("cifar10-lenetzhu-b1")
    derived = load_task("cifar100-lenetzhu-b1")
    assert derived.data.dataset == "cifar100"
    assert derived.victim == base.victim and derived.fl == base.fl
    (tmp_path / "variant.yaml").write_text(
        f"include: {task_dirs()[-1] / 'cifar10-lenetzhu-b1.yaml'}\nname: variant\nfl: {{batch_size: 4}}\n")
    variant = load_task(tmp_path / "variant.yaml")
    assert variant.fl.batch_size == 4 and variant.data == base.data


def test_include_cycle_is_an_error(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match="include cycle"):
        load_task(tmp_path / "a.yaml")


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nversion: [1\n", "malformed YAML at line"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("name: x\nversion: 1\nvictim: {model: lenet_zhu}\n", "missing required key 'data'"),
    ("name: x\nversion: 1\ndata: {dataset: cifar10, splt: test}\nvictim: {model: lenet_zhu}\n",
     r"unknown key 'data.splt' \(did you mean 'split'\?\)"),
    ("name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet_zhu}\nfl: {batch_size: -1}\n",
     "key 'fl.batch_size': Input should be greater than or equal to 1"),
    ("name: x\nversion: 1\ndata: {dataset: cifar01}\nvictim: {model: lenet_zhu}\n",
     r"key 'data.dataset': unknown dataset 'cifar01' \(did you mean 'cifar10'\?\)"),
    ("name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet}\n", "key 'victim.model': unknown model 'lenet'"),
    ("name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet_zhu}\nmetrics: [psnrr]\n",
     r"unknown metric 'psnrr' \(did you mean 'psnr'\?\)"),
])
def test_malformed_specs_name_file_and_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as info:
        load_task(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_unknown_name():
    with pytest.raises(SpecError, match="does not exist"):
        load_task("no/such/spec.yaml")
    with pytest.raises(Exception, match=r"did you mean 'cifar10-lenetzhu-b1'"):
        load_task("cifar10-lenetzhu-b2")


def test_hash_changes_with_content_only():
    assert spec_hash(make_spec()) == spec_hash(parse_task(dict(BASE_SPEC), "again"))
    assert spec_hash(make_spec()) != spec_hash(make_spec(fl={"batch_size": 2}))


def test_target_indices_follow_batch_size():
    spec = make_spec(fl={"batch_size": 3}, targets={"start": 5, "count": 2})
    assert spec.target_indices(0) == [5, 6, 7] and spec.target_indices(1) == [8, 9, 10]
