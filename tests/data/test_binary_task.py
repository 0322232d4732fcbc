"""Binary tasks (``data.binary``) and the one-logit logistic head shared by victim and attacker."""

import pytest
import torch
import torch.nn.functional as F
from support import make_spec

from benchmark.core.errors import SpecError
from benchmark.data import Samples, load_samples, load_source
from benchmark.fl.updates import task_loss
from benchmark.pipeline.tasks import load_task
from benchmark.victim.client import Victim

ANIMAL = {"binary": {"name": "animal", "positive": [2, 3, 4, 5, 6, 7]}}


def test_classes_map_to_binary_labels_and_the_task_has_two_classes():
    spec = make_spec(data=ANIMAL)
    native, binary = load_source(make_spec().data), load_source(spec.data)
    indices = list(range(10))
    classes = load_samples(native, indices).labels
    assert binary.num_classes == 2
    assert load_samples(binary, indices).labels.tolist() == [int(2 <= c <= 7) for c in classes.tolist()]


def test_a_positive_class_the_dataset_lacks_is_a_spec_error():
    with pytest.raises(SpecError, match=r"data.binary.positive \[10\].*classes 0..9"):
        load_source(make_spec(data={"binary": {"name": "x", "positive": [10]}}).data)


def test_one_logit_takes_the_logistic_loss_with_hard_or_soft_labels():
    u = torch.tensor([[0.3], [-1.2]])
    t = torch.tensor([1, 0])
    y = 2.0 * t - 1
    expected = torch.log1p(torch.exp(-y * u[:, 0])).mean()
    torch.testing.assert_close(task_loss(u, t), expected)
    torch.testing.assert_close(task_loss(u, F.one_hot(t, 2).float()), expected)
    logits = torch.randn(2, 3)
    torch.testing.assert_close(task_loss(logits, t), F.cross_entropy(logits, t))


def test_the_cnn6_task_shares_the_logistic_gradient():
    spec = load_task("cifar10-cnn6-b1")
    private = Samples(torch.rand(1, 3, 32, 32), torch.tensor([1]), "t")
    victim = Victim(spec, 0, private, 2)
    observation = victim.observe()
    logit = victim.model(private.images)
    assert logit.shape == (1, 1)
    expected = torch.autograd.grad(torch.log1p(torch.exp(-logit)).mean(), list(victim.model.parameters()))
    for got, want in zip(observation.update, expected):
        torch.testing.assert_close(got, want)
