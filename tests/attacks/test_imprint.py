"""Robbing the Fed's imprint attack (Fowl et al., ICLR 2022) under a malicious server, on real images:
every image alone in its bin is recovered exactly, the share of the batch follows the bin analysis,
an honest task refuses it, and the modified model is recorded in the run."""

import copy
import math
import types

import numpy as np
import pytest
import torch
from scipy.stats import laplace, norm
from support import make_spec
from torchmetrics.functional.image import peak_signal_noise_ratio

from benchmark.apps.peers import SETUP, _quiet, import_breaching
from benchmark.attacks.imprint import ImprintAttack, ImprintConfig, Imprinted, bin_edges
from benchmark.core.errors import NotApplicableError, SpecError
from benchmark.data import load_samples, load_source
from benchmark.pipeline.prepare import server_knowledge
from benchmark.pipeline.run import run
from benchmark.pipeline.tasks import load_task
from benchmark.protocol.spec import DataStatistics, TaskSpec
from benchmark.victim.client import Victim

EXACT = 40.0  # dB: an image counts as recovered exactly at PSNR >= 40 (the study criterion psnr-40)
STATISTICS = {"mean": 0.48, "std": 0.13, "source": "a test's guess"}


def lone_images(images: torch.Tensor, statistics: DataStatistics, bins: int) -> set[int]:
    """The images of a batch alone in their brightness bin, computed apart from the attack: each image's
    mean pixel value placed among the quantiles i/k of the granted distribution."""
    brightness = images.double().flatten(1).mean(1).numpy()
    quantiles = np.arange(1, bins) / bins
    if statistics.distribution == "gaussian":
        edges = norm.ppf(quantiles, statistics.mean, statistics.std)
    else:
        edges = laplace.ppf(quantiles, statistics.mean, statistics.std / math.sqrt(2))
    which = np.searchsorted(edges, brightness, side="right")
    counts = np.bincount(which, minlength=bins)
    return {i for i, b in enumerate(which) if counts[b] == 1}


def imprinted_victim(task: str | TaskSpec, target: int = 0, config: ImprintConfig = ImprintConfig()) -> Victim:
    """Task ``task``'s victim of target ``target``, holding the model the imprint attack's server sent it."""
    spec = load_task(task) if isinstance(task, str) else task
    source = load_source(spec.data, spec.targets)
    victim = Victim(spec, target, load_samples(source, spec.target_indices(target)), source.num_classes)
    modified = ImprintAttack.prepare_model(copy.deepcopy(victim.model), server_knowledge(spec, victim), config)
    victim.receive(modified.model)
    return victim


def test_every_lone_image_of_a_cifar10_batch_of_16_is_recovered_exactly_and_no_other():
    spec = load_task("cifar10-imprint-b16")
    result = run(spec, "imprint", logger=None)
    (row,) = result.targets
    truth = load_samples(load_source(spec.data), spec.target_indices(0)).images
    alone = lone_images(truth, spec.threat.data_statistics, ImprintConfig().bins)
    exact = {i for i, value in enumerate(row.metrics["psnr"]) if value >= EXACT}  # row i: true image i
    assert exact == alone and len(alone) == 10  # 10 of the 16 offline images have a bin of their own
    assert min(row.metrics["psnr"][i] for i in alone) > 100  # float32 rounding, not an approximation
    assert row.details["bins_hit"] == 13 and row.loss == pytest.approx(1 - 13 / 16)


def test_the_share_recovered_over_22_digit_batches_is_the_bin_analysis_prediction():
    """k = 64 bins of equal mass and B = 16: an image is alone with probability (1 - 1/k)^(B - 1) = 0.790;
    the digits' brightness is discrete (124 values among the 360 test digits) and not quite Gaussian,
    so the bins' true masses are unequal and the share is lower, within 10 points."""
    spec = load_task("digits-imprint-b16")
    result = run(spec, "imprint", logger=None)
    source = load_source(spec.data)
    recovered = 0
    for row in result.targets:
        truth = load_samples(source, spec.target_indices(row.target)).images
        lone = lone_images(truth, spec.threat.data_statistics, 64)
        assert {i for i, value in enumerate(row.metrics["psnr"]) if value >= EXACT} == lone
        recovered += len(lone)
    share = recovered / (16 * len(result.targets))
    assert len(result.targets) == 22 and abs(share - (1 - 1 / 64) ** 15) <= 0.10
    assert share == pytest.approx(250 / 352)


