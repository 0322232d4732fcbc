"""The static site in a real browser: headless Chromium loads ``site/index.html`` and a probe script
reports, for every row of every board, whether it is laid out and whether its picture decoded."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from synthetic import fake_entry, png, traced

from benchmark.apps.leaderboard.render import build
from benchmark.apps.leaderboard.schema import entry_files, load_entry, write_entry

COMMITTED = Path(__file__).parents[3] / "leaderboards"

# Run after the load event (every image decoded or failed): one record per row into <pre id="probe">.
PROBE = """<pre id="probe"></pre>
<script>
window.addEventListener("load", () => {
  const rows = [];
  for (const table of document.querySelectorAll("table:not(.labels)")) {  // the entries' boards
    let heading = table.previousElementSibling;
    while (heading && heading.tagName !== "H3") heading = heading.previousElementSibling;
    for (const row of [...table.rows].slice(1)) {
      const image = row.querySelector("img");
      rows.push({board: heading ? heading.id : null, attack: row.cells[1].textContent.replace(" (malicious server)", "").replace(" (partial)", ""),
                 shown: row.getBoundingClientRect().height > 0,
                 picture: image ? image.complete && image.naturalWidth > 0 && image.getBoundingClientRect().width > 0 : null});
    }
  }
  document.getElementById("probe").textContent = JSON.stringify(rows);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "headless Chromium is not installed, so the site was not opened in a browser: install it "
            "(Debian: apt-get install -y chromium, as .ci/run does) to run this test"
        )
    return found


def rendered_rows(chromium: str, page: Path, scratch: Path) -> list[dict]:
    """The probe's records for ``page``, loaded in headless Chromium."""
    probed = scratch / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={scratch / 'profile'}",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert done.returncode == 0 and found and found.group(1), f"Chromium showed no probe: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def expected_rows(root: Path) -> list[dict]:
    """What the page must show: a laid-out row per entry, with its picture where it has one."""
    rows = []
    for path in entry_files(root):
        entry = load_entry(path)
        rows.append(
            {
                "board": f"{entry.suite}-{entry.task}",
                "attack": entry.attack,
                "shown": True,
                "picture": True if entry.picture else None,
            }
        )
    return rows


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row["board"], row["attack"]))


def test_every_entry_of_a_rendered_site_shows_its_row_and_picture(
    chromium: str, board: Path, tmp_path: Path, commit: str
):
    write_entry(board, traced(fake_entry(task="cifar10-lenetzhu-b1", picture=False), commit), None)  # a pulled one
    build(board)
    rows = rendered_rows(chromium, board / "site" / "index.html", tmp_path)
    assert len(rows) == 4 and _sorted(rows) == _sorted(expected_rows(board))


def test_a_picture_that_does_not_decode_is_caught(chromium: str, board: Path, tmp_path: Path):
    (board / "quick" / "mnist-lenetzhu-b1" / "idlg.png").write_bytes(png()[:40])  # truncated
    build(board)
    rows = rendered_rows(chromium, board / "site" / "index.html", tmp_path)
    assert [row["attack"] for row in rows if row["picture"] is False] == ["idlg"]


def test_the_committed_site_shows_every_committed_entry(chromium: str, tmp_path: Path):
    rows = rendered_rows(chromium, COMMITTED / "site" / "index.html", tmp_path)
    assert rows and _sorted(rows) == _sorted(expected_rows(COMMITTED))
