import pytest
import torch
from support import make_spec

from benchmark.attacks.components.priors import bn_distance
from benchmark.attacks.inverting_gradients import InvertingGradients, InvertingGradientsConfig
from benchmark.core.errors import NotApplicableError
from benchmark.data import Samples
from benchmark.pipeline.fit import fit
from benchmark.victim.client import Victim

NORMALIZE = {"normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}}


def _observation(batch: int = 1, **overrides):
    generator = torch.Generator().manual_seed(batch)
    private = Samples(torch.rand(batch, 3, 16, 16, generator=generator), torch.arange(batch) + 2, "t")
    return Victim(make_spec(fl={"batch_size": batch}, **overrides), 0, private, 10).observe(), private


def test_labels_follow_the_threat_model():
    single, private = _observation(1)
    assert InvertingGradients([single]).labels.tolist() == [private.labels.tolist()]  # iDLG rule
    batch, _ = _observation(2)
    assert InvertingGradients([batch]).learns_labels  # unknown labels of a batch are optimised
    known, private = _observation(2, threat={"labels": "known"})
    assert InvertingGradients([known]).labels.tolist() == [private.labels.tolist()]


def test_steps_use_the_gradient_sign_and_stay_in_the_image_box():
    observation, _ = _observation(1, data=NORMALIZE)
    attack = InvertingGradients([observation], InvertingGradientsConfig(lr=5.0, max_steps=5))
    attack.objective().sum().backward(inputs=[attack.inputs])
    attack.after_backward()
    assert set(attack.inputs.grad.unique().tolist()) <= {-1.0, 0.0, 1.0}
    with torch.no_grad():
        attack.inputs.mul_(100)
    attack.after_step()
    images = observation.normalization.invert(attack.inputs.detach()[0])
    assert images.min() >= -1e-5 and images.max() <= 1 + 1e-5
    assert images.min() < 1e-5 and images.max() > 1 - 1e-5  # the projection reached both faces of the box


def test_learning_rate_drops_tenfold_at_three_eighths_five_eighths_seven_eighths():
    observation, _ = _observation(1)
    attack = InvertingGradients([observation], InvertingGradientsConfig(max_steps=16))
    _, (scheduler,) = attack.configure_optimizers()
    assert list(scheduler.milestones) == [6, 10, 14] and scheduler.gamma == 0.1


def test_cosine_objective_is_zero_at_the_private_input():
    observation, private = _observation(1)
    attack = InvertingGradients([observation], InvertingGradientsConfig(tv=0.0))
    with torch.no_grad():
        attack.inputs.copy_(private.images[None])
    assert attack.objective().item() == pytest.approx(0.0, abs=1e-6)


def test_reconstruction_improves_over_a_short_run():
    observation, private = _observation(1)
    config = InvertingGradientsConfig(max_steps=150, tv=1e-6)
    (first,), _ = fit(InvertingGradients, [observation], InvertingGradientsConfig(max_steps=1), [0])
    (last,), _ = fit(InvertingGradients, [observation], config, [0])
    error = [(r.images - private.images[0]).pow(2).mean().item() for r in (first, last)]
    assert last.loss < first.loss and error[1] < error[0] / 2


BN_VICTIM = {"victim": {"model": "convnet", "init": "default", "mode": "train"}}


@pytest.mark.parametrize("setting", ["batch", "known"])
def test_bn_prior_vanishes_at_the_private_batch_only(setting):
    observations = [_observation(2, threat={"bn_statistics": setting}, **BN_VICTIM) for _ in range(2)]
    attack = InvertingGradients([o for o, _ in observations], InvertingGradientsConfig(tv=0.0, bn_prior=1.0))

    def prior() -> torch.Tensor:
        return bn_distance(attack.problems.bn_statistics(attack.inputs), attack.problems.target_bn_statistics)

    assert (prior() > 0.1).all()  # random candidates
    with torch.no_grad():
        attack.inputs.copy_(torch.stack([private.images for _, private in observations]))
    assert prior().abs().max() < 1e-2  # float32 read-back of the buffers: ~1e-4 relative
    attack.objective().sum().backward(inputs=[attack.inputs])
    assert torch.isfinite(attack.inputs.grad).all()


def test_bn_prior_without_statistics_is_not_applicable():
    observation, _ = _observation(2, **BN_VICTIM)
    with pytest.raises(NotApplicableError, match="threat.bn_statistics"):
        InvertingGradients([observation], InvertingGradientsConfig(bn_prior=1.0))