def test_two_faces_sharing_a_bin_come_back_as_their_mean_weighted_by_each_faces_gradient():
    """A bin holding faces a and b reads (g_a·x_a + g_b·x_b) / (g_a + g_b), g_n = ∂L/∂a_i of face n (the
    same for every row i). In this batch of 16 LFW faces, faces 4 and 8 share bin 61 and face 8's weight
    dominates: the mixture is within 40 dB of face 8, the one case where a face not alone is "exact"."""
    spec = load_task("lfwmini-imprint-b16")
    victim = imprinted_victim(spec, target=2)
    faces, labels = victim._private.images, victim._private.labels
    edges = bin_edges(spec.threat.data_statistics, 64).double()
    bins = torch.searchsorted(edges, faces.double().flatten(1).mean(1), right=True) - 1
    assert bins[4] == bins[8] == 61 and (bins == 61).sum() == 2
    weights = []
    for face, label in zip(faces, labels):  # g_n: face n's gradient on row 0, active for every face
        victim.model.zero_grad()
        torch.nn.functional.cross_entropy(victim.model(face[None]), label[None]).backward()
        weights.append(float(victim.model.imprint.linear0.bias.grad[0]))
    g4, g8 = weights[4], weights[8]
    expected = (g4 * faces[4].double() + g8 * faces[8].double()) / (g4 + g8)
    reconstruction = ImprintAttack([victim.observe()]).solve(victim.observe())
    mixture = min(reconstruction.images, key=lambda image: float((image.double() - expected).pow(2).mean()))
    assert float(peak_signal_noise_ratio(mixture.double()[None], expected[None], data_range=1.0)) > 60
    assert float(peak_signal_noise_ratio(mixture[None], faces[8][None], data_range=1.0)) >= EXACT
    assert float(peak_signal_noise_ratio(mixture[None], faces[4][None], data_range=1.0)) < 25


def test_the_bins_have_equal_mass_under_the_granted_distribution():
    for distribution, cdf in [("gaussian", norm(0.3, 0.05).cdf), ("laplacian", laplace(0.3, 0.05 / math.sqrt(2)).cdf)]:
        edges = bin_edges(DataStatistics(mean=0.3, std=0.05, distribution=distribution, source="t"), 8).numpy()
        masses = np.diff([*cdf(edges), 1.0])
        np.testing.assert_allclose(masses, 1 / 8, atol=1e-9)
        assert edges[0] < 0  # below every image's brightness


def test_the_module_measures_the_brightness_of_normalised_inputs():
    """With the task's normalisation, row i of the imprint layer is the image's brightness minus c_i."""
    spec = make_spec(
        data={"normalize": {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}},
        threat={"server": "malicious", "data_statistics": STATISTICS},
    )
    victim = imprinted_victim(spec)
    images = victim._private.images
    block = victim.model.imprint
    edges = bin_edges(spec.threat.data_statistics, 64)
    rows = block.linear0(spec.data.normalize.apply(images).flatten(1)).double()
    torch.testing.assert_close(rows, images.double().flatten(1).mean(1, keepdim=True) - edges, atol=1e-5, rtol=0)


def test_a_normalised_batch_is_recovered_in_image_coordinates():
    spec = make_spec(
        data={"normalize": {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}},
        threat={"server": "malicious", "data_statistics": STATISTICS},
        fl={"batch_size": 4},
        targets={"count": 1},
    )
    victim = imprinted_victim(spec)
    reconstruction = ImprintAttack([victim.observe()]).solve(victim.observe())
    truth = victim._private.images
    for i in lone_images(truth, spec.threat.data_statistics, 64):
        best = max(
            float(peak_signal_noise_ratio(r[None], truth[i][None], data_range=1.0)) for r in reconstruction.images
        )
        assert best > 60


def test_an_honest_task_refuses_the_attack_with_a_one_line_reason():
    with pytest.raises(NotApplicableError) as caught:
        run("cifar10-lenetzhu-b1", "imprint", targets=1, logger=None)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "attack 'imprint' does not apply to task 'cifar10-lenetzhu-b1': it modifies the global model before the "
        "round (a malicious server) and this task's server is honest; run it on a task with threat.server: malicious"
    )
    spec = load_task("cifar10-lenetzhu-b1")
    source = load_source(spec.data)
    honest = Victim(spec, 0, load_samples(source, spec.target_indices(0)), 10).observe()
    assert "holds no imprint module" in ImprintAttack.unsupported(honest)


