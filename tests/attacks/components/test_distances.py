import torch

from benchmark.attacks.components.distances import cosine_distance, squared_distance
from benchmark.attacks.components.engine import flatten
from benchmark.attacks.components.priors import total_variation


def _grads(seed):
    """Two parameter tensors' updates of 3 problems, and the same flat (K, P) as the distances take them."""
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(3, 4, 5, generator=generator), torch.randn(3, 7, generator=generator)]
    return tensors, torch.stack([flatten([t[k] for t in tensors]) for k in range(3)])


def test_flat_updates_hold_every_parameter_in_order():
    tensors, flat = _grads(0)
    assert flat.shape == (3, 27)
    torch.testing.assert_close(flat[1, :20], tensors[0][1].flatten())
    torch.testing.assert_close(flat[1, 20:], tensors[1][1])


def test_squared_distance_per_problem():
    (a, flat_a), (b, flat_b) = _grads(0), _grads(1)
    expected = [sum(((x[k] - y[k]) ** 2).sum() for x, y in zip(a, b)) for k in range(3)]
    torch.testing.assert_close(squared_distance(flat_a, flat_b), torch.stack(expected))


def test_cosine_distance_over_all_parameters_concatenated():
    (_, flat_a), (_, flat_b) = _grads(0), _grads(1)
    for k in range(3):
        expected = 1 - torch.nn.functional.cosine_similarity(flat_a[k], flat_b[k], dim=0)
        torch.testing.assert_close(cosine_distance(flat_a, flat_b)[k], expected)
    assert torch.allclose(cosine_distance(flat_a, 2 * flat_a), torch.zeros(3), atol=1e-6)


def test_total_variation_is_mean_absolute_differences():
    images = torch.zeros(2, 1, 1, 4, 4)
    images[1, ..., :, 2:] = 1.0  # one vertical edge: |dx| = 1 on 4 of 12 pairs, dy = 0
    torch.testing.assert_close(total_variation(images), torch.tensor([0.0, 4 / 12]))
