import pytest
import torch
from support import make_client, update_of
from torch import nn

from benchmark.core.errors import SpecError
from benchmark.defenses.soteria import Soteria, feature_scores, representation

WEIGHT = "3.weight"  # the fully connected layer of the test model; its input has 4·8·8 = 256 features


def test_scores_match_a_feature_by_feature_reference(client):
    layer = client.model[3]
    scores = feature_scores(client, layer)
    reference = torch.zeros(256)
    for n in range(len(client.inputs)):
        x = client.inputs[n : n + 1].clone().requires_grad_(True)
        rep = representation(client, layer, x)[0]
        for f in range(256):
            (g,) = torch.autograd.grad(rep[f], x, retain_graph=True)
            reference[f] += g.norm() / rep[f].abs()
    torch.testing.assert_close(scores, reference)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.8, 1.0])
def test_it_zeroes_the_stated_share_of_the_representations_gradient(fraction, client):
    update = update_of(client)
    defended = Soteria(fraction=fraction).apply(update, client)
    zeroed = (defended[WEIGHT] == 0).all(0)
    assert int(zeroed.sum()) == round(fraction * 256)
    scores = feature_scores(client, client.model[3])
    if 0 < fraction < 1:  # the pruned features are those of the smallest scores
        assert scores[zeroed].max() <= scores[~zeroed].min()
    assert torch.equal(defended[WEIGHT][:, ~zeroed], update[WEIGHT][:, ~zeroed])
    for name in update.keys() - {WEIGHT}:
        assert torch.equal(defended[name], update[name])


def test_a_model_without_a_fully_connected_layer_is_refused():
    client = make_client(nn.Sequential(nn.Conv2d(3, 5, 8), nn.Flatten()))
    with pytest.raises(SpecError, match="no fully connected layer"):
        Soteria().apply(update_of(client), client)
