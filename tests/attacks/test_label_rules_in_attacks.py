"""An attack that needs labels takes a label rule from its config (``labels: <rule>``): the rule's
labels are the ones it optimises with, and each reconstruction says where its labels came from."""

import pytest
import torch
from support import label_rounds

from benchmark.attacks.dlg import DLG, DLGConfig
from benchmark.attacks.grnn import GRNN, GRNNConfig
from benchmark.attacks.inverting_gradients import InvertingGradients, InvertingGradientsConfig
from benchmark.attacks.labels import recover_labels
from benchmark.core.errors import LeakBenchError, NotApplicableError
from benchmark.pipeline.config import attack_config


def _fitted(attack, steps: int = 2):
    optimiser, schedulers = attack.optimizer_and_schedulers()
    for _ in range(steps):
        attack.optimise_step(optimiser, lambda loss, inputs: loss.backward(inputs=inputs), schedulers)
    return attack.reconstructions()


@pytest.mark.parametrize(
    ("attack_cls", "config"),
    [(InvertingGradients, InvertingGradientsConfig), (DLG, DLGConfig), (GRNN, GRNNConfig)],
)
def test_a_rule_fixes_the_labels_an_attack_optimises_with(attack_cls, config):
    rounds = label_rounds("digits-lenet5-b1", 8, 2, init="default")
    observations = [observation for _, observation in rounds]
    attack = attack_cls(observations, config(max_steps=2, labels="ilrg"))
    for (truth, observation), reconstruction in zip(rounds, _fitted(attack)):
        assert reconstruction.labels.tolist() == recover_labels("ilrg", observation).labels.tolist()
        assert sorted(reconstruction.labels.tolist()) == sorted(truth.tolist())  # iLRG is exact here
        assert reconstruction.details["label_source"] == "rule ilrg"


def test_without_a_rule_the_paper_decides():
    ((_, observation),) = label_rounds("digits-lenet5-b1", 4, 1)
    assert _fitted(DLG([observation], DLGConfig(max_steps=1)))[0].details["label_source"] == "optimised"
    ((_, single),) = label_rounds("digits-lenet5-b1", 1, 1)
    ig = InvertingGradients([single], InvertingGradientsConfig(max_steps=1))
    assert _fitted(ig, 1)[0].details["label_source"] == "rule idlg"  # the paper's code: iDLG for one image
    assert _fitted(GRNN([observation], GRNNConfig(max_steps=1)), 1)[0].details["label_source"] == "label branch"


def test_a_rule_is_refused_where_the_threat_model_gives_the_labels():
    ((_, observation),) = label_rounds("digits-lenet5-b1", 4, 1)
    known = type(observation)(**{**observation.__dict__, "labels": torch.tensor([0, 1, 2, 3])})
    with pytest.raises(NotApplicableError, match="would replace the labels the threat model gives"):
        DLG([known], DLGConfig(max_steps=1, labels="yin"))


def test_an_unknown_rule_is_named_before_any_work():
    with pytest.raises(LeakBenchError, match="unknown label rule 'ilgr' \\(did you mean 'ilrg'\\?\\)"):
        attack_config(InvertingGradients, {"labels": "ilgr"})
