"""Parity with breaching 0.1.2's label strategies (``_BaseAttacker._recover_label_information``): the
same gradients in, the same labels out, where it implements the same rule. breaching comes with the
``test`` extra, so none of this skips."""

from types import SimpleNamespace

import pytest
import torch
from support import label_rounds

from benchmark.apps.peers import import_breaching
from benchmark.attacks.labels import recover_labels

# our rule -> breaching's strategy of the same rule
SAME_RULE = {"idlg": "iDLG", "yin": "yin", "analytic": "analytic", "llg": "wainakh-simple"}


def breaching_labels(strategy: str, observation) -> list[int]:
    import_breaching()
    from breaching.attacks.base_attack import _BaseAttacker

    attacker = SimpleNamespace(cfg=SimpleNamespace(label_strategy=strategy), setup={"device": torch.device("cpu")})
    user_data = [{"metadata": {"num_data_points": observation.batch_size}, "gradients": list(observation.update)}]
    return _BaseAttacker._recover_label_information(attacker, user_data, None, None).tolist()


@pytest.mark.parametrize("rule", ["yin", "analytic", "llg"])
def test_batch_rules_give_breachings_labels_on_distinct_faces(rule):
    for _, observation in label_rounds("lfwmini-lenet5-b1", 4, 5):
        assert recover_labels(rule, observation).labels.tolist() == breaching_labels(SAME_RULE[rule], observation)


def test_idlg_gives_breachings_label_on_digits():
    for _, observation in label_rounds("digits-lenet5-b1", 1, 10):
        assert recover_labels("idlg", observation).labels.tolist() == breaching_labels("iDLG", observation)


def test_where_breachings_llg_repeats_one_class_ours_counts_each():
    """A batch with a repeated label: breaching's stage 2 lowers the wrong class (test_rules.py)."""
    differs = 0
    for truth, observation in label_rounds("digits-lenet5-b1", 16, 3, init="default"):
        ours = recover_labels("llg", observation).labels
        theirs = torch.tensor(breaching_labels("wainakh-simple", observation))
        true_counts = torch.bincount(truth, minlength=10)
        accuracy = [int(torch.minimum(torch.bincount(x, minlength=10), true_counts).sum()) for x in (ours, theirs)]
        assert accuracy[0] >= accuracy[1]
        differs += accuracy[0] > accuracy[1]
    assert differs > 0
