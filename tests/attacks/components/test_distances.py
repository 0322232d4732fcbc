import torch

from benchmark.attacks.components.distances import cosine_distance, squared_distance
from benchmark.attacks.components.priors import total_variation


def _grads(seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 4, 5, generator=generator), torch.randn(3, 7, generator=generator)]


def test_squared_distance_per_problem():
    a, b = _grads(0), _grads(1)
    expected = [sum(((x[k] - y[k]) ** 2).sum() for x, y in zip(a, b)) for k in range(3)]
    torch.testing.assert_close(squared_distance(a, b), torch.stack(expected))


def test_cosine_distance_over_all_parameters_concatenated():
    a, b = _grads(0), _grads(1)
    for k in range(3):
        flat_a = torch.cat([t[k].flatten() for t in a])
        flat_b = torch.cat([t[k].flatten() for t in b])
        expected = 1 - torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0)
        torch.testing.assert_close(cosine_distance(a, b)[k], expected)
    assert torch.allclose(cosine_distance(a, [2 * t for t in a]), torch.zeros(3), atol=1e-6)


def test_total_variation_is_mean_absolute_differences():
    images = torch.zeros(2, 1, 1, 4, 4)
    images[1, ..., :, 2:] = 1.0  # one vertical edge: |dx| = 1 on 4 of 12 pairs, dy = 0
    torch.testing.assert_close(total_variation(images), torch.tensor([0.0, 4 / 12]))
