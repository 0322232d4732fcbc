from pathlib import Path

import pytest
from support import git
from synthetic import fake_entry, traced

from benchmark.apps.leaderboard import provenance
from benchmark.apps.leaderboard.provenance import NO_GIT, compare_code, git_state, machine_paths, trace_problems

PATH = Path("leaderboards/quick/mnist-lenetzhu-b1/dlg.json")


def test_the_checkout_state_names_uncommitted_files_but_not_entries_or_runs(clean_checkout: Path, commit: str):
    git(clean_checkout, "config", "user.name", "Ada")  # who submits or verifies from it
    assert git_state() == provenance.GitState(commit, (), "Ada")
    assert git_state().record() == {"git_commit": commit, "git_dirty": False}
    (clean_checkout / "leaderboards" / "quick").mkdir(parents=True)
    (clean_checkout / "leaderboards" / "quick" / "dlg.json").write_text("{}")
    (clean_checkout / "runs").mkdir()
    (clean_checkout / "runs" / "results.json").write_text("{}")
    assert git_state(ignore=(clean_checkout / "leaderboards", clean_checkout / "runs")).uncommitted == ()
    with (clean_checkout / "benchmark" / "pipeline" / "run.py").open("a") as file:
        file.write("# an edit\n")
    (clean_checkout / "benchmark" / "new.py").write_text("")
    state = git_state(ignore=(clean_checkout / "leaderboards", Path("elsewhere")))
    assert state.uncommitted == ("benchmark/pipeline/run.py", "benchmark/new.py", "runs/")
    assert state.record() == {"git_commit": commit, "git_dirty": True}


def test_outside_a_checkout_there_is_no_git_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    assert git_state().record() == NO_GIT


def test_a_traced_verified_entry_has_no_problem(commit: str):
    assert trace_problems(PATH, traced(fake_entry(), commit)) == []


def _with_git(entry, **fields):
    return entry.model_copy(update={"environment": entry.environment.model_copy(update=fields)})


def _without_attack_code(clean_checkout: Path) -> str:
    git(clean_checkout, "rm", "-q", "benchmark/attacks/dlg.py")
    git(clean_checkout, "commit", "-qm", "no dlg")
    return git(clean_checkout, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    "edit, problem",
    [
        (
            lambda e, c: _with_git(e, git_dirty=True),
            "it was made from a checkout with uncommitted changes (git_dirty true); commit the code and re-submit it",
        ),
        (
            lambda e, c: _with_git(e, git_dirty=None),
            "it does not record whether its checkout had uncommitted changes (git_dirty null); re-submit it from a clean commit",
        ),
        (
            lambda e, c: _with_git(e, git_commit=None),
            "it records no commit (git_commit null); re-submit it from a clean commit of a leakbench checkout",
        ),
        (
            lambda e, c: _with_git(e, git_commit="7fbc0408b1c6dbc8b7b23683ff054c01605b7066"),
            "its commit 7fbc0408b1c6 is not in this repository; fetch it, or re-submit it from a commit that is",
        ),
        (
            lambda e, c: _with_git(e, git_commit=_without_attack_code(c)),
            "does not contain benchmark/attacks/dlg.py, its attack's code; re-submit it from a commit that does",
        ),
        (
            lambda e, c: e.model_copy(
                update={"data_origin": "offline copy (/tmp/venv/lib/python3.11/site-packages/foolbox/data)"}
            ),
            "field data_origin holds a machine path ('/tmp/venv/lib/python3.11/site-packages/foolbox/data'); re-submit it "
            "with this leakbench, which records none",
        ),
        (
            lambda e, c: e.model_copy(update={"verified": False, "verification": None}),
            f"it is not verified; run `leakbench verify {PATH} --record`",
        ),
    ],
)
def test_an_untraceable_or_unverified_entry_is_one_problem_with_its_fix(
    clean_checkout: Path, commit: str, edit, problem
):
    [line] = trace_problems(PATH, edit(traced(fake_entry(), commit), clean_checkout))
    assert line.startswith(f"{PATH}: ") and line.endswith(problem)


def test_without_a_checkout_the_commit_checks_say_they_could_not_be_made(
    commit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    assert trace_problems(PATH, traced(fake_entry(), commit)) == [
        f"{PATH}: its commit {commit[:12]} could not be checked: leakbench does not run from a git checkout here; "
        f"run `leakbench leaderboard check` from a clone of the repository"
    ]


def test_machine_paths_are_found_in_any_field_but_urls_and_fractions_are_not():
    entry = fake_entry(attack="idlg", task="cifar100-lenetzhu-b1")  # its paper figure has a URL
    assert machine_paths(entry) == []
    entry.rows[0].details["weights"] = "C:\\Users\\me\\alexnet.pth"
    entry.task_spec["data"]["path"] = "/home/me/faces"
    assert machine_paths(entry) == [
        ("task_spec.data.path", "/home/me/faces"),
        ("rows.0.details.weights", "C:\\Users\\me\\alexnet.pth"),
    ]


def test_the_code_comparison_names_what_differs_from_the_entrys_commit(clean_checkout: Path, commit: str):
    entry = traced(fake_entry(), commit)
    assert compare_code(entry, git_state()).describe() == (
        f"code at {commit[:12]}: the same as the entry's commit {commit[:12]} under benchmark/"
    )
    with (clean_checkout / "benchmark" / "attacks" / "dlg.py").open("a") as file:
        file.write("# an edit\n")
    git(clean_checkout, "commit", "-qam", "an edit of DLG")
    (clean_checkout / "benchmark" / "new.py").write_text("")
    comparison = compare_code(entry, git_state())
    assert comparison.changes == ("benchmark/attacks/dlg.py", "benchmark/new.py")
    assert comparison.describe() == (
        f"code at {comparison.at[:12]}: differs from the entry's commit {commit[:12]} in 2 file(s) under benchmark/, "
        f"among them benchmark/attacks/dlg.py (the attack's module): benchmark/attacks/dlg.py, benchmark/new.py"
    )
    unknown = _with_git(entry, git_commit="f" * 40)
    assert (
        compare_code(unknown, git_state())
        .describe()
        .endswith(
            "the entry's commit ffffffffffff is not in this repository: cannot tell whether it differs from the code the entry ran"
        )
    )


def test_without_a_checkout_the_code_comparison_says_it_cannot_tell(
    commit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    comparison = compare_code(traced(fake_entry(), commit), git_state())
    assert comparison.changes is None and comparison.describe() == (
        "code: leakbench does not run from a git checkout here: cannot tell whether it differs from the code the entry ran"
    )
