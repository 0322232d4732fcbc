import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacks.components.equations import LayerSystem, _logistic_roots, head_equations, invert_biased_linear
from benchmark.attacks.components.layers import linear_chain

DOUBLE = torch.float64


def _conv_chain(out_channels: int = 5, stride: int = 2):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, out_channels, 4, stride, 2, bias=False),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(out_channels * (8 // stride + 1) ** 2, 3, bias=False),
    ).to(DOUBLE)
    return model, linear_chain(model, (3, 8, 8))


def _system(layer, module, x):
    weight = layer.as_kernel(module.weight)
    z = layer.apply(weight, x)[0]
    k = torch.randn_like(z)
    return LayerSystem(layer, weight, k, layer.weight_gradient(x, k[None]), z), weight, k, z


def _dense(layer, weight, k):
    """[K; W] built column by column from the layer's own operations, for reference."""
    basis = torch.eye(layer.unknowns, dtype=DOUBLE).reshape(-1, *layer.input_shape)
    w = layer.apply(weight, basis).flatten(1).T
    grads = torch.stack([layer.weight_gradient(b[None], k[None]).flatten() for b in basis]).T
    return w, grads


@pytest.mark.parametrize("index", [0, 1])
def test_normal_equations_match_the_dense_stacked_system(index):
    model, chain = _conv_chain()
    layer = chain[index]
    x = torch.rand(1, *layer.input_shape, dtype=DOUBLE)
    system, weight, k, z = _system(layer, model[0] if index == 0 else model[3], x)
    w, grads = _dense(layer, weight, k)
    gram = w.T @ w / (w**2).sum() + grads.T @ grads / (grads**2).sum()
    torch.testing.assert_close(system.gram, gram)
    stacked = torch.cat([w / w.norm(), grads / grads.norm()])
    assert system.rank == torch.linalg.matrix_rank(stacked).item() == layer.unknowns
    torch.testing.assert_close(system.solve(), x[0])


def test_a_rank_deficient_system_gets_its_minimum_norm_solution():
    model, chain = _conv_chain(out_channels=1, stride=4)
    layer = chain[0]
    system, *_ = _system(layer, model[0], torch.rand(1, *layer.input_shape, dtype=DOUBLE))
    assert system.rank < layer.unknowns
    expected = torch.linalg.pinv(system.gram, hermitian=True) @ system.rhs
    torch.testing.assert_close(system.solve().flatten(), expected)


@pytest.mark.parametrize(("delta", "rgap_rank", "lstsq_rank"), [(0.0, 3, 3), (1e-3, 4, 4), (1e-10, 3, 4)])
def test_the_rank_is_least_squares_rank_at_a_squared_tolerance(delta, rgap_rank, lstsq_rank):
    # A 1×1 convolution, 2 channels → 2 filters on a 1×2 image: x is a 2×2 matrix X, the weight
    # constraints read W X (W the 2×2 filter matrix), the gradient constraints X kᵀ. With two equal
    # output-gradient rows and W = [w; w + δ·e], s_min(A)/s_max(A) ≈ 0.2·δ for A = [K; W] scaled.
    model = nn.Sequential(
        nn.Conv2d(2, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4, 1, bias=False)
    ).to(DOUBLE)
    layer = linear_chain(model, (2, 1, 2))[0]
    weight = torch.tensor([[1.0, 2.0], [1.0 + delta, 2.0 - delta]], dtype=DOUBLE).reshape(2, 2, 1, 1)
    k = torch.tensor([0.5, -1.0], dtype=DOUBLE).expand(2, 1, 2)
    x = torch.rand(1, *layer.input_shape, dtype=DOUBLE)
    system = LayerSystem(layer, weight, k, layer.weight_gradient(x, k[None]), layer.apply(weight, x)[0])
    w, grads = _dense(layer, weight, k)
    stacked = torch.cat([w / w.norm(), grads / grads.norm()]).numpy()
    torch.testing.assert_close(system.gram, torch.from_numpy(stacked.T @ stacked))
    singular = np.linalg.svd(stacked, compute_uv=False)
    # numpy's least squares at its default tolerance, max(M, N)·ε·s_max, on A itself
    assert np.linalg.matrix_rank(stacked) == np.linalg.lstsq(stacked, stacked @ x.flatten().numpy())[2] == lstsq_rank
    # R-GAP's rank: n·ε on the pivots of G = AᵀA, i.e. √(n·ε)·s_max on A's singular values
    squared = singular[0] * (layer.unknowns * np.finfo(np.float64).eps) ** 0.5
    assert system.rank == np.linalg.matrix_rank(stacked, tol=squared) == np.linalg.matrix_rank(stacked.T @ stacked)
    assert system.rank == rgap_rank
    # they differ exactly when a singular value lies between the two tolerances (δ = 1e-10: 2e-11·s_max)
    default = singular[0] * max(stacked.shape) * np.finfo(np.float64).eps
    assert (rgap_rank != lstsq_rank) == bool(((singular > default) & (singular < squared)).any())


@pytest.mark.parametrize("c", [0.7, 0.0, -0.01, -0.25])
def test_logistic_roots_solve_the_scalar_equation(c):
    roots = _logistic_roots(c)
    assert len(roots) == (1 if c >= 0 else 2) and roots == sorted(roots)
    for mu in roots:
        assert -mu / (1 + torch.tensor(mu, dtype=DOUBLE).exp()).item() == pytest.approx(c, abs=1e-12)


@pytest.mark.parametrize(("classes", "label"), [(1, 0), (1, 1), (5, 3)])
def test_head_equations_give_the_true_logits_and_output_gradient(classes, label):
    torch.manual_seed(classes + label)
    head = nn.Linear(6, classes, bias=False).to(DOUBLE)
    (layer,) = linear_chain(nn.Sequential(nn.Flatten(), head), (6, 1, 1))
    x = torch.randn(1, 6, dtype=DOUBLE)
    logits = head(x)
    targets = torch.tensor([label])
    loss = (
        F.binary_cross_entropy_with_logits(logits[:, 0], targets.to(DOUBLE))
        if classes == 1
        else F.cross_entropy(logits, targets)
    )
    (k,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (grad,) = torch.autograd.grad(loss, head.weight)
    candidates = head_equations(layer, layer.as_kernel(head.weight), layer.as_kernel(grad), label)
    assert any(
        torch.allclose(kk.flatten(), k.flatten()) and torch.allclose(zz.flatten(), logits.flatten().detach())
        for kk, zz in candidates
    )


def test_bias_inversion_is_exact_and_skips_dead_rows():
    torch.manual_seed(0)
    x = torch.randn(7, dtype=DOUBLE)
    grad_bias = torch.tensor([0.5, 0.0, -2.0, 0.0, 1e-3], dtype=DOUBLE)
    recovered, facts = invert_biased_linear(grad_bias[:, None] * x, grad_bias)
    torch.testing.assert_close(recovered, x)
    assert facts["rows"] == 3 and facts["rank_one_residual"] < 1e-12
    with pytest.raises(FloatingPointError, match="every bias gradient"):
        invert_biased_linear(torch.zeros(2, 7), torch.zeros(2))
