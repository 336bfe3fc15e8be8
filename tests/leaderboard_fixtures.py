"""The leaderboard tests' shared board: one smoke-budget bench run of the plug-in
(examples/my_model), evaluated on the suite's full frozen test episodes, submitted to a
board under a temporary folder (never the repository's leaderboard/), copied per test."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fewshot_mem.bench import main as bench_main
from fewshot_mem.leaderboard import main as leaderboard_main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "my_model"
PLUGIN = "my_model.learner:NearestNeighbourLearner"
SUITE = "omniglot-5way@1"
ENTRY = "nn"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def plugin():
    """The example plug-in importable by its module:Class spec, as if installed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        yield PLUGIN


@pytest.fixture(scope="module")
def result_path(plugin, omniglot_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert bench_main(["--suite", SUITE, "--models", plugin, "--budget", "smoke", "--data-root", str(omniglot_root),
                       "--out", str(out), "--quiet"]) == 0
    (path,) = (out / SUITE / "results").glob("*.json")
    return path


def leaderboard(root: Path, data_root: Path, *args: str) -> int:
    return leaderboard_main([*args, "--root", str(root), "--data-root", str(data_root)])


@pytest.fixture(scope="module")
def pristine_board(result_path, omniglot_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("board")
    assert leaderboard(root, omniglot_root, "submit", str(result_path), "--name", ENTRY, "--submitter",
                       "Test <Submitter>", "--paper", "https://example.org/paper") == 0
    return root


@pytest.fixture
def board(pristine_board, tmp_path) -> Path:
    return Path(shutil.copytree(pristine_board, tmp_path / "board"))


def entry_path(root: Path, name: str = ENTRY) -> Path:
    return root / "entries" / SUITE / f"{name}.json"


def edit_entry(root: Path, change) -> None:
    path = entry_path(root)
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def mismatches(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.rstrip().endswith("MISMATCH")]


def browser() -> str:
    """Chromium, or a skip that says why; under CI (CI=true) a missing browser fails instead, so
    the page check cannot vanish from CI unnoticed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("CI=true but chromium is not installed: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
