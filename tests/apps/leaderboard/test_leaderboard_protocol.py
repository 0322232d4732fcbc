from synthetic import fake_entry

from benchmark.apps.leaderboard.protocol import nonconformity, suite_protocols
from benchmark.attacks import ATTACKS
from benchmark.data.torchvision_sources import OFFLINE_COUNT
from benchmark.protocol.loading import load_suite

CLOSED_FORM = ("bias", "rgap", "ssras")
PAPER_STEPS = {"dlg": 300, "idlg": 300, "inverting_gradients": 24_000, "grnn": 1_000}  # L-BFGS, L-BFGS, Adam, RMSprop


def test_the_reference_suite_runs_each_attack_on_its_papers_protocol_at_its_papers_budget():
    protocols = {protocol.spec.name: protocol for protocol in suite_protocols("reference")}
    closed_form = load_suite("closed-form")
    assert {name: protocol.attacks for name, protocol in protocols.items()} == {
        "mnist-lenetzhu-b1": ("dlg", "idlg"),
        "cifar10-lenetzhu-b1": ("dlg", "idlg", "inverting_gradients"),
        "cifar100-lenetzhu-b1": ("dlg", "idlg"),
        "mnist-lenet5-b1": ("grnn",),
        "cifar100-lenet5-b1": ("grnn",),
        **{task: CLOSED_FORM for task in closed_form.tasks},
    }
    assert closed_form.attacks == CLOSED_FORM
    past_one_image = {attack for protocol in suite_protocols("batches") for attack in protocol.attacks}
    assert past_one_image == {"gradinversion", "inverting_gradients", "imprint"}  # batches of 4 and 16
    ran = {attack for protocol in protocols.values() for attack in protocol.attacks}
    assert ran == set(ATTACKS.names()) - {"gradinversion", "imprint"}  # every attack of one image
    for protocol in protocols.values():
        spec = protocol.spec
        assert (protocol.targets, spec.data.split, spec.fl.batch_size) == (20, "test", 1)
        assert spec.target_indices(protocol.targets - 1)[-1] < OFFLINE_COUNT  # the offline test images suffice
        assert protocol.max_steps is None  # so each attack runs its config's default ...
        for attack in protocol.attacks:
            assert "max_steps" not in spec.budget.options.get(attack, {})
            assert ATTACKS.get(attack).Config().max_steps == PAPER_STEPS.get(attack, 1)  # ... which is its paper's


def test_an_entry_of_an_attack_its_suite_does_not_run_on_the_task_departs_from_the_protocol():
    [protocol] = suite_protocols("reference", ["mnist-lenet5-b1"])
    entry = fake_entry(task="mnist-lenet5-b1", attack="dlg", suite="reference", psnr=(30.0,) * 20)
    assert not protocol.runs("dlg") and protocol.runs("grnn")
    assert nonconformity(entry, protocol) == "the suite does not run dlg on this task (its attacks: grnn)"
