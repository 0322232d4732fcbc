import html
import json
from pathlib import Path

from synthetic import fake_entry, png, traced

from benchmark.apps.leaderboard.render import build, check, load_boards, make_board
from benchmark.apps.leaderboard.schema import FaceEncoder, Spread, write_entry
from benchmark.protocol.loading import load_suite


def test_a_board_ranks_by_its_primary_metric_and_lists_partial_entries_last(board: Path):
    [quick] = load_boards(board)
    [mnist] = quick.boards
    assert mnist.primary == "psnr" and mnist.metrics == ["psnr", "ssim", "mse", "label_accuracy"]
    assert [(row.rank, row.entry.attack) for row in mnist.rows] == [(1, "idlg"), (2, "dlg"), (None, "slow")]


def test_the_board_says_who_verified_an_entry_and_which_package_provides_its_attack(board: Path, commit: str):
    for attack, verifier in (("mine", "Ada"), ("theirs", "Bob"), ("unnamed", None)):
        entry = traced(fake_entry(attack=attack), commit)
        write_entry(
            board,
            entry.model_copy(
                update={
                    "submitter": "Ada",
                    "attack_package": f"leakbench-{attack} 0.2.0",
                    "verification": entry.verification.model_copy(update={"verifier": verifier}),
                }
            ),
            png(),
        )
    build(board)
    rows = {
        line.split(" | ")[1]: line for line in (board / "README.md").read_text().splitlines() if line.startswith("| ")
    }
    assert rows["mine"].endswith("| yes (the submitter) | [png](quick/mnist-lenetzhu-b1/mine.png) |")
    assert "| yes (independent) |" in rows["theirs"] and "| yes |" in rows["unnamed"] and "| yes |" in rows["dlg"]
    assert "| mine | leakbench-mine 0.2.0 |" in rows["mine"]
    assert "<td>yes (independent)</td>" in (board / "site" / "index.html").read_text()


def test_the_board_names_where_an_entrys_spread_was_measured_and_check_wants_its_constraints(board: Path, commit: str):
    entry = traced(fake_entry(attack="chaotic"), commit)
    elsewhere = entry.environment.model_copy(
        update={"device": "NVIDIA H200", "torch": "2.15.0", "constraints": "environments/0123456789ab.txt"}
    )
    spread = Spread(date=entry.date, environment=elsewhere, differs_in=["torch 2.15.0"], moves={"psnr": 3.7})
    write_entry(board, entry.model_copy(update={"spreads": [spread]}), png())
    build(board)
    (row,) = [
        line for line in (board / "README.md").read_text().splitlines() if line.startswith("| ") and "chaotic" in line
    ]
    assert "| yes; spread measured on NVIDIA H200, torch 2.15.0 |" in row
    assert any("its constraints file environments/0123456789ab.txt is missing" in p for p in check(board))


def test_the_board_names_the_face_encoder_that_re_identified_its_entries(board: Path, commit: str):
    encoder = FaceEncoder(backend="facenet", weights_sha256="281cebca" + "0" * 56)
    write_entry(board, traced(fake_entry(attack="faces"), commit).model_copy(update={"face_encoder": encoder}), png())
    build(board)
    line = "Faces re-identified by facenet (weights sha256 281cebca…)."
    assert line in (board / "README.md").read_text() and line in html.unescape(
        (board / "site" / "index.html").read_text()
    )


def test_a_lower_is_better_primary_metric_ranks_ascending(tmp_path: Path):
    entries = []
    for attack, psnr in (("a", (10.0, 10.0, 10.0)), ("b", (30.0, 30.0, 30.0))):
        entry = fake_entry(attack=attack, psnr=psnr)
        for row in entry.rows:  # a board that measures only MSE
            row.metrics = {"mse": row.metrics["mse"]}
        entry.summary.metrics = {"mse": entry.summary.metrics["mse"]}
        entries.append((tmp_path / f"{attack}.json", entry))
    board = make_board(entries)
    assert board.primary == "mse" and [row.entry.attack for row in board.rows] == ["b", "a"]


