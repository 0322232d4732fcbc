import contextlib
import copy
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import BASE_SPEC, make_spec

from benchmark.cli import main
from benchmark.core.errors import SpecError
from benchmark.pipeline.tasks import load_task, parse_task
from benchmark.protocol.loading import (
    TASKS,
    load_suite,
    record_version,
    recorded_versions,
    spec_hash,
    suite_names,
    task_dirs,
)


@pytest.mark.parametrize("name", TASKS.names())
def test_every_shipped_spec_loads_and_validates(name):
    spec = load_task(name)
    assert spec.name == name and spec.version >= 1


@pytest.mark.parametrize("name", TASKS.names())
def test_every_shipped_spec_is_recorded_at_its_version(name):
    spec = load_task(name)
    assert recorded_versions().get(name, {}).get(str(spec.version)) == spec_hash(spec), (
        f"tasks/{name}.yaml measures something else than its recorded version {spec.version}: bump its "
        f"version, say what changed in tasks/README.md, and run `leakbench spec {name} --record`"
    )


def test_a_version_is_recorded_once_with_one_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("benchmark.protocol.loading.task_dirs", lambda: [tmp_path])
    record_version(make_spec())
    record_version(make_spec())  # the same content again: nothing to refuse
    with pytest.raises(SpecError, match="version 1 was recorded with other content: bump its version"):
        record_version(make_spec(targets={"count": 3}))
    record_version(make_spec(version=2, targets={"count": 3}))
    assert list(recorded_versions()["tiny"]) == ["1", "2"]


@pytest.mark.parametrize("batch", [4, 8])
def test_ig_batch_tasks_know_the_labels_and_their_nolabels_variants_keep_v1(batch):
    # Inverting Gradients passes the true labels for several images; v1 hid them, and the -nolabels
    # variant is that v1 protocol under its own name (same content, same hash).
    task, variant = load_task(f"cifar10-convnet-b{batch}"), load_task(f"cifar10-convnet-b{batch}-nolabels")
    assert (task.version, task.threat.labels, variant.threat.labels) == (2, "known", "unknown")
    as_v1 = variant.model_copy(update={"name": task.name})
    assert spec_hash(as_v1) == recorded_versions()[task.name]["1"]


def test_suite_tasks_exist():
    for suite in suite_names():
        for task in load_suite(suite).tasks:
            load_task(task)


def test_the_boards_list_the_reference_suite_first_and_the_quick_one_says_it_is_a_smoke_run():
    assert suite_names()[:2] == ["reference", "quick"]
    description = " ".join(load_suite("quick").description.split())
    assert (
        "Budgets cut for a CPU smoke run" in description and "never ranked against the reference suite" in description
    )


def test_a_suite_may_give_a_task_its_own_attacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "suites.yaml").write_text(
        "split: {attacks: [idlg], task_attacks: {mnist-lenetzhu-b1: [dlg]}, tasks: [mnist-lenetzhu-b1, cifar10-lenetzhu-b1]}\n"
        "stray: {task_attacks: {cifar10-lenetzhu-b1: [dlg]}, tasks: [mnist-lenetzhu-b1]}\n"
        "typo: {task_attack: {}, tasks: [mnist-lenetzhu-b1]}\n"
    )
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tmp_path))
    split = load_suite("split")
    assert (split.attacks_of("mnist-lenetzhu-b1"), split.attacks_of("cifar10-lenetzhu-b1")) == (("dlg",), ("idlg",))
    assert load_suite("quick").attacks_of("mnist-lenetzhu-b1") is None  # every registered attack
    with pytest.raises(
        SpecError,
        match=r"^suites.yaml: suite 'stray': task_attacks names cifar10-lenetzhu-b1, not among "
        r"its tasks; add it to tasks or remove it$",
    ):
        load_suite("stray")
    with pytest.raises(SpecError, match=r"unknown key 'task_attack' \(did you mean 'task_attacks'\?\)"):
        load_suite("typo")


def test_include_merges_mappings_and_overrides(tmp_path: Path):
    base = load_task("cifar10-lenetzhu-b1")
    derived = load_task("cifar100-lenetzhu-b1")
    assert derived.data.dataset == "cifar100"
    assert derived.victim == base.victim and derived.fl == base.fl
    (tmp_path / "variant.yaml").write_text(
        f"include: {task_dirs()[-1] / 'cifar10-lenetzhu-b1.yaml'}\nname: variant\nfl: {{batch_size: 4}}\n"
    )
    variant = load_task(tmp_path / "variant.yaml")
    assert variant.fl.batch_size == 4 and variant.data == base.data


