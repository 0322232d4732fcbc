import pytest
import torch
import torch.nn.functional as F
from support import make_spec
from torch.func import functional_call

from benchmark.attacks.grnn import GRNN, GRNNConfig, GRNNGenerator
from benchmark.data import Samples, load_samples, load_source
from benchmark.metrics import evaluate
from benchmark.pipeline.fit import fit
from benchmark.pipeline.tasks import load_task
from benchmark.victim.client import Victim


def _observation(batch: int = 2, size: int = 16, **overrides):
    generator = torch.Generator().manual_seed(batch)
    private = Samples(torch.rand(batch, 3, size, size, generator=generator), torch.arange(batch) + 2, "t")
    spec = make_spec(fl={"batch_size": batch}, data={"image_size": size}, **overrides)
    return Victim(spec, 0, private, 10).observe(), private


# The transposed convolution's channels, then each GLU's output (S = 32: 256 → 128 → 64 → 32 → 3).
@pytest.mark.parametrize(("size", "widths"), [(32, [256, 128, 64, 32, 3]), (64, [512, 256, 128, 64, 32, 3])])
def test_generator_follows_the_paper(size, widths):
    generator = GRNNGenerator(128, 100, 3, size).train()
    images, labels = generator(torch.randn(4, 128))
    assert images.shape == (4, 3, size, size) and 0 <= images.min() and images.max() <= 1
    assert labels.shape == (4, 100) and torch.allclose(labels.sum(-1), torch.ones(4))
    convs = [m for m in generator.image_branch if isinstance(m, torch.nn.ConvTranspose2d)] + [
        m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    assert [c.out_channels for c in convs] == widths[:1] + [2 * w for w in widths[2:]]  # GLU halves
    assert all(c.bias is None for c in convs[1:])  # the up-blocks' convolutions have no bias


def test_generator_is_initialised_on_purpose_from_the_problem_seed():
    observation, _ = _observation()
    first, again, other = (GRNN([observation], GRNNConfig(init="normal"), seeds=[seed]) for seed in (5, 5, 6))
    names = first._weight_names
    conv = names.index("image_branch.1.weight")  # the transposed convolution
    assert first.weights[conv].std().item() == pytest.approx(0.02, rel=0.05)
    assert all(not w.any() for name, w in zip(names, first.weights) if name.endswith("bias"))
    assert all(torch.equal(a, b) for a, b in zip(first.weights, again.weights))
    assert not torch.equal(first.weights[conv], other.weights[conv]) and not torch.equal(first.noise, other.noise)


def test_default_init_is_pytorchs_own_as_the_public_code_ran():
    """Each weight and bias has the range and spread of the same layer's ``reset_parameters``, drawn
    from the problem's stream (deterministic for a seed)."""
    observation, _ = _observation()
    attack, again = (GRNN([observation], seeds=[3]) for _ in range(2))
    assert attack.config.init == "pytorch"
    reference = GRNNGenerator(128, 10, 3, 16)  # PyTorch's own init, from the global RNG
    for name, mine, theirs in zip(attack._weight_names, attack.weights, reference.parameters()):
        mine = mine[0]
        if "label_branch" in name or mine.numel() < 500:  # spreads of small tensors are noisy
            assert mine.abs().max() <= theirs.abs().max() * 1.5 + 1e-6, name
            continue
        assert mine.abs().max() <= theirs.abs().max() * 1.01 + 1e-6, name  # the same bound
        assert mine.std().item() == pytest.approx(theirs.std().item(), rel=0.1), name
    assert all(torch.equal(a, b) for a, b in zip(attack.weights, again.weights))


def test_objective_is_the_papers_loss_for_every_problem():
    """Batched through vmap, each problem's loss equals GRNN's loss computed alone with autograd."""
    observations = [_observation(2)[0], _observation(2, victim={"seed": 9})[0]]
    attack = GRNN(observations, GRNNConfig(tv=0.5), seeds=[0, 1])
    losses = attack.objective()
    for k, observation in enumerate(observations):
        weights = {name: w[k] for name, w in zip(attack._weight_names, attack.weights)}
        images, soft = functional_call(attack.generator, weights, (attack.noise[k],))
        model = observation.model
        loss = -(soft * F.log_softmax(model(images), dim=1)).sum(1).mean()
        fake = torch.autograd.grad(loss, list(model.parameters()))
        squared = sum(((f - g) ** 2).sum() for f, g in zip(fake, observation.update))
        dy = (images[:, :, 1:] - images[:, :, :-1]).pow(2).mean()
        dx = (images[..., 1:] - images[..., :-1]).pow(2).mean()
        expected = squared + squared.sqrt() + 0.5 * 2 * (dy + dx)
        assert losses[k].item() == pytest.approx(expected.item(), rel=1e-4)


def test_known_labels_are_used_and_reported():
    observation, private = _observation(2, threat={"labels": "known"})
    attack = GRNN([observation])
    attack.objective()
    assert attack.current()["labels"].tolist() == [private.labels.tolist()]


def test_image_sides_that_are_not_powers_of_two_are_refused():
    observation, _ = _observation(1, size=28)
    assert "power of two" in GRNN.unsupported(observation)


def test_recovers_an_mnist_batch_of_four_and_its_labels():
    """The paper's MNIST LeNet-5 protocol, shortened: labels right and images far from the start."""
    spec = load_task("mnist-lenet5-b4")
    source = load_source(spec.data)
    private = load_samples(source, spec.target_indices(0))
    observation = Victim(spec, 0, private, source.num_classes).observe()
    initial = GRNN([observation]).current()["images"][0]
    (reconstruction,), _ = fit(GRNN, [observation], GRNNConfig(max_steps=300), [0])
    before = evaluate(initial, torch.zeros(4, dtype=torch.int64), private.images, private.labels, ("ssim",))
    after = evaluate(
        reconstruction.images, reconstruction.labels, private.images, private.labels, ("ssim", "label_accuracy")
    )
    assert after["label_accuracy"].tolist() == [1.0] * 4
    assert after["ssim"].min() > 0.15 > before["ssim"].max()