def test_build_renders_markdown_tables_and_a_self_contained_page(board: Path):
    build(board)
    markdown = (board / "README.md").read_text()
    assert "### mnist-lenetzhu-b1" in markdown and "| PSNR (dB) ↑ | SSIM ↑ | MSE ↓ | label acc. ↑ |" in markdown
    assert markdown.index("| 1 | idlg |") < markdown.index("| 2 | dlg |") < markdown.index("| – | slow (partial) |")
    assert (
        "[label acc. 100.0 %](https://arxiv.org/abs/2001.02610)" in markdown
        and "| 2.0 s | cpu, torch 2.5.0 |" in markdown
    )
    page = (board / "site" / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and 'class="partial"' in page
    assert check(board) == []


def test_check_fails_on_stale_boards_and_on_a_hand_edited_metric(board: Path):
    assert check(board) == [
        f"{board / 'README.md'} is stale; run `leakbench leaderboard build --root {board}`",
        f"{board / 'site/index.html'} is stale; run `leakbench leaderboard build --root {board}`",
    ]
    build(board)
    path = board / "quick" / "mnist-lenetzhu-b1" / "dlg.json"
    content = json.loads(path.read_text())
    content["summary"]["metrics"]["psnr"] = 45.0
    path.write_text(json.dumps(content))
    [problem] = check(board)
    assert problem.startswith(f"{path}: summary.metrics.psnr is 45.0 but the rows give 30.0")


def test_check_fails_on_an_entry_of_another_protocol_or_without_its_picture(board: Path):
    build(board)
    path = board / "quick" / "mnist-lenetzhu-b1" / "dlg.json"
    content = json.loads(path.read_text())
    content["task_version"] = 7
    content["task_spec"]["victim"]["seed"] = 99
    path.write_text(json.dumps(content))
    path.with_name("dlg.png").unlink()
    first, second = check(board)
    assert first.startswith(
        f"{path}: not measured under the current protocol: task_version 7 (the protocol's: 1), the task spec changed since; re-submit it"
    )
    assert second == f"{path}: its picture dlg.png is missing; re-submit it"


def test_entries_of_unknown_suites_are_reported(tmp_path: Path):
    entry = fake_entry().model_copy(update={"suite": "gone"})
    write_entry(tmp_path, entry, None)
    [problem] = check(tmp_path)
    assert "unknown suite 'gone'" in problem


def test_suites_come_in_the_order_of_suites_yaml_under_their_descriptions(board: Path, commit: str):
    for entry in (fake_entry(task="cifar10-lenetzhu-b1"), fake_entry(suite="reference", psnr=(30.0,) * 20)):
        write_entry(board, traced(entry, commit), png())
    reference, quick = load_boards(board)
    assert (reference.name, quick.name) == ("reference", "quick")
    assert [b.task for b in quick.boards] == ["mnist-lenetzhu-b1", "cifar10-lenetzhu-b1"]  # the suite's order
    build(board)
    markdown, page = (board / "README.md").read_text(), (board / "site" / "index.html").read_text()
    for suite in ("reference", "quick"):
        description = load_suite(suite).description
        assert f"## Suite `{suite}`\n\n{description}\n" in markdown
        assert f'<h2>Suite <code>{suite}</code></h2>\n<p class="suite">{description}</p>' in html.unescape(page)
    assert markdown.index("## Suite `reference`") < markdown.index("## Suite `quick`")
    assert check(board) == []


def test_an_attack_that_sent_its_own_model_is_ranked_only_among_its_kind(tmp_path: Path):
    honest = fake_entry(attack="dlg", psnr=(20.0, 20.0, 20.0))
    rows = [row.model_copy(update={"details": {"global_model": {"modified_by": "imprint"}}}) for row in honest.rows]
    malicious = fake_entry(attack="imprint", psnr=(20.0, 20.0, 20.0)).model_copy(update={"rows": rows})
    board = make_board([(tmp_path / "dlg.json", honest), (tmp_path / "imprint.json", malicious)])
    assert [(row.rank, row.entry.attack, row.entry.malicious_server) for row in board.rows] == [
        (1, "dlg", False),
        (1, "imprint", True),
    ]
