import pytest
import torch
from support import make_spec

from benchmark.attacks.ssras import SSRAS
from benchmark.data import Samples
from benchmark.pipeline.fit import fit
from benchmark.victim.client import Victim

DEFAULT_INIT = {"init": "default", "seed": 0, "mode": "eval"}
ANIMAL = {"binary": {"name": "animal", "positive": [2, 3, 4, 5, 6, 7]}}


def _attack(spec, label: int, classes: int, channels: int = 3, size: int = 16):
    generator = torch.Generator().manual_seed(label)
    private = Samples(torch.rand(1, channels, size, size, generator=generator), torch.tensor([label]), "t")
    observation = Victim(spec, 0, private, classes).observe()
    assert SSRAS.unsupported(observation) is None
    (reconstruction,), _ = fit(SSRAS, [observation], SSRAS.Config(), [0])
    psnr = 10 * torch.log10(1 / ((reconstruction.images - private.images) ** 2).mean())
    return reconstruction, psnr


def test_lenet_bias_attack_on_the_head_then_rgap_through_biased_sigmoid_convolutions():
    reconstruction, psnr = _attack(make_spec(), label=3, classes=10)  # LeNet-Zhu, U(-0.5, 0.5)
    assert psnr >= 40 and reconstruction.labels.tolist() == [3]
    assert reconstruction.details["start"] == "bias attack on 'classifier'"
    assert reconstruction.details["label_source"] == "bias sign" and not reconstruction.details["rank_deficient"]


@pytest.mark.parametrize("label", [0, 1])
def test_a_network_without_any_bias_and_an_unknown_label(label):
    spec = make_spec(data=ANIMAL, victim={"model": "cnn6", **DEFAULT_INIT})
    reconstruction, psnr = _attack(spec, label=label, classes=2)
    assert psnr >= 40 and reconstruction.labels.tolist() == [label]
    assert reconstruction.details["start"] == "R-GAP head equations"
    assert reconstruction.details["label_source"] == "DLG, checked by R-GAP's residual"


def test_a_first_layer_with_bias_is_the_bias_attack_alone():
    reconstruction, psnr = _attack(make_spec(victim={"model": "mlp", **DEFAULT_INIT}), label=5, classes=10)
    assert psnr >= 80 and reconstruction.labels.tolist() == [5] and "layers" not in reconstruction.details


def test_fully_connected_layers_without_bias_and_a_known_label():
    spec = make_spec(
        data={"dataset": "mnist", "image_size": 28, "binary": {"name": "odd", "positive": [1, 3, 5, 7, 9]}},
        victim={"model": "fcn3", **DEFAULT_INIT},
        threat={"labels": "known"},
    )
    reconstruction, psnr = _attack(spec, label=1, classes=2, channels=1, size=28)
    assert psnr >= 80 and reconstruction.details["label_source"] == "known"


def test_says_why_it_does_not_apply():
    private = Samples(torch.rand(2, 3, 16, 16), torch.tensor([1, 2]), "t")
    assert "single sample" in SSRAS.unsupported(Victim(make_spec(fl={"batch_size": 2}), 0, private, 10).observe())
    one = Samples(private.images[:1], private.labels[:1], "t")
    observation = Victim(make_spec(victim={"model": "convnet", **DEFAULT_INIT}), 0, one, 10).observe()
    assert "BatchNorm2d" in SSRAS.unsupported(observation)
