import pytest
import torch
from support import make_spec

from benchmark.attacks.bias import BiasAttack, biased_linear_inputs
from benchmark.data import Samples
from benchmark.pipeline.run import run
from benchmark.victim.client import Victim

MLP = {"model": "mlp", "init": "default", "seed": 0}


def test_recovers_the_images_of_the_bias_task_exactly():
    result = run("cifar10-mlp-b1", "bias", targets=3, logger=None)
    for row in result.targets:
        assert min(row.metrics["psnr"]) >= 80
        assert row.recovered_labels == row.labels and row.details["label_source"] == "bias sign"


def test_hidden_layers_give_their_input_feature():
    private = Samples(torch.rand(1, 3, 16, 16), torch.tensor([4]), "t")
    victim = Victim(make_spec(victim=MLP), 0, private, 10)
    hidden = victim.model.layers[2](victim.model.layers[1](private.images.flatten(1)))[0]
    features, facts = biased_linear_inputs(victim.observe())["layers.3"]
    torch.testing.assert_close(features.float(), hidden.detach(), rtol=1e-4, atol=1e-6)
    assert facts["rank_one_residual"] < 1e-5


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, "is not fully connected with a bias"),  # LeNet-Zhu: a convolution first
        ({"victim": MLP, "fl": {"batch_size": 2}}, "single sample"),
    ],
)
def test_says_why_it_does_not_apply(overrides, reason):
    spec = make_spec(**overrides)
    count = spec.fl.batch_size
    private = Samples(torch.rand(count, 3, 16, 16), torch.arange(count), "t")
    assert reason in BiasAttack.unsupported(Victim(spec, 0, private, 10).observe())
