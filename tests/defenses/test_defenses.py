import pytest
from support import make_spec

from benchmark.core.errors import SpecError, UnknownNameError
from benchmark.defenses import DEFENSES, Defense, build_defense, with_strength
from benchmark.protocol.loading import spec_hash
from benchmark.protocol.spec import DefenseSpec


def test_every_defence_is_registered_and_all_but_sign_have_a_strength():
    assert DEFENSES.names() == [
        "clipping",
        "dpsgd",
        "gaussian",
        "laplacian",
        "pruning",
        "quantization",
        "sign",
        "soteria",
    ]
    for name, cls in DEFENSES:
        assert issubclass(cls, Defense) and (cls.strength is None) == (name == "sign")
        build_defense(DefenseSpec(name=name))  # every defence builds from its defaults


@pytest.mark.parametrize(
    "spec, message",
    [
        (DefenseSpec(name="gausian"), "unknown defense 'gausian' (did you mean 'gaussian'?)"),
        (DefenseSpec(name="gaussian", params={"sigm": 1}), "no parameter 'sigm' (did you mean 'sigma'?)"),
        (DefenseSpec(name="quantization", params={"bits": 2.5}), "'bits' must be an integer"),
        (DefenseSpec(name="gaussian", params={"sigma": "lots"}), "'sigma' must be a number"),
        (DefenseSpec(name="pruning", params={"fraction": 1.5}), "fraction must be in [0, 1]"),
        (DefenseSpec(name="dpsgd", params={"max_grad_norm": 0}), "max_grad_norm must be > 0"),
    ],
)
def test_a_bad_defence_is_one_clear_error(spec, message):
    with pytest.raises((SpecError, UnknownNameError)) as caught:
        build_defense(spec)
    assert message in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "-inf"])
def test_a_parameter_that_is_not_a_finite_number_is_refused(value):
    with pytest.raises(SpecError, match="defense 'gaussian': parameter 'sigma' must be a finite number, got"):
        build_defense(DefenseSpec(name="gaussian", params={"sigma": value}))


def test_strings_from_yaml_become_numbers():
    assert build_defense(DefenseSpec(name="gaussian", params={"sigma": "1e-3"})).sigma == 1e-3


def test_with_strength_sets_the_swept_parameter_and_keeps_the_others():
    spec = with_strength(DefenseSpec(name="dpsgd", params={"max_grad_norm": 0.5}), 2)
    assert spec.params == {"max_grad_norm": 0.5, "noise_multiplier": 2}
    assert with_strength(DefenseSpec(name="quantization"), 4.0).params == {"bits": 4}
    with pytest.raises(SpecError, match="'sign' has no strength parameter"):
        with_strength(DefenseSpec(name="sign"), 1)
    with pytest.raises(SpecError, match="fraction must be in"):
        with_strength(DefenseSpec(name="pruning"), 2)


def test_a_spec_names_its_defence_and_it_changes_the_hash_only_when_given():
    plain, defended = make_spec(), make_spec(defense={"name": "pruning", "params": {"fraction": 0.9}})
    assert plain.defense is None and defended.defense.params == {"fraction": 0.9}
    assert spec_hash(plain) != spec_hash(defended)
    assert spec_hash(defended) != spec_hash(make_spec(defense={"name": "pruning", "params": {"fraction": 0.5}}))
    with pytest.raises(
        SpecError, match=r"test spec: key 'defense': unknown defense 'prunning' \(did you mean 'pruning'"
    ):
        make_spec(defense={"name": "prunning"})
    with pytest.raises(SpecError, match="unknown key 'defense.param'"):
        make_spec(defense={"name": "pruning", "param": {}})
