import pytest
import torch

from benchmark.attacks.components.labels import idlg_label
from benchmark.data import Samples
from benchmark.victim import Victim

from conftest import make_spec


@pytest.mark.parametrize("seed", range(20))
def test_idlg_rule_reads_the_true_label(seed):
    generator = torch.Generator().manual_seed(seed)
    private = Samples(torch.rand(1, 3, 16, 16, generator=generator), torch.randint(100, (1,), generator=generator), "t")
    observation = Victim(make_spec(), seed, private, 100).observe()
    assert idlg_label(observation).tolist() == private.labels.tolist()


def test_idlg_rule_refuses_batches():
    private = Samples(torch.rand(2, 3, 16, 16), torch.tensor([1, 2]), "t")
    with pytest.raises(ValueError, match="batch size 1"):
        idlg_label(Victim(make_spec(fl={"batch_size": 2}), 0, private, 10).observe())
