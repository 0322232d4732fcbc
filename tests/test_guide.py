"""docs/adding-an-attack.md builds what it shows: its first Python block is the example plugin's file,
and every block, run in order in one module, defines attacks that run."""

import dataclasses
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from support import make_spec

from benchmark.attacks.base import Attack, OptimizationAttack
from benchmark.data import load_samples, load_source
from benchmark.pipeline.fit import fit
from benchmark.victim.client import Victim

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "adding-an-attack.md"
EXAMPLE = ROOT / "examples" / "plugin-attack" / "leakbench_adam" / "__init__.py"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.S | re.M)


@pytest.fixture(scope="module")
def guide() -> types.ModuleType:
    """The guide's Python blocks run one after another in one module, as a reader pastes them."""
    module = types.ModuleType("guide_attacks")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        for number, block in enumerate(_blocks(), 1):
            exec(compile(block, f"{GUIDE}, Python block {number}", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def _attacks(module: types.ModuleType) -> dict[str, type[Attack]]:
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Attack) and value.__module__ == module.__name__
    }


def test_the_guides_example_is_the_example_plugins_file():
    text = EXAMPLE.read_text()
    assert text[text.index('"""', 3) + 3 :].lstrip("\n") == _blocks()[0]


def test_the_guide_defines_an_attack_for_every_hook_it_shows(guide):
    assert sorted(_attacks(guide)) == [
        "AdamDLG",
        "BoxedAdamDLG",
        "CosineTVAttack",
        "DecayingAdamDLG",
        "GreyGuess",
        "LBFGSDLG",
        "SignedAdamDLG",
    ]


@pytest.fixture(scope="module")
def observation():
    spec = make_spec()
    source = load_source(spec.data)
    return Victim(spec, 0, load_samples(source, spec.target_indices(0)), source.num_classes).observe()


@pytest.mark.parametrize(
    "name", ["AdamDLG", "BoxedAdamDLG", "CosineTVAttack", "DecayingAdamDLG", "GreyGuess", "LBFGSDLG", "SignedAdamDLG"]
)
def test_every_attack_of_the_guide_runs_two_problems(guide, observation, name: str):
    cls = _attacks(guide)[name]
    config = dataclasses.replace(cls.Config(), max_steps=3) if issubclass(cls, OptimizationAttack) else cls.Config()
    reconstructions, _ = fit(cls, [observation, observation], config, [0, 1])
    assert len(reconstructions) == 2
    for reconstruction in reconstructions:
        assert reconstruction.images.shape == (1, *observation.input_shape) and reconstruction.labels.shape == (1,)
        assert torch.isfinite(reconstruction.images).all() and 0 <= reconstruction.images.min() <= 1


def test_the_box_projection_keeps_the_candidates_in_the_image_box(guide, observation):
    attack = guide.BoxedAdamDLG([observation], dataclasses.replace(guide.AdamDLGConfig(), lr=10.0), [0])
    optimizer = attack.configure_optimizers()
    for _ in range(3):
        attack.optimise_step(optimizer, lambda loss, inputs: loss.backward(inputs=inputs))
    box = attack.problems
    assert bool((attack.inputs >= box.box_low).all() and (attack.inputs <= box.box_high).all())
    unboxed = guide.AdamDLG([observation], dataclasses.replace(guide.AdamDLGConfig(), lr=10.0), [0])
    optimizer = unboxed.configure_optimizers()
    unboxed.optimise_step(optimizer, lambda loss, inputs: loss.backward(inputs=inputs))
    assert not bool((unboxed.inputs <= box.box_high).all())  # the control: a step of 10 leaves the box