def test_include_cycle_is_an_error(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match="include cycle"):
        load_task(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nversion: [1\n", "malformed YAML at line"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("name: x\nversion: 1\nvictim: {model: lenet_zhu}\n", "missing required key 'data'"),
        (
            "name: x\nversion: 1\ndata: {dataset: cifar10, splt: test}\nvictim: {model: lenet_zhu}\n",
            r"unknown key 'data.splt' \(did you mean 'split'\?\)",
        ),
        (
            "name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet_zhu}\nfl: {batch_size: -1}\n",
            "key 'fl.batch_size': Input should be greater than or equal to 1",
        ),
        (
            "name: x\nversion: 1\ndata: {dataset: cifar01}\nvictim: {model: lenet_zhu}\n",
            r"key 'data.dataset': unknown dataset 'cifar01' \(did you mean 'cifar10'\?\)",
        ),
        (
            "name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet}\n",
            "key 'victim.model': unknown model 'lenet'",
        ),
        (
            "name: x\nversion: 1\ndata: {dataset: cifar10}\nvictim: {model: lenet_zhu}\nmetrics: [psnrr]\n",
            r"unknown metric 'psnrr' \(did you mean 'psnr'\?\)",
        ),
    ],
)
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


def test_a_default_written_out_hashes_as_the_default_left_out():
    assert spec_hash(make_spec(fl={"protocol": "fedsgd", "batch_size": 1})) == spec_hash(make_spec())


def test_target_indices_follow_batch_size():
    spec = make_spec(fl={"batch_size": 3}, targets={"start": 5, "count": 2})
    assert spec.target_indices(0) == [5, 6, 7] and spec.target_indices(1) == [8, 9, 10]


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_paths = st.sampled_from(
    [
        ("name",),
        ("version",),
        ("data",),
        ("data", "dataset"),
        ("data", "image_size"),
        ("data", "normalize"),
        ("targets", "count"),
        ("victim",),
        ("victim", "model"),
        ("victim", "init"),
        ("fl", "batch_size"),
        ("threat", "labels"),
        ("metrics",),
        ("budget", "restarts"),
        ("unexpected",),
        ("data", "unexpected"),
        ("include",),
    ]
)


@settings(max_examples=150, deadline=None)
@given(edits=st.lists(st.tuples(_paths, _values | st.just("<delete>")), min_size=1, max_size=3))
def test_fuzzed_specs_validate_or_fail_with_one_line(tmp_path_factory, edits):
    content = copy.deepcopy(BASE_SPEC)
    for path, value in edits:
        node = content
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            if value == "<delete>":
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    spec = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    spec.write_text(yaml.safe_dump(content))
    _assert_clean_outcome(spec)


def _assert_clean_outcome(spec: Path) -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["spec", str(spec)])
    message = stderr.getvalue().strip()
    assert code in (0, 2)
    if code == 2:
        assert message.startswith("leakbench: error: ") and "\n" not in message


def test_bn_statistics_read_off_buffers_need_one_train_mode_fedsgd_step():
    with pytest.raises(SpecError, match="threat.bn_statistics"):
        make_spec(threat={"bn_statistics": "batch"}, victim={"mode": "eval"})
    with pytest.raises(SpecError, match="fedsgd"):
        make_spec(threat={"bn_statistics": "batch"}, fl={"protocol": "fedavg"})
    assert make_spec(threat={"bn_statistics": "known"}, victim={"mode": "eval"}).threat.bn_statistics == "known"


def test_an_unknown_suite_key_is_answered_with_the_suite_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from benchmark.protocol.loading import TASKS, load_suite

    (tmp_path / "suites.yaml").write_text("mine: {tasks: [cifar10-lenetzhu-b1], target: 2}\n")
    monkeypatch.setenv("LEAKBENCH_TASKS", str(tmp_path))
    monkeypatch.setattr(TASKS, "_discovered", False)
    with pytest.raises(SpecError) as info:
        load_suite("mine")
    assert str(info.value) == (
        "suites.yaml: suite 'mine': unknown key 'target' (did you mean 'targets'?); allowed "
        "here: description, attacks, task_attacks, targets, max_steps, tasks"
    )


def test_a_spec_that_is_not_utf8_names_the_byte(tmp_path: Path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: x\nversion: 1\n# caf\xe9\n")
    with pytest.raises(SpecError, match=r"task spec .*latin.yaml is not UTF-8 text \(byte 0xe9 at offset 24\)"):
        load_task(path)
