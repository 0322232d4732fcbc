import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from support import make_spec

from benchmark.data import Samples
from benchmark.fl.observation import Observation
from benchmark.pipeline.isolation import observation_from_record, observation_record
from benchmark.victim.client import Victim


def _private(seed: int, n: int = 1, size: int = 16) -> Samples:
    generator = torch.Generator().manual_seed(seed)
    return Samples(
        torch.rand(n, 3, size, size, generator=generator), torch.randint(10, (n,), generator=generator), "test"
    )


def _tensors(observation: Observation) -> dict[str, torch.Tensor]:
    """Every tensor reachable from the observation, by a descriptive name."""
    found = {f"model.{k}": v for k, v in observation.model.state_dict().items()}
    found.update({f"update.{i}": t for i, t in enumerate(observation.update)})
    for field in dataclasses.fields(observation):
        value = getattr(observation, field.name)
        if isinstance(value, torch.Tensor):
            found[field.name] = value
    return found


def test_uniform_init_is_seeded_and_in_range():
    spec = make_spec()
    a, b = Victim(spec, 0, _private(0), 10), Victim(spec, 0, _private(1), 10)
    c = Victim(spec, 1, _private(0), 10)
    for pa, pb, pc in zip(a.model.parameters(), b.model.parameters(), c.model.parameters()):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    weights = torch.cat([p.detach().flatten() for p in a.model.parameters()])
    assert weights.abs().max() <= 0.5 and weights.abs().max() > 0.49  # U(-0.5, 0.5), thousands of draws


def test_update_is_the_gradient_of_the_mean_cross_entropy():
    private = _private(0, n=3)
    victim = Victim(make_spec(), 0, private, 10)
    observation = victim.observe()
    loss = F.cross_entropy(victim.model(private.images), private.labels)
    expected = torch.autograd.grad(loss, list(victim.model.parameters()))
    for got, want in zip(observation.update, expected):
        torch.testing.assert_close(got, want)


def test_only_the_update_depends_on_the_private_batch():
    spec = make_spec()
    first = Victim(spec, 0, _private(0), 10).observe()
    second = Victim(spec, 0, _private(1), 10).observe()
    a, b = _tensors(first), _tensors(second)
    assert a.keys() == b.keys()
    differing = {name for name in a if not torch.equal(a[name], b[name])}
    assert differing and all(name.startswith("update.") for name in differing)
    assert first.labels is None


def test_observation_holds_no_private_tensor_and_labels_only_when_given():
    private = _private(0)
    observation = Victim(make_spec(), 0, private, 10).observe()
    for name, tensor in _tensors(observation).items():
        assert tensor.data_ptr() != private.images.data_ptr(), name
        assert tensor.shape != private.images.shape or not torch.equal(tensor, private.images), name
    known = Victim(make_spec(threat={"labels": "known"}), 0, private, 10).observe()
    assert torch.equal(known.labels, private.labels) and known.labels.data_ptr() != private.labels.data_ptr()


def test_the_observation_model_is_a_copy():
    victim = Victim(make_spec(), 0, _private(0), 10)
    observation = victim.observe()
    with torch.no_grad():
        next(observation.model.parameters()).add_(1.0)
    assert not torch.equal(next(victim.model.parameters()), next(observation.model.parameters()))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mode_is_applied(mode):
    victim = Victim(make_spec(victim={"mode": mode}), 0, _private(0), 10)
    assert victim.observe().model.training is (mode == "train")


