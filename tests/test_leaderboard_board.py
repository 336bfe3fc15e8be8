"""The board as people read it (issue 25): the committed page in a headless browser (suites in
the board's order, Santoro's Table 1 first, the papers' quoted rows, every plot loaded), the
committed files equal to what `render` gives, what each entry cost, the summary, and CI's
leaderboard step passing an honest change and failing a tampered one."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import (BROWSER_FLAGS, ENTRY, EXAMPLE, REPO, SUITE, board, browser, edit_entry,  # noqa: F401
                                  entry_path, leaderboard, plugin, pristine_board, result_path)
from PIL import Image

from fewshot_mem.evaluate import Estimate
from fewshot_mem.leaderboard import read_json
from fewshot_mem.leaderboard.context import board_position, hardware, training_budget
from fewshot_mem.leaderboard.validate import results_digest
from fewshot_mem.report import training_hardware, training_time

COMMITTED = REPO / "leaderboard"
HEADLINE = "omniglot-5way@1"  # Santoro et al.'s Table 1
# Marks each image loaded or not once the page has loaded; appended to a copy of the page.
PROBE = """<script>window.addEventListener("load", () => {
  for (const image of document.images)
    image.setAttribute("data-loaded", String(image.complete && image.naturalWidth > 0));
  document.body.setAttribute("data-probed", "yes");
});</script>"""


def committed_suites() -> list[str]:
    return sorted({path.parent.name for path in (COMMITTED / "entries").glob("*/*.json")}, key=board_position)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [browser(), *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([*flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_the_committed_page_in_a_headless_browser(tmp_path):
    page = tmp_path / "index.html"
    page.write_text((COMMITTED / "index.html").read_text().replace("</body>", PROBE + "\n</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()).stdout
    assert 'data-probed="yes"' in dom
    sections = re.findall(r'<section[^>]*\bid="([^"]+)"', dom)
    assert sections == ["summary", *committed_suites()] and sections[1] == HEADLINE
    headline = dom.split(f'id="{HEADLINE}"')[1].split("</section>")[0]
    references = re.findall(r'<tr class="reference">(.*?)</tr>', headline)
    assert len(references) == 2 and all("quoted, not verified" in row and "Santoro" in row for row in references)
    assert "82.8" in references[0]  # MANN's 2nd instance in Santoro et al.'s Table 1
    images = re.findall(r"<img[^>]*>", dom)
    assert images and all('data-loaded="true"' in image for image in images), images
    screenshot = tmp_path / "page.png"
    chromium(tmp_path, "--window-size=1280,1000", f"--screenshot={screenshot}", (COMMITTED / "index.html").as_uri())
    with Image.open(screenshot) as image:
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    assert gray.std() > 5 and (gray < 128).mean() > 0.01  # dark text and lines on the page, not a blank


def test_the_committed_board_is_what_render_gives(tmp_path, omniglot_root):
    """No hand edits: the committed page says what the committed entries say."""
    root = tmp_path / "board"
    shutil.copytree(COMMITTED / "entries", root / "entries")
    assert leaderboard(root, omniglot_root, "render") == 0
    message = "leaderboard/ differs from its entries: run `python -m fewshot_mem.leaderboard render`"
    assert (root / "README.md").read_text() == (COMMITTED / "README.md").read_text(), message
    without_plots = [re.sub(r"base64,[A-Za-z0-9+/=]+", "", (folder / "index.html").read_text())
                     for folder in (root, COMMITTED)]
    assert without_plots[0] == without_plots[1], message


def test_the_readme_lists_suites_in_order_and_no_anonymous_project_entry():
    readme = (COMMITTED / "README.md").read_text()
    headings = re.findall(r"^## (\S+@\d+) — ", readme, re.MULTILINE)
    assert headings == committed_suites() and headings[0] == HEADLINE
    assert readme.index("## Summary") < readme.index(f"## {HEADLINE}") < readme.index("## How to submit an entry")
    for path in (COMMITTED / "entries").glob("*/*.json"):
        assert read_json(path)["submitter"] != "anonymous", path


def test_training_budget_of_a_result_without_a_training_record():
    assert training_budget({"budget": "quick"}) == "–"  # the schema does not require the record


def test_training_time_shows_cpu_time_beside_the_wall_clock_where_recorded():
    wall_only = {"train_seconds": 13_000.0}
    assert training_time(wall_only) == "3.6 h"
    assert training_time({**wall_only, "train_cpu_seconds": 11_000.0}) == "3.6 h (3.1 h CPU)"
    assert training_time({"train_seconds": None, "train_cpu_seconds": 5.0}) == "–"


def test_hardware_counts_the_threads_of_every_training_session():
    scored_on = {"processor": "x86_64", "cpu_model": "AMD EPYC", "cpu_threads": 1, "processes": 1}
    assert training_hardware({"hardware": scored_on}) == "AMD EPYC, 1 thread"
    assert training_hardware({"hardware": {**scored_on, "processes": 4}}) == "AMD EPYC, 4 threads"
    # Sessions logged before their threads were: the scoring session's threads, times each one's processes.
    resumed_on_two = [{"from_step": 0, "processes": 1}, {"from_step": 500, "processes": 2}]
    assert training_hardware({"hardware": scored_on, "training_sessions": resumed_on_two}) == "AMD EPYC, 1–2 threads"
    logged = [{"from_step": 0, "processes": 2, "cpu_threads": 3}]
    assert training_hardware({"hardware": scored_on, "training_sessions": logged}) == "AMD EPYC, 6 threads"
    # The GPUs of the sessions that trained, not of the one that scored.
    scored_on_gpu = {**scored_on, "gpu": "NVIDIA H200"}
    assert training_hardware({"hardware": scored_on_gpu}) == "NVIDIA H200"
    assert training_hardware({"hardware": scored_on_gpu, "training_sessions": logged}) == "AMD EPYC, 6 threads"
    on_four_gpus = [{"from_step": 0, "processes": 4, "cpu_threads": 1, "gpu": "NVIDIA H200"}]
    assert training_hardware({"hardware": scored_on, "training_sessions": on_four_gpus}) == "4 × NVIDIA H200"


def test_entries_show_cost_and_the_summary_only_verified_entries(board, omniglot_root, plugin):
    assert leaderboard(board, omniglot_root, "render") == 0
    readme = (board / "README.md").read_text()
    row = next(line for line in readme.splitlines() if f"`{ENTRY}`" in line)
    result = read_json(entry_path(board))["result"]
    assert f"| {training_budget(result)} | {training_time(result)} | {hardware(result)} | Test \\<Submitter\\> |" in row
    summary = readme.split("## Summary")[1].split("\n## ")[0]
    assert "MANN (LRUA)" in summary and "| 82.8 |" in summary and f"`{ENTRY}`" not in summary
    assert leaderboard(board, omniglot_root, "verify", ENTRY, "--record") == 0
    assert leaderboard(board, omniglot_root, "render") == 0
    summary = (board / "README.md").read_text().split("## Summary")[1].split("\n## ")[0]
    assert f"`{ENTRY}`" in summary


# --- CI's leaderboard step --------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=CI test", "-c", "user.email=ci@example.org", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", "-C", str(repo), *identity, *args], capture_output=True, text=True,
                          check=True).stdout


def ci_step(repo: Path, omniglot_root: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable, "LEADERBOARD_ROOT": str(repo / "leaderboard"),
                   "LEADERBOARD_BASE": "main", "FEWSHOT_MEM_DATA": str(omniglot_root),
                   "PYTHONPATH": os.pathsep.join([str(REPO), str(EXAMPLE)])}
    return subprocess.run(["bash", str(REPO / ".ci" / "verify-leaderboard")], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def change(pristine_board, tmp_path) -> Path:
    """A repository whose main branch holds the board, with a change that adds entry nn2 (honest)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(pristine_board, repo / "leaderboard")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the board")
    git(repo, "checkout", "-q", "-b", "change")
    board = repo / "leaderboard"
    entry = read_json(entry_path(board))
    entry["entry"], entry["checkpoint"]["path"] = "nn2", f"checkpoints/{SUITE}/nn2.pt"
    entry_path(board, "nn2").write_text(json.dumps(entry))
    shutil.copy(board / "checkpoints" / SUITE / f"{ENTRY}.pt", board / "checkpoints" / SUITE / "nn2.pt")
    return repo


