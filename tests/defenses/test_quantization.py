import pytest
import torch

from benchmark.defenses.quantization import Quantization, SignCompression


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_k_bits_give_at_most_two_to_the_k_levels_per_tensor_within_half_a_step(bits, client):
    update = {"w": torch.randn(64, 64), "b": torch.rand(300) * 1e-3}
    quantized = Quantization(bits=bits).apply(update, client)
    for name, g in update.items():
        q = quantized[name]
        bound = g.abs().max()
        assert len(q.unique()) <= 2**bits and q.shape == g.shape
        assert (q - g).abs().max() <= bound / (2**bits - 1) * (1 + 1e-5)  # half of the step 2m/(2^k - 1)
        assert q.abs().max().item() == pytest.approx(bound.item(), rel=1e-5)  # the range is kept


def test_one_bit_is_plus_or_minus_the_largest_magnitude(client):
    g = torch.tensor([0.3, -0.1, 0.05, -0.4])
    torch.testing.assert_close(Quantization(bits=1).apply({"g": g}, client)["g"], torch.tensor([0.4, -0.4, 0.4, -0.4]))


def test_sign_gives_plus_or_minus_the_mean_magnitude(client):
    g = torch.tensor([[0.3, -0.1], [0.0, -0.4]])
    signed = SignCompression().apply({"g": g}, client)["g"]
    torch.testing.assert_close(signed, torch.tensor([[0.2, -0.2], [0.2, -0.2]]))


def test_a_zero_tensor_stays_zero(client):
    assert torch.equal(Quantization(bits=2).apply({"g": torch.zeros(3)}, client)["g"], torch.zeros(3))