def test_normalization_round_trips():
    spec = make_spec(data={"normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}})
    observation = Victim(spec, 0, _private(0), 10).observe()
    images = _private(0).images
    torch.testing.assert_close(observation.to_images(spec.data.normalize.apply(images)), images)


def test_inputs_that_do_not_fit_the_model_are_a_spec_error(monkeypatch):
    from benchmark.core.errors import SpecError
    from benchmark.models import MODELS

    class Fixed(torch.nn.Module):
        def __init__(self, channels, image_size, num_classes):
            super().__init__()
            self.linear = torch.nn.Linear(3 * 32 * 32, num_classes)

        def forward(self, x):
            return self.linear(x.flatten(1))

    monkeypatch.setitem(MODELS._entries, "fixed32", Fixed)
    with pytest.raises(SpecError, match=r"model 'fixed32' cannot take inputs of shape \(3, 16, 16\)"):
        Victim(make_spec(victim={"model": "fixed32"}), 0, _private(0), 10).observe()


def test_fedavg_update_is_the_weight_change_of_local_sgd():
    spec = make_spec(
        fl={"protocol": "fedavg", "batch_size": 4, "local_epochs": 2, "local_batch_size": 2, "local_lr": 0.1}
    )
    private = _private(0, n=4)
    victim = Victim(spec, 0, private, 10)
    observation = victim.observe()
    model = copy.deepcopy(observation.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for start in (0, 2):
            optimizer.zero_grad()
            F.cross_entropy(model(private.images[start : start + 2]), private.labels[start : start + 2]).backward()
            optimizer.step()
    for update, before, after in zip(observation.update, observation.model.parameters(), model.parameters()):
        torch.testing.assert_close(update, before.detach() - after.detach(), atol=1e-6, rtol=1e-5)


def test_one_model_for_all_targets_when_reinit_is_once():
    spec = make_spec(victim={"reinit": "once"})
    a, b = Victim(spec, 0, _private(0), 10), Victim(spec, 5, _private(1), 10)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_bn_statistics_follow_the_threat_model():
    victim = {"model": "convnet", "init": "default", "mode": "train"}
    private = _private(0, n=3)
    seen = {
        setting: Victim(
            make_spec(victim=victim, fl={"batch_size": 3}, threat={"bn_statistics": setting}), 0, private, 10
        )
        .observe()
        .bn_statistics
        for setting in ("none", "batch", "known")
    }
    assert seen["none"] is None
    known, batch = seen["known"], seen["batch"]
    assert len(known) == len(batch) == 8  # the ConvNet's BatchNorm layers
    first_mean, first_var = known[0]  # the first layer normalises the output of a 3x3 conv of the images
    model = Victim(make_spec(victim=victim, fl={"batch_size": 3}), 0, private, 10).model
    conv = model.features[0](private.images).detach()
    torch.testing.assert_close(first_mean, conv.mean((0, 2, 3)))
    torch.testing.assert_close(first_var, conv.var((0, 2, 3)))
    for (mean_k, var_k), (mean_b, var_b) in zip(known, batch):  # read off the buffers: the same statistics
        torch.testing.assert_close(mean_b, mean_k, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(var_b, var_k, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "victim": {"model": "convnet", "init": "default", "mode": "train"},
            "fl": {"batch_size": 3},
            "threat": {"bn_statistics": "known", "labels": "known"},
            "data": {"normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}},
        },
    ],
    ids=["plain", "every field"],
)
def test_an_observation_crosses_as_tensors_and_plain_values(tmp_path, overrides):
    observation = Victim(
        make_spec(**overrides), 0, _private(0, n=overrides.get("fl", {}).get("batch_size", 1)), 10
    ).observe()
    torch.save(observation_record(observation), tmp_path / "observation.pt")
    again = observation_from_record(torch.load(tmp_path / "observation.pt", weights_only=True))
    for field in dataclasses.fields(Observation):
        if field.name != "model":
            assert str(getattr(again, field.name)) == str(getattr(observation, field.name)), field.name
    assert type(again.model) is type(observation.model) and again.model.training == observation.model.training
    assert _tensors(again).keys() == _tensors(observation).keys()
    assert all(torch.equal(a, b) for a, b in zip(_tensors(again).values(), _tensors(observation).values()))


def test_bn_statistics_need_a_model_with_batchnorm():
    from benchmark.core.errors import SpecError

    with pytest.raises(SpecError, match="no BatchNorm layer"):
        Victim(make_spec(threat={"bn_statistics": "known"}), 0, _private(0), 10).observe()


def test_the_server_sees_the_defended_update_only():
    plain = Victim(make_spec(), 0, _private(0), 10).observe()
    pruned = Victim(make_spec(defense={"name": "pruning", "params": {"fraction": 0.9}}), 0, _private(0), 10).observe()
    for before, after in zip(plain.update, pruned.update):
        kept = after != 0
        assert int(kept.sum()) == before.numel() - round(0.9 * before.numel())
        assert torch.equal(after[kept], before[kept])
    assert _tensors(pruned).keys() == _tensors(plain).keys()  # the defence adds nothing the server can read


def test_defence_noise_is_a_function_of_the_defence_seed_and_the_target():
    def update(target: int, seed: int = 0) -> torch.Tensor:
        spec = make_spec(
            defense={"name": "gaussian", "params": {"sigma": 0.1}, "seed": seed}, victim={"reinit": "once"}
        )
        return torch.cat([u.flatten() for u in Victim(spec, target, _private(0), 10).observe().update])

    assert torch.equal(update(0), update(0))
    assert not torch.equal(update(0), update(1)) and not torch.equal(update(0), update(0, seed=1))