def shuffled_and_recorded(entry: dict) -> None:
    """Tampering that keeps every estimate and forges a matching verification record."""
    table = entry["result"]["tables"]["online"]
    values = list(table["per_episode"]["instance_2"])
    random.Random(1).shuffle(values)
    table["per_episode"]["instance_2"] = values
    table["estimates"]["instance_2"] = vars(Estimate.from_samples(np.array(values)))
    entry["verification"] = {"results_sha256": results_digest(entry), "commit": "0" * 40, "date": "2026-01-01",
                             "hardware": "forged", "differing_episodes": 0}


def test_ci_passes_an_honest_change_and_re_evaluates_only_what_it_touches(change, omniglot_root, plugin):
    done = ci_step(change, omniglot_root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 to verify: entries added or modified since main" in done.stdout
    assert f"ok        {SUITE}/nn2: bit-identical" in done.stdout and f"{SUITE}/nn:" not in done.stdout


def test_ci_fails_a_tampered_entry_even_with_a_forged_record(change, omniglot_root, plugin):
    edit = json.loads(entry_path(change / "leaderboard", "nn2").read_text())
    shuffled_and_recorded(edit)
    entry_path(change / "leaderboard", "nn2").write_text(json.dumps(edit))
    done = ci_step(change, omniglot_root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"DIFFERS   {SUITE}/nn2:" in done.stdout


def test_ci_fails_a_tampered_entry_already_committed_on_the_branch(change, omniglot_root, plugin):
    """Committed or not, what differs from main is re-evaluated; an existing entry edited too."""
    board = change / "leaderboard"
    edit_entry(board, shuffled_and_recorded)
    git(change, "add", "-A")
    git(change, "commit", "-q", "-m", "tampered")
    done = ci_step(change, omniglot_root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"DIFFERS   {SUITE}/nn:" in done.stdout and f"ok        {SUITE}/nn2:" in done.stdout


def test_ci_refuses_a_verification_claimed_without_weights(change, omniglot_root, plugin):
    board = change / "leaderboard"
    (board / "checkpoints" / SUITE / "nn2.pt").unlink()
    path = entry_path(board, "nn2")
    entry = json.loads(path.read_text())
    entry["verification"] = {"results_sha256": results_digest(entry), "commit": "0" * 40, "date": "2026-01-01",
                             "hardware": "forged", "differing_episodes": 0}
    path.write_text(json.dumps(entry))
    done = ci_step(change, omniglot_root)
    assert done.returncode == 1 and "claims a verification, but its weights are not here" in done.stdout


def test_a_named_base_that_does_not_exist_is_bad_input(board, omniglot_root, capsys):
    """Falling back to 'every entry' is for a base that was not named; a named one is a mistake."""
    assert leaderboard(board, omniglot_root, "verify", "--changed", "--base", "no-such-branch") == 2
    assert "'no-such-branch' is not a git branch or commit" in capsys.readouterr().err


def test_without_a_browser_the_page_check_skips_but_fails_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but chromium is not installed"):
        browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        browser()


def test_the_committed_board_validates_and_ships_every_entrys_weights(omniglot_root):
    """validate passes on the committed leaderboard/ itself, and every entry's weights are in the
    repository at its own location with the sha256 it claims (so a fresh clone can verify all)."""
    from fewshot_mem.leaderboard import validate_board

    problems = validate_board(COMMITTED, omniglot_root)
    assert problems and not any(problems.values()), {str(p): found for p, found in problems.items() if found}
    for path in (COMMITTED / "entries").glob("*/*.json"):
        entry = json.loads(path.read_text())
        assert entry["checkpoint"]["path"], f"{path.name} names no stored weights"
        assert (COMMITTED / entry["checkpoint"]["path"]).is_file(), f"{path} ships no weights"
