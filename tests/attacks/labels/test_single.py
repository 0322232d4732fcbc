import pytest
import torch
from support import make_spec

from benchmark.attacks.labels.single import bias_sign_label, idlg_label, label_from_update, row_norm_label
from benchmark.data import Samples
from benchmark.victim.client import Victim


@pytest.mark.parametrize("seed", range(20))
def test_idlg_rule_reads_the_true_label(seed):
    generator = torch.Generator().manual_seed(seed)
    private = Samples(torch.rand(1, 3, 16, 16, generator=generator), torch.randint(100, (1,), generator=generator), "t")
    observation = Victim(make_spec(), seed, private, 100).observe()
    assert idlg_label(observation).tolist() == private.labels.tolist()


def test_idlg_rule_refuses_batches():
    private = Samples(torch.rand(2, 3, 16, 16), torch.tensor([1, 2]), "t")
    with pytest.raises(ValueError, match="batch size 1"):
        idlg_label(Victim(make_spec(fl={"batch_size": 2}), 0, private, 10).observe())


def _observation(spec, classes: int, seed: int, label: int | None = None):
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(classes, (1,), generator=generator) if label is None else torch.tensor([label])
    return Victim(
        spec, seed, Samples(torch.rand(1, 3, 16, 16, generator=generator), label, "t"), classes
    ).observe(), label


@pytest.mark.parametrize("seed", range(10))
def test_bias_sign_rule_reads_softmax_and_logistic_labels(seed):
    observation, label = _observation(make_spec(), 10, seed)
    assert bias_sign_label(observation).tolist() == label.tolist()
    mlp = make_spec(victim={"model": "mlp", "init": "default"}, data={"binary": {"name": "b", "positive": [1]}})
    observation, label = _observation(mlp, 2, seed, label=seed % 2)  # one logit
    assert bias_sign_label(observation).tolist() == label.tolist()


@pytest.mark.parametrize("seed", range(10))
def test_row_norm_rule_needs_no_sign_of_the_features(seed):
    observation, label = _observation(make_spec(victim={"model": "cnn6", "init": "default"}), 10, seed)  # LeakyReLU
    assert row_norm_label(observation).tolist() == label.tolist()
    assert label_from_update(observation)[1] == "row norm"


def test_label_sources_in_order():
    observation, _ = _observation(make_spec(threat={"labels": "known"}), 10, 0)
    assert label_from_update(observation)[1] == "known"
    assert label_from_update(_observation(make_spec(), 10, 0)[0])[1] == "bias sign"
    binary = make_spec(victim={"model": "cnn6", "init": "default"}, data={"binary": {"name": "b", "positive": [1]}})
    assert label_from_update(_observation(binary, 2, 0, label=1)[0]) is None  # one logit, no bias
