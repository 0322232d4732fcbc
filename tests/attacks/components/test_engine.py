import copy

import pytest
import torch
from support import make_spec

from benchmark.attacks.components.engine import ProblemBatch
from benchmark.data import Samples, load_samples, load_source
from benchmark.fl.updates import task_loss
from benchmark.pipeline.tasks import load_task
from benchmark.victim.client import Victim


def _observations(spec, targets):
    observations = []
    for t in targets:
        generator = torch.Generator().manual_seed(t)
        private = Samples(
            torch.rand(2, 3, 16, 16, generator=generator), torch.randint(10, (2,), generator=generator), "t"
        )
        observations.append(Victim(spec, t, private, 10).observe())
    return observations


def _inputs(count):
    generator = torch.Generator().manual_seed(9)
    return torch.randn(count, 2, 3, 16, 16, generator=generator), torch.randint(10, (count, 2), generator=generator)


def test_updates_are_each_problems_own_gradient():
    observations = _observations(make_spec(fl={"batch_size": 2}), [0, 1, 2])
    batch = ProblemBatch(observations)
    assert not batch.shared  # a fresh victim per target: parameters stacked
    inputs, labels = _inputs(3)
    updates = batch.updates(inputs, labels)
    for k, observation in enumerate(observations):
        loss = task_loss(observation.model(inputs[k]), labels[k])
        expected = torch.autograd.grad(loss, list(observation.model.parameters()))
        for got, want in zip(updates, expected):
            torch.testing.assert_close(got[k], want, atol=1e-6, rtol=1e-5)
    for got, observed in zip(batch.target_updates, zip(*[o.update for o in observations])):
        torch.testing.assert_close(got, torch.stack(observed))


def test_problems_of_one_model_share_its_parameters():
    observation = _observations(make_spec(fl={"batch_size": 2}), [0])[0]
    batch = ProblemBatch([observation] * 4)
    assert batch.shared and batch.param_0.shape == next(observation.model.parameters()).shape


@pytest.mark.parametrize(
    "fl",
    [
        {"batch_size": 2},
        {"protocol": "fedavg", "batch_size": 2, "local_epochs": 2, "local_batch_size": 1, "local_lr": 0.1},
    ],
)
def test_a_problem_is_unaffected_by_its_batch_and_differentiable(fl):
    """One problem alone takes the engine's fast path (no vmap, plain autograd): the same update as
    within a batch, FedAvg's unrolled local steps included, the same gradient w.r.t. its candidates,
    and nothing recorded under no_grad."""
    observations = _observations(make_spec(fl=fl), [0, 1, 2])
    inputs, labels = _inputs(3)
    inputs.requires_grad_(True)
    together = ProblemBatch(observations).updates(inputs, labels)
    alone = ProblemBatch(observations[1:2]).updates(inputs[1:2], labels[1:2])
    for a, b in zip(together, alone):
        torch.testing.assert_close(a[1], b[0], atol=1e-6, rtol=1e-5)
    (batched,) = torch.autograd.grad(sum(g[1].pow(2).sum() for g in together), inputs)
    (single,) = torch.autograd.grad(sum(g.pow(2).sum() for g in alone), inputs)
    assert batched[1].abs().sum() > 0
    torch.testing.assert_close(single[1], batched[1], atol=1e-6, rtol=1e-4)
    with torch.no_grad():
        assert not any(g.requires_grad for g in ProblemBatch(observations[1:2]).updates(inputs[1:2], labels[1:2]))