def test_a_malicious_task_without_data_statistics_says_what_to_add():
    spec = make_spec(threat={"server": "malicious"})
    with pytest.raises(NotApplicableError, match=r"add threat.data_statistics: \{mean, std, source\}$"):
        run(spec, "imprint", targets=1, logger=None)


def test_data_statistics_on_an_honest_server_are_a_spec_error():
    with pytest.raises(SpecError, match="set threat.server: malicious or remove threat.data_statistics"):
        make_spec(threat={"data_statistics": STATISTICS})


def test_the_modified_model_is_recorded_and_is_what_the_victim_trains():
    result = run("cifar10-imprint-b4", "imprint", targets=2, logger=None)
    assert result.config["server"] == "malicious"
    for row in result.targets:
        recorded = row.details["global_model"]
        assert recorded["modified_by"] == "imprint" and recorded["bins"] == 64
        assert recorded["parameters_added"] == 64 * 3072 + 64 + 3072 * 64 + 3072
        assert recorded["statistics"]["mean"] == 0.4839 and "CIFAR-100" in recorded["statistics"]["source"]
    victim = imprinted_victim("cifar10-imprint-b4")
    observation = victim.observe()
    assert isinstance(victim.model, Imprinted) and isinstance(observation.model, Imprinted)
    assert len(observation.update) == len(list(victim.model.parameters()))


def test_an_honest_attack_on_a_malicious_task_runs_on_the_unmodified_model():
    result = run("cifar10-imprint-b1", "idlg", targets=1, max_steps=2, logger=None)
    (row,) = result.targets
    assert "global_model" not in row.details and row.failed is None


def test_the_victim_refuses_a_model_from_an_honest_server():
    spec = make_spec()
    source = load_source(spec.data)
    victim = Victim(spec, 0, load_samples(source, spec.target_indices(0)), 10)
    with pytest.raises(SpecError, match="set threat.server: malicious"):
        victim.receive(torch.nn.Identity())


def test_breachings_imprint_attacker_recovers_the_same_images_from_the_same_gradients():
    """breaching's `imprint` attack (ImprintAttacker, structure `cumulative`) fed this attack's model and
    gradients: it reads the bins as row i minus row i - 1, so the top bin [c_63, inf) goes unread (here
    no image lies there) and row 0 is the batch's mean. Each true image's best reconstruction (not the
    one-to-one matching, which breaching's zero padding and row 0 can reorder) is exact for the same
    images in both."""
    breaching = import_breaching()
    victim = imprinted_victim("cifar10-imprint-b16")
    observation, truth = victim.observe(), victim._private.images
    ours = ImprintAttack([observation]).solve(observation).images
    with _quiet():
        attacker = breaching.attacks.prepare_attack(
            observation.model, torch.nn.CrossEntropyLoss(), breaching.get_attack_config("imprint"), SETUP
        )
        payload = {
            "parameters": [p.detach().clone() for p in observation.model.parameters()],
            "buffers": None,
            "metadata": types.SimpleNamespace(shape=observation.input_shape, modality="vision"),
        }
        shared = {
            "gradients": [g.clone() for g in observation.update],
            "buffers": None,
            "metadata": {"num_data_points": 16, "labels": victim._private.labels, "local_hyperparams": None},
        }
        block = observation.model.imprint
        index = {id(p): i for i, p in enumerate(observation.model.parameters())}
        secrets = {
            "ImprintBlock": {
                "weight_idx": index[id(block.linear0.weight)],
                "bias_idx": index[id(block.linear0.bias)],
                "shape": observation.input_shape,
                "structure": "cumulative",
            }
        }
        reconstructed, _ = attacker.reconstruct([payload], [shared], secrets)
    theirs = reconstructed["data"].clamp(0, 1)

    def exact(images: torch.Tensor) -> set[int]:
        return {
            i
            for i, image in enumerate(truth)
            if max(
                float(peak_signal_noise_ratio(r[None].double(), image[None].double(), data_range=1.0)) for r in images
            )
            >= EXACT
        }

    assert (
        exact(theirs) == exact(ours) == lone_images(truth, load_task("cifar10-imprint-b16").threat.data_statistics, 64)
    )
