"""Closed-form equations of gradient inversion for one sample, solved in float64.

- The bias attack's row ratio (Phong et al. 2017; Geiping et al. 2020): a fully connected layer
  with a bias gives its input exactly.
- R-GAP's per-layer linear system and its head equations (Zhu & Blaschko, ICLR 2021), and the
  recursion that solves a chain of layers from the top down.

Shapes: a layer's input x is (C, H, W), its pre-activation z and output gradient k = ∂L/∂z are
(F, H', W'); a fully connected layer is a 1×1 convolution on a 1×1 image (see ``layers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg.lapack import dpstrf
from scipy.optimize import brentq
from scipy.special import expit
from torch import Tensor

from benchmark.attacks.components.layers import INVERTIBLE, Layer, linear_chain
from benchmark.core.errors import NotApplicableError
from benchmark.fl.observation import Observation

FLOAT = torch.float64


def single_gradient_problem(observation: Observation) -> str | None:
    """Why these equations do not apply to an observation, or None: they read one sample's FedSGD gradient."""
    if observation.fl.protocol != "fedsgd":
        return f"closed-form attacks read a FedSGD gradient (this task uses {observation.fl.protocol})"
    if observation.batch_size != 1:
        return (
            f"closed-form attacks here recover a single sample (this task has batch size "
            f"{observation.batch_size}; a batch's gradient mixes its inputs)"
        )
    return None


def single_sample_chain(observation: Observation) -> list[Layer]:
    """The chain of layers to invert from one sample's FedSGD gradient.

    Raises:
        NotApplicableError: another protocol, a batch, or a model that is not a chain of layers.
    """
    if (problem := single_gradient_problem(observation)) is not None:
        raise NotApplicableError(problem)
    return linear_chain(observation.model, observation.input_shape)


def invert_biased_linear(grad_weight: Tensor, grad_bias: Tensor) -> tuple[Tensor, dict[str, float]]:
    """The input x (D,) of a fully connected layer y = W x + b, from one sample's gradient.

    Each row i gives ∂L/∂W_i = (∂L/∂b_i)·xᵀ, so the least-squares estimate over all rows is

        x̂ = argmin_x Σ_i ‖∂L/∂W_i − ∂L/∂b_i·x‖² = Σ_i ∂L/∂b_i·∂L/∂W_i / Σ_i (∂L/∂b_i)²,

    the average of the row ratios ∂L/∂W_i / ∂L/∂b_i weighted by (∂L/∂b_i)²: rows with ∂L/∂b_i = 0
    (dead ReLUs) drop out and rows whose ratio is noisy (small ∂L/∂b_i) count little.

    Args:
        grad_weight: ∂L/∂W (F, D). grad_bias: ∂L/∂b (F,).
    Returns:
        x̂ (D,) float64, and facts: ``rows`` (rows with ∂L/∂b_i ≠ 0) and ``rank_one_residual``
        ‖∂L/∂W − ∂L/∂b·x̂ᵀ‖ / ‖∂L/∂W‖ (float precision for one sample; large for a batch, whose
        gradient mixes its inputs).
    """
    g_w, g_b = grad_weight.to(FLOAT).flatten(1), grad_bias.to(FLOAT)
    norm = (g_b**2).sum()
    if norm == 0:
        raise FloatingPointError("every bias gradient of the layer is zero: its input cannot be read")
    x = g_b @ g_w / norm
    residual = (g_w - g_b[:, None] * x).norm() / g_w.norm()
    return x, {"rows": int((g_b != 0).sum()), "rank_one_residual": float(residual)}


def _patch_index(shape: tuple[int, int, int], layer: Layer) -> Tensor:
    """For each kernel offset (C·kh·kw) and output position (L), the flat index of the input entry it
    reads; padded entries read index C·H·W (a sink that is dropped)."""
    n = shape[0] * shape[1] * shape[2]
    ids = torch.arange(1, n + 1, dtype=FLOAT).reshape(1, *shape)
    cols = F.unfold(ids, layer.kernel, padding=layer.padding, stride=layer.stride)[0]
    return torch.where(cols > 0, cols.long() - 1, n)


