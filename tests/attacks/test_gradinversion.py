"""GradInversion (Yin et al., CVPR 2021) on the CPU BatchNorm task: each prior lowers what it targets,
the labels are Yin's, the restarts of a target are one group, and it runs through run and submit."""

from pathlib import Path

import pytest
import torch
from support import label_rounds

from benchmark.attacks.components.priors import bn_distance
from benchmark.attacks.gradinversion import GradInversion, GradInversionConfig
from benchmark.attacks.labels import recover_labels
from benchmark.cli import main

TASK = "cifar10-convnet16-b4-bn"


@pytest.fixture(scope="module")
def target():
    ((truth, observation),) = label_rounds(TASK, 4, 1)
    return truth, observation


def _run(observation, steps: int = 12, **config) -> GradInversion:
    config = GradInversionConfig(max_steps=steps, warmup=0, **config)  # no warm-up: lr 0.1 from the first step
    attack = GradInversion([observation] * 3, config, seeds=[0, 1, 2])
    optimiser, schedulers = attack.optimizer_and_schedulers()
    for _ in range(steps):
        attack.optimise_step(optimiser, lambda loss, inputs: loss.backward(inputs=inputs), schedulers)
    return attack


def _bn_prior(attack: GradInversion) -> torch.Tensor:
    with torch.no_grad():
        return bn_distance(attack.problems.bn_statistics(attack.inputs), attack.bn_targets())


def test_bn_matching_lowers_the_distance_to_the_batch_statistics(target):
    _, observation = target
    without, with_bn = _run(observation, bn=0.0, group=0.0), _run(observation, bn=1.0, group=0.0)
    assert (_bn_prior(with_bn) < 0.8 * _bn_prior(without)).all()


def test_group_consistency_pulls_the_seeds_together(target):
    _, observation = target
    without, grouped = _run(observation, group=0.0), _run(observation, group=10.0)
    assert (grouped.group_distance().detach() < 0.8 * without.group_distance().detach()).all()


def test_the_restarts_of_a_target_are_one_group_and_labels_are_yins(target):
    truth, observation = target
    ((_, other),) = label_rounds(TASK, 4, 1)  # another observation object: another group
    attack = GradInversion([observation, observation, other], GradInversionConfig(max_steps=1))
    assert attack.group_of.tolist() == [0, 0, 1]
    assert attack.labels[0].tolist() == recover_labels("yin", observation).labels.tolist()
    assert attack.label_source == "rule yin"


def test_the_bn_targets_are_the_running_statistics_where_the_threat_model_gives_none():
    ((_, observation),) = label_rounds("cifar10-convnet-b1", 1, 1)  # ConvNet, eval mode, no batch statistics
    attack = GradInversion([observation], GradInversionConfig(max_steps=1, labels="auto"))
    first = next(m for m in observation.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(attack.bn_targets()[0][0][0], first.running_mean)


def test_a_model_without_batchnorm_is_refused():
    ((_, observation),) = label_rounds("digits-lenet5-b1", 4, 1)
    assert GradInversion.unsupported(observation) == (
        "GradInversion matches BatchNorm statistics, and this model has no BatchNorm layer"
    )


BN_SUITE = {
    "tiny-bn.yaml": f"include: {TASK}\nname: tiny-bn\nfl: {{batch_size: 2}}\nbudget: {{restarts: 2}}\n",
    "suites.yaml": "bn: {targets: 1, max_steps: 2, attacks: [gradinversion], tasks: [tiny-bn]}\n",
}


def test_it_runs_through_run_and_submit(mini: Path, clean_checkout: Path, tmp_path: Path, capsys):
    for name, text in BN_SUITE.items():
        (tmp_path / "tasks" / name).write_text(text)
    argv = ["run", "--task", "tiny-bn", "--attack", "gradinversion", "--max-steps", "2", "--targets", "1"]
    assert main([*argv, "--logger", "none", "--out", str(tmp_path / "run")]) == 0
    assert "gradinversion" in capsys.readouterr().out
    assert main(["submit", "--attack", "gradinversion", "--suite", "bn", "--logger", "none"]) == 0
    assert Path("leaderboards/bn/tiny-bn/gradinversion.json").is_file()
