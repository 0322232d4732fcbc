import pytest
import torch

from benchmark.defenses import global_norm
from benchmark.defenses.clipping import NormClipping


def test_a_long_update_is_scaled_to_the_bound_along_its_direction(client):
    update = {"w": torch.randn(10, 10) * 5, "b": torch.randn(10) * 5}
    clipped = NormClipping(max_norm=2.0).apply(update, client)
    assert global_norm(list(clipped.values())).item() == pytest.approx(2.0, rel=1e-5)
    ratio = global_norm(list(update.values())) / 2.0
    for name, g in update.items():
        torch.testing.assert_close(clipped[name] * ratio, g)


def test_a_short_update_is_unchanged(client):
    update = {"w": torch.full((3, 3), 0.1)}  # norm 0.3
    assert torch.equal(NormClipping(max_norm=1.0).apply(update, client)["w"], update["w"])