def test_a_victim_with_batchnorm_in_train_mode_is_matched_at_its_private_batch():
    """The client's BN uses (and updates) batch statistics; the attacker's update at the private batch is its update."""
    spec = make_spec(fl={"batch_size": 2}, victim={"model": "resnet18_sigmoid", "mode": "train"})
    generator = torch.Generator().manual_seed(0)
    private = Samples(torch.rand(2, 3, 16, 16, generator=generator), torch.tensor([1, 7]), "t")
    observation = Victim(spec, 0, private, 10).observe()
    assert observation.model.training
    updates = ProblemBatch([observation]).updates(private.images[None], private.labels[None])
    for got, observed in zip(updates, observation.update):
        torch.testing.assert_close(got[0], observed, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("stride, padding, size", [(1, 1, 7), (2, 2, 9), (2, 0, 8)])
def test_the_convolution_of_stacked_models_has_torchs_first_and_second_derivatives(stride, padding, size):
    """Problems with their own weights run their convolutions through _Conv2dFunction: per problem
    the same ∂update/∂weights as torch's conv2d, and the same gradient of a function of that update
    w.r.t. the inputs (odd sizes: the rows a strided convolution never reaches)."""
    from torch.func import grad, vmap

    from benchmark.attacks.components.engine import _Conv2dFunction

    generator = torch.Generator().manual_seed(stride * 10 + padding)
    x = torch.randn(3, 2, 4, size, size, generator=generator, requires_grad=True)
    w, b = torch.randn(3, 5, 4, 3, 3, generator=generator), torch.randn(3, 5, generator=generator)

    def update(conv):
        def loss(params, inputs):
            return conv(inputs, params[0], params[1]).sigmoid().pow(2).sum()

        return vmap(grad(loss))((w, b), x)

    ours = update(lambda i, v, c: _Conv2dFunction.apply(i, v, c, (stride, stride), (padding, padding)))
    torchs = update(lambda i, v, c: torch.nn.functional.conv2d(i, v, c, stride, padding))
    for a, e in zip(ours, torchs):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
    (got,) = torch.autograd.grad(sum(u.pow(2).sum() for u in ours), x)
    (want,) = torch.autograd.grad(sum(u.pow(2).sum() for u in torchs), x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_stacked_models_convolve_without_double_backward():
    observations = _observations(make_spec(fl={"batch_size": 2}), [0, 1])
    from benchmark.attacks.components.engine import _Conv2d

    assert any(isinstance(m, _Conv2d) for m in ProblemBatch(observations).model.modules())
    assert not any(isinstance(m, _Conv2d) for m in ProblemBatch(observations[:1]).model.modules())
    assert not any(isinstance(m, _Conv2d) for m in observations[0].model.modules())  # the victim's own is torch's


def _real_problems(task: str, count: int):
    """``count`` observations of real test images (targets 0..count-1, a fresh victim each) and two
    candidate sets in model-input coordinates: other real images (target ``count`` onwards: flat
    backgrounds, saturated pixels at the box's edges) and the random start of the attacks."""
    spec = load_task(task)
    source = load_source(spec.data)
    samples = load_samples(source, [i for t in range(2 * count) for i in spec.target_indices(t)])
    observations = [
        Victim(spec, t, Samples(samples.images[t : t + 1], samples.labels[t : t + 1], ""), source.num_classes).observe()
        for t in range(count)
    ]
    normalization = observations[0].normalization
    images = samples.images[count:].unsqueeze(1)  # (K, 1, C, H, W)
    real = images if normalization is None else normalization.apply(images.flatten(0, 1)).view_as(images)
    random = torch.randn(real.shape, generator=torch.Generator().manual_seed(9))
    return observations, samples.labels[count:].unsqueeze(1), (real, random)


@pytest.mark.parametrize("task, count", [("mnist-lenetzhu-b1", 1), ("cifar10-lenetzhu-b1", 2)])
def test_compiled_updates_are_as_exact_as_the_eager_ones_and_so_are_their_gradients(task, count):
    """Under ``torch.compile`` one problem takes torch.func's path and stacked models torch's
    convolution (the engine's own is not traceable under vmap). Compiled kernels round otherwise, so
    both float32 computations are held to the float64 one: the compiled updates and their gradients
    w.r.t. the candidates are within three times the eager float32 error of it, at real images
    (MNIST's black background, CIFAR-10's 32×32) and at a random start."""
    observations, labels, candidate_sets = _real_problems(task, count)
    batch = ProblemBatch(observations)
    assert batch.shared == (count == 1)
    exact = copy.deepcopy(batch).double()
    computations = (batch.flat_updates, torch.compile(batch.flat_updates, fullgraph=True), exact.flat_updates)
    for candidates in candidate_sets:
        results = []
        for updates, dtype in zip(computations, (torch.float32, torch.float32, torch.float64)):
            x = candidates.to(dtype).requires_grad_()
            flat = updates(x, labels)
            (gradient,) = torch.autograd.grad(flat.pow(2).sum(), x)
            results.append((flat.detach().double(), gradient.double()))
        for eager, compiled, reference in zip(*results):
            assert reference.abs().max() > 0
            eager_error, compiled_error = ((value - reference).abs().max() for value in (eager, compiled))
            assert compiled_error <= 3 * eager_error + 1e-9 * reference.abs().max(), (compiled_error, eager_error)