def _pivoted_cholesky(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Cholesky with complete pivoting of a PSD matrix (LAPACK dpstrf): matrix[piv][:, piv] ≈ UᵀU
    with U (rank, n) upper trapezoidal, stopping at LAPACK's default tolerance n·ε·max_i A_ii.
    Returns (U, piv)."""
    # The default tolerance is a relative n·ε on the pivots of ``matrix`` itself. For a normal matrix
    # G = AᵀA (eigenvalues s_i² for A's singular values s_i) it is a squared threshold in terms of A:
    # s_i ≲ √(n·ε)·s_max(A) count as zero (see LayerSystem, "Rank tolerance").
    factor, pivots, rank, info = dpstrf(matrix.numpy(), lower=0)
    if info < 0:
        raise FloatingPointError(f"pivoted Cholesky failed (LAPACK info {info})")
    return torch.from_numpy(factor[:rank]).triu(), torch.from_numpy(pivots.astype(np.int64) - 1)


def _scatter_gram(index: Tensor, block: Tensor, n: int) -> Tensor:
    """Σ_l S_lᵀ·block[:, :, l]·S_l as a dense (n, n) matrix, S_l the 0/1 selection of the entries
    index[:, l] (index n, the padding sink, is dropped); ``block`` (P, P, L) or broadcastable."""
    rows, positions = index.shape
    flat = index[:, None, :] * (n + 1) + index[None, :, :]  # (P, P, L)
    values = block.expand(rows, rows, positions).flatten()
    gram = torch.zeros((n + 1) ** 2, dtype=FLOAT).index_add_(0, flat.flatten(), values)
    return gram.view(n + 1, n + 1)[:n, :n]


def _scatter_vector(index: Tensor, values: Tensor, n: int) -> Tensor:
    """Σ_{p,l} values[p, l]·e_{index[p, l]} (n,), the sink index n dropped."""
    return torch.zeros(n + 1, dtype=FLOAT).index_add_(0, index.flatten(), values.flatten())[:n]


class LayerSystem:
    """R-GAP's linear system for the input x of one layer (Zhu & Blaschko, ICLR 2021).

    For z = W x (+ b), given the output gradient k = ∂L/∂z and the observed ∇W (F, C, kh, kw):

        gradient constraints  K x = vec ∇W,   ∇W[f, c, a, b] = Σ_pos k[f, pos]·x̃[c, s·pos + (a, b)]
        weight constraints    W x = z − b     (the layer as a matrix)

    x̃ is x zero-padded: R-GAP's padding rows P x̃ = 0 are enforced exactly by leaving the padded
    entries out of the unknowns. The gradient constraints act on every input channel through one
    matrix K₁ (F·kh·kw, H·W), K = I_C ⊗ K₁. The normal matrices WᵀW and K₁ᵀK₁ are assembled from
    the layer's patch indices by scatter-adds (no loop over pixels, no dense W or K).

    The least-squares solution solves the normal equations G x = r with
    G = WᵀW / tr(WᵀW) + KᵀK / tr(KᵀK) (each block scaled to unit trace, so neither dominates), in
    float64. The numeric rank of G, hence of the scaled stacked matrix A = [K; W] (G = AᵀA), comes from
    a Cholesky factorisation with complete pivoting that stops at the first pivot below n·ε·max_i G_ii
    (LAPACK's default, ε of float64); where the gradient constraints alone have full column rank,
    G is positive definite and a plain Cholesky factorisation is used. A rank-deficient system gets
    its minimum-norm solution.

    Rank tolerance. G's eigenvalues are the squares of A's singular values, so the threshold n·ε on
    G's pivots (relative to max_i G_ii ≤ λ_max(G) ≤ n·max_i G_ii: the default a least-squares solver
    would apply to G) counts a singular value s of A as zero below about √(n·ε)·s_max(A), 8e-7 for
    n = 3072. ``numpy.linalg.lstsq`` and ``matrix_rank`` on A itself use max(M, N)·ε·s_max(A), about
    1e-12 here; they therefore agree with this rank except where A has a singular value between the
    two, which this rank counts as missing (a test pins both sides). The shipped victims have none
    there (measured once on CNN6, CNN6-d and FCN3 at seed 0: every singular value is ≥ 5.8e-3·s_max
    or, CNN6-d's 280 missing ones in its second layer, ≤ 5.2e-16·s_max; both rules agree). The finer
    tolerance is out of reach of the normal equations: forming G rounds it by about ε·λ_max(G), the
    square of a singular value √ε·s_max(A), so below that G cannot tell a singular value from zero.
    Nor do the data resolve one: the observed gradient is float32 (relative precision 2⁻²⁴ ≈ 6e-8,
    the order of √(n·ε) for these layers), and x's component along a direction with
    s < √(n·ε)·s_max carries that rounding amplified by s_max/s. R-GAP's own code (``recursive_attack.py``) solves A in float32 with
    ``numpy.linalg.lstsq(rcond=None)``, which drops singular values below max(M, N)·2⁻²³·s_max,
    about 6e-4 relative on CNN6's first layer (M = 4 860 rows with its padding rows): coarser still.

    Args:
        layer: the layer. weight: its kernel (F, C, kh, kw) float64.
        k: ∂L/∂z (F, H', W'). grad_weight: the observed ∇W (F, C, kh, kw). target: z − b (F, H', W').
    """

    def __init__(self, layer: Layer, weight: Tensor, k: Tensor, grad_weight: Tensor, target: Tensor) -> None:
        self.layer, self.weight, self.k, self.grad_weight, self.target = layer, weight, k, grad_weight, target
        channels, height, width = layer.input_shape
        n, pixels, filters = layer.unknowns, height * width, layer.output_shape[0]
        # W row (f, l) holds w[f, p] at input entry index[p, l]: WᵀW adds (wᵀw)[p, p'] at (index[p, l], index[p', l])
        index = _patch_index(layer.input_shape, layer)  # (C·kh·kw, L)
        w = weight.reshape(filters, -1)
        gram_w = _scatter_gram(index, (w.T @ w)[:, :, None], n)
        rhs_w = _scatter_vector(index, w.T @ target.reshape(filters, -1), n)
        # K₁ row (f, p) holds k[f, l] at pixel index₁[p, l]:
        # K₁ᵀK₁ adds (kᵀk)[l, l'] at (index₁[p, l], index₁[p, l'])
        index = _patch_index((1, height, width), layer)  # (kh·kw, L)
        offsets, positions = index.shape
        k_flat = k.reshape(filters, positions)
        gram_k = _scatter_gram(index.T, (k_flat.T @ k_flat)[:, :, None], pixels)  # K₁ᵀK₁
        per_channel = torch.einsum("fl,fcp->cpl", k_flat, grad_weight.reshape(filters, channels, offsets))
        rhs_k = torch.zeros(channels, pixels + 1, dtype=FLOAT).index_add_(1, index.flatten(), per_channel.flatten(1))
        scale_w, scale_k = gram_w.trace(), channels * gram_k.trace()
        self.gram = gram_w / scale_w
        diagonal = torch.arange(channels)
        self.gram.view(channels, pixels, channels, pixels)[diagonal, :, diagonal, :] += gram_k / scale_k
        self.rhs = rhs_w / scale_w + rhs_k[:, :pixels].flatten() / scale_k
        self.gram_k = gram_k

    @property
    def weight_constraints(self) -> int:
        """Rows of W: the layer's outputs."""
        return self.target.numel()

    @property
    def gradient_constraints(self) -> int:
        """Rows of K: the layer's weights."""
        return self.grad_weight.numel()

    @cached_property
    def _factor(self) -> tuple[Tensor, Tensor]:
        """(U, piv) with G[piv][:, piv] ≈ UᵀU, U (rank, n). Where the gradient constraints alone have
        full column rank (K₁ᵀK₁ of full rank, a small matrix), G is positive definite and a plain
        Cholesky factor serves; otherwise the pivoted one reveals the rank."""
        if _pivoted_cholesky(self.gram_k)[0].shape[0] == self.gram_k.shape[0]:
            lower, info = torch.linalg.cholesky_ex(self.gram)
            if int(info) == 0:
                return lower.T, torch.arange(self.layer.unknowns)
        return _pivoted_cholesky(self.gram)

    @property
    def rank(self) -> int:
        """Numeric rank of the stacked system [K; W] (that of G)."""
        return self._factor[0].shape[0]

    def solve(self) -> Tensor:
        """The least-squares input x (C, H, W); the minimum-norm one where the system is rank-deficient."""
        upper, pivots = self._factor
        if self.rank == self.layer.unknowns:  # G = P UᵀU Pᵀ: two triangular solves
            inner = torch.linalg.solve_triangular(upper.T, self.rhs[pivots, None], upper=False)
            x = torch.empty_like(self.rhs)
            x[pivots] = torch.linalg.solve_triangular(upper, inner, upper=True)[:, 0]
        else:  # G ≈ RᵀR with R = U Pᵀ of full row rank: G⁺ b = Rᵀ (RRᵀ)⁻² R b
            r = torch.zeros(self.rank, self.layer.unknowns, dtype=FLOAT)
            r[:, pivots] = upper
            cholesky = torch.linalg.cholesky(r @ r.T)
            x = r.T @ torch.cholesky_solve(torch.cholesky_solve(r @ self.rhs[:, None], cholesky), cholesky)[:, 0]
        return x.reshape(self.layer.input_shape)

    def residuals(self, x: Tensor) -> dict[str, float]:
        """Relative residuals of x in the gradient and the weight constraints."""
        gradient = self.layer.weight_gradient(x[None], self.k[None])
        output = self.layer.apply(self.weight, x[None])[0]
        return {
            "gradient": float((gradient - self.grad_weight).norm() / self.grad_weight.norm()),
            "weight": float((output - self.target).norm() / self.target.norm().clamp_min(1e-300)),
        }


def _logistic_roots(c: float) -> list[float]:
    """The roots μ of −μ/(1 + e^μ) = c, ascending (one for c ≥ 0, two for c < 0)."""
    h = lambda mu: -mu * expit(-mu)  # noqa: E731
    if c >= 0:
        return [brentq(lambda mu: h(mu) - c, -2 * (c + 1), 0.0, xtol=1e-15)]
    turn = brentq(lambda mu: 1 - mu * expit(mu), 1.0, 2.0, xtol=1e-15)  # h's minimum, μ* ≈ 1.2785
    if c <= h(turn):  # below the minimum only by noise: the double root
        return [turn]
    high = 2 * turn
    while h(high) <= c:
        high *= 2
    return [brentq(lambda mu: h(mu) - c, 0.0, turn, xtol=1e-15), brentq(lambda mu: h(mu) - c, turn, high, xtol=1e-15)]


def head_equations(layer: Layer, weight: Tensor, grad_weight: Tensor, label: int) -> list[tuple[Tensor, Tensor]]:
    """The head's output gradient k = ∂L/∂z and logits z, (F, 1, 1) each, from its weight gradient.

    One logit u = w·x, logistic loss ℓ(μ) = log(1 + e^{−μ}) with μ = y·u, y = ±1 (R-GAP's last
    layer): ∇w = (∂L/∂u)·x with ∂L/∂u = −y / (1 + e^{μ}), so

        ⟨∇w, w⟩ = −μ / (1 + e^{μ}),

    a scalar equation solved in float64 (Brent's method). It has one root when the sample is
    misclassified (μ < 0) and two, on either side of μ* ≈ 1.2785, when it is classified correctly:
    both are returned and the caller chooses.

    K ≥ 3 logits z = W x, cross-entropy, class y: ∇W = (p − e_y)·xᵀ. With v = −∇W_y = (1 − p_y)·x,
    x = t·v for t = 1 / (1 − p_y) and z = t·a with a = W v; the other rows give p_j ∝ ⟨∇W_j, v⟩, so
    log⟨∇W_j, v⟩ = t·a_j + const for j ≠ y and t is the slope of their least-squares line. Then
    k = softmax(z) − e_y.

    Raises:
        NotApplicableError: a two-logit head (the logit scale is not determined without a bias).
    """
    grad = grad_weight.reshape(grad_weight.shape[0], -1)
    rows = weight.reshape(weight.shape[0], -1)
    if rows.shape[0] == 1:
        sign = 2.0 * label - 1
        return [
            (
                torch.tensor(-sign * expit(-mu), dtype=FLOAT).reshape(1, 1, 1),
                torch.tensor(sign * mu, dtype=FLOAT).reshape(1, 1, 1),
            )
            for mu in _logistic_roots(float((grad * rows).sum()))
        ]
    if rows.shape[0] == 2:
        raise NotApplicableError(
            "a two-logit head without bias does not determine its logits; use one logit (logistic) or K ≥ 3"
        )
    v = -grad[label]
    a, s = rows @ v, grad @ v
    others = (torch.arange(len(s)) != label) & (s > 0)
    if int(others.sum()) < 2:
        raise FloatingPointError("fewer than two classes carry probability: the logit scale cannot be read")
    a_o, log_s = a[others], s[others].log()
    t = ((a_o - a_o.mean()) * (log_s - log_s.mean())).sum() / ((a_o - a_o.mean()) ** 2).sum()
    logits = t * a
    k = logits.softmax(0) - F.one_hot(torch.tensor(label), len(a)).to(FLOAT)
    return [(k.reshape(-1, 1, 1), logits.reshape(-1, 1, 1))]


@dataclass
class Descent:
    """The result of solving layers top..0 of a chain: the model input and each layer's system."""

    input: Tensor  # (C, H, W) float64, the model input
    systems: dict[int, LayerSystem]  # chain index → the system solved for that layer's input
    residual: float  # the largest relative residual over the solved layers


def step_down(layer: Layer, below: Layer, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """From layer i's input x_i = σ(z_{i-1}) and output gradient k_i to the layer below's
    (k_{i-1}, z_{i-1}): z_{i-1} = σ⁻¹(x_i), k_{i-1} = (W_iᵀ k_i) ⊙ σ'(z_{i-1})."""
    rule = INVERTIBLE[type(below.activation)]
    z = rule.inverse(below.activation, x.reshape(below.output_shape))
    back = layer.transpose(layer.as_kernel(layer.module.weight), k[None])[0].reshape(below.output_shape)
    return back * rule.derivative(below.activation, z), z


def descend(chain: Sequence[Layer], top: int, k: Tensor, z: Tensor, update: Sequence[Tensor]) -> Descent:
    """R-GAP's recursion: solve layer ``top``'s system given its output gradient k and pre-activation z,
    undo the activation below, and repeat down to the model input."""
    systems: dict[int, LayerSystem] = {}
    residual = 0.0
    for index in range(top, -1, -1):
        layer = chain[index]
        bias = 0 if layer.bias is None else layer.module.bias.detach().to(FLOAT)[:, None, None]
        system = LayerSystem(
            layer, layer.as_kernel(layer.module.weight), k, layer.as_kernel(update[layer.weight]), z - bias
        )
        x = system.solve()
        systems[index] = system
        residual = max(residual, *system.residuals(x).values())
        if index:
            k, z = step_down(layer, chain[index - 1], x, k)
    return Descent(input=x, systems=systems, residual=residual)


def box_violation(observation: Observation, inputs: Tensor) -> float:
    """How far a recovered model input lies outside the image box [0, 1], relative to its size."""
    images = inputs if observation.normalization is None else observation.normalization.invert(inputs[None])[0]
    return float((images - images.clamp(0, 1)).norm() / images.norm().clamp_min(1e-300))


def most_plausible(observation: Observation, descents: Sequence[Descent]) -> Descent:
    """The descent with the smallest residual plus box violation.

    Several descents arise from the two roots of the logistic head. For a network without biases
    and with positively homogeneous activations (LeakyReLU) they give the same image up to scale,
    equally consistent with the gradient: only the image box [0, 1] tells them apart, and where
    both images fit in it the gradient does not identify the image (the choice is then arbitrary).
    """
    return min(descents, key=lambda d: d.residual + box_violation(observation, d.input))
