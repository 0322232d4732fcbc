"""The label-recovery rules on real images (sklearn's digits, every image offline; lfwmini's faces):
exact where their papers say, refused with the failing assumption where it does not hold."""

import pytest
import torch
from support import label_rounds

from benchmark.attacks.labels import LABEL_RULES, recover_labels
from benchmark.attacks.labels.head import round_counts
from benchmark.attacks.labels.llg import two_stages
from benchmark.core.errors import NotApplicableError


def _exact(rule: str, rounds) -> list[bool]:
    return [
        torch.equal(recover_labels(rule, observation).counts, torch.bincount(truth, minlength=observation.num_classes))
        for truth, observation in rounds
    ]


@pytest.mark.parametrize("task", ["digits-lenet5-b1", "digits-lenetzhu-b1"])
@pytest.mark.parametrize("batch_size", [1, 4, 16, 32])
def test_ilrg_is_exact_on_untrained_networks_for_distinct_and_repeated_labels(task, batch_size):
    """Ma et al.'s setting: PyTorch's default initialisation, B within the rank condition (B ≤ the
    head's input width: 84 for LeNet-5, 48 for LeNet-Zhu on 8×8 digits)."""
    rounds = label_rounds(task, batch_size, 4, init="default")
    repeated = [int(torch.bincount(truth).max()) > 1 for truth, _ in rounds]
    assert all(_exact("ilrg", rounds))
    if batch_size >= 16:
        assert all(repeated)  # 10 classes: the exactness covers repeated labels
    if batch_size == 4:
        assert not all(repeated)  # and distinct ones


def test_ilrg_refuses_a_batch_beyond_its_rank_condition():
    ((_, observation),) = label_rounds("digits-lenetzhu-b1", 64, 1)
    with pytest.raises(NotApplicableError, match=r"rank condition needs B ≤ the head's input width \(48\)"):
        recover_labels("ilrg", observation)


@pytest.mark.parametrize("rule", ["yin", "analytic", "llg", "geng", "llg+"])
def test_rules_for_distinct_labels_are_exact_on_distinct_faces(rule):
    """lfwmini: 100 faces of 100 classes, so every batch's labels are distinct."""
    assert all(_exact(rule, label_rounds("lfwmini-lenet5-b1", 4, 10)))


@pytest.mark.parametrize("rule", ["geng", "llg+"])
def test_count_rules_recover_repeated_digits(rule):
    assert all(_exact(rule, label_rounds("digits-lenet5-b1", 16, 3)))


def test_geng_reads_a_fedavg_update():
    rounds = label_rounds("digits-lenet5-b1", 8, 3, fl={"protocol": "fedavg", "local_epochs": 2, "local_batch_size": 4})
    assert all(_exact("geng", rounds))
    with pytest.raises(NotApplicableError, match="reads a fedsgd update, not fedavg"):
        recover_labels("yin", rounds[0][1])


@pytest.mark.parametrize(
    ("rule", "task", "batch_size", "reason"),
    [
        ("idlg", "digits-lenet5-b1", 4, "reads one sample's label"),
        ("yin", "digits-lenet5-b1", 16, "assumes distinct labels, impossible for 16 samples of 10 classes"),
        ("analytic", "digits-lenet5-b1", 16, "assumes distinct labels"),
        ("yin", "cnn6", 1, "the head's inputs take negative values"),  # LeakyReLU before the head
        ("llg", "cnn6", 1, "the head's inputs take negative values"),
        ("geng", "cnn6", 1, "the head's inputs take negative values"),
        ("analytic", "cnn6", 1, "the last layer has no bias"),
        ("ilrg", "cnn6", 1, "the last layer has no bias"),
        ("ilrg", "cifar10-cnn6-b1", 1, "reads a softmax head of at least two classes"),  # one logit
    ],
)
def test_a_rule_refuses_where_its_assumption_fails(rule, task, batch_size, reason):
    if task == "cnn6":  # R-GAP's CNN6 (LeakyReLU, no bias in the head) on the ten CIFAR-10 classes
        ((_, observation),) = label_rounds("cifar10-lenetzhu-b1", batch_size, 1, model="cnn6", init="default")
    else:
        ((_, observation),) = label_rounds(task, batch_size, 1)
    with pytest.raises(NotApplicableError, match=reason):
        recover_labels(rule, observation)


def test_llg_gives_a_repeated_label_its_count():
    """Stage 2 subtracts one label's impact from the class it chose; breaching 0.1.2's ``wainakh``
    strategies subtract it from stage 1's last class, so one class takes every remaining slot."""
    # classes 0 (3 labels) and 2 (1 label); one label's impact -1, absent classes sum to 0.5
    row_sums = torch.tensor([-2.5, 0.5, -0.5, 0.5])
    assert two_stages(row_sums, 4, impact=-1.0).tolist() == [3, 0, 1, 0]


def test_counts_are_rounded_to_the_batch_by_the_largest_remainder():
    assert round_counts(torch.tensor([0.9, 2.1, -0.3, 1.0]), 4).tolist() == [1, 2, 0, 1]
    assert round_counts(torch.tensor([3.0, 3.0, 3.0]), 4).tolist() == [2, 1, 1]
    assert int(round_counts(torch.tensor([0.0, 0.0]), 2).sum()) == 2


def test_every_rule_cites_its_paper_and_the_registry_suggests_names():
    assert all(rule.paper for _, rule in LABEL_RULES)
    with pytest.raises(LookupError, match="did you mean 'ilrg'"):
        LABEL_RULES.get("ilgr")
