import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import make_client

from benchmark.defenses.pruning import Pruning


@settings(max_examples=40, deadline=None)
@given(fraction=st.floats(0, 1), size=st.integers(1, 300), seed=st.integers(0, 2**31))
def test_pruning_keeps_exactly_the_top_k_magnitudes_and_zeroes_the_rest(fraction, size, seed):
    g = torch.randn(size, generator=torch.Generator().manual_seed(seed))  # distinct magnitudes (almost surely)
    pruned = Pruning(fraction=fraction).apply({"g": g.view(1, size)}, make_client())["g"].flatten()
    keep = size - round(fraction * size)
    top = set(g.abs().argsort(descending=True)[:keep].tolist())
    assert set(pruned.nonzero().flatten().tolist()) == top
    assert torch.equal(pruned[list(top)], g[list(top)])  # kept entries are unchanged


@pytest.mark.parametrize("fraction, zeros", [(0.0, 0), (0.5, 50), (0.9, 90), (1.0, 100)])
def test_the_share_pruned_is_per_tensor(fraction, zeros, client):
    update = {"a": torch.randn(10, 10), "b": torch.randn(100) * 1000}
    pruned = Pruning(fraction=fraction).apply(update, client)
    assert [int((t == 0).sum()) for t in pruned.values()] == [zeros, zeros]
    assert pruned["a"].shape == (10, 10)
