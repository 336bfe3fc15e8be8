"""The leaderboard end to end (submit, validate, verify, render), each way it refuses an
entry, the plug-in example, and citations (the rendered page in a browser: test_leaderboard_board.py).

One smoke-budget bench run of the plug-in (examples/my_model), evaluated on the suite's
full frozen test episodes, feeds every test; each test works on its own copy of the board
under tmp_path, never on the repository's leaderboard/.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from leaderboard_fixtures import (ENTRY, EXAMPLE, REPO, SUITE, board, edit_entry,  # noqa: F401
                                  entry_path, files_under, leaderboard, mismatches, plugin, pristine_board,
                                  result_path)

from fewshot_mem import __version__
from fewshot_mem.bench import main as bench_main
from fewshot_mem.evaluate import Estimate
from fewshot_mem.leaderboard import shared_ranks
from fewshot_mem.models.contract import check_learner
from fewshot_mem.models.learner import Learner
from fewshot_mem.models.registry import available_models, resolve
from fewshot_mem.suites import get_suite, load_pools

# --- the plug-in example ------------------------------------------------------------------

def test_plugin_honours_the_learner_contract(plugin):
    check_learner(plugin)


def test_plugin_entry_point_registers_its_name_once_installed(plugin, tmp_path, monkeypatch):
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["fewshot_mem.models"]
    # What `pip install` leaves behind: a dist-info folder with the entry points (no pip needed).
    info = tmp_path / "fewshot_mem_my_model-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {spec}\n" for name, spec in points.items())
    (info / "entry_points.txt").write_text(f"[fewshot_mem.models]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, spec in points.items():
        assert available_models()[name] == spec
        assert issubclass(resolve(name), Learner)


# --- the happy path -----------------------------------------------------------------------

def test_submit_validate_verify_render(board, result_path, omniglot_root, capsys, plugin):
    entry = json.loads(entry_path(board).read_text())
    assert entry["result"] == json.loads(result_path.read_text())
    stored = board / entry["checkpoint"]["path"]
    weights = torch.load(stored, weights_only=True)
    assert set(weights) == set(torch.load(entry["result"]["checkpoint"], weights_only=True)["model"])
    assert leaderboard(board, omniglot_root, "validate") == 0
    capsys.readouterr()
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 0
    output = capsys.readouterr().out
    assert "verified" in output and not mismatches(output)
    assert leaderboard(board, omniglot_root, "render") == 0
    readme = (board / "README.md").read_text()
    assert f"## {SUITE}" in readme and f"`{ENTRY}`" in readme and "5-way-1-shot" in readme
    assert "https://example.org/paper" in readme and "Test \\<Submitter\\>" in readme
    page = (board / "index.html").read_text()
    assert "Test &lt;Submitter&gt;" in page and "data:image/png;base64," in page


def test_render_of_an_empty_board(tmp_path, omniglot_root):
    assert leaderboard(tmp_path, omniglot_root, "render") == 0
    assert "No entries yet" in (tmp_path / "README.md").read_text()
    assert "No entries yet" in (tmp_path / "index.html").read_text()


# --- refusals on submit: exit 2, a message, and nothing written ----------------------------

def broken_result(result_path: Path, tmp_path: Path, change) -> Path:
    result = json.loads(result_path.read_text())
    change(result)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    return path


@pytest.mark.parametrize("change, complaint", [
    (lambda r: r.pop("tables"), "result.tables is missing"),
    (lambda r: r["tables"]["online"]["per_episode"]["instance_1"].__setitem__(0, "high"), "must be a number"),
    (lambda r: r.__setitem__("suite", "omniglot-7way@1"), "unknown suite"),
    (lambda r: r.__setitem__("fingerprint", "0" * 64), "fingerprint"),
    (lambda r: r["tables"].pop("5-way-5-shot"), "result.tables must be exactly"),
    (lambda r: r["tables"]["5-way-1-shot"]["estimates"]["5-way-1-shot"].__setitem__("mean", 0.99),
     "per-episode values give"),
])
def test_submit_refuses_a_bad_result(change, complaint, result_path, omniglot_root, tmp_path, capsys):
    root = tmp_path / "board"
    assert leaderboard(root, omniglot_root, "submit", str(broken_result(result_path, tmp_path, change))) == 2
    assert complaint in capsys.readouterr().err
    assert not files_under(root)


def test_submit_refuses_a_file_that_is_not_json(omniglot_root, tmp_path, capsys):
    (tmp_path / "result.json").write_text("{not json")
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(tmp_path / "result.json")) == 2
    assert "is not JSON" in capsys.readouterr().err


def test_submit_refuses_results_of_a_test_episodes_run(plugin, omniglot_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench_main(["--suite", SUITE, "--models", plugin, "--budget", "smoke", "--data-root", str(omniglot_root),
                       "--out", str(out), "--quiet", "--test-episodes", "20"]) == 0
    (result,) = (out / SUITE / "results").glob("*.json")
    capsys.readouterr()
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(result)) == 2
    error = capsys.readouterr().err
    assert "fingerprint" in error and "--test-episodes" in error and "20 episodes" in error
    assert not files_under(tmp_path / "board")


@pytest.mark.parametrize("name", ["../evil", "..", ".hidden", "sub/dir", "a\\b", "x" * 101, "semi;colon"])
def test_submit_refuses_unsafe_entry_names(name, result_path, omniglot_root, tmp_path, capsys):
    root = tmp_path / "deep" / "board"
    assert leaderboard(root, omniglot_root, "submit", str(result_path), "--name", name) == 2
    assert "entry name" in capsys.readouterr().err
    assert not files_under(tmp_path)


@pytest.mark.parametrize("option", ["--paper", "--code"])
def test_submit_refuses_links_that_are_not_web_addresses(option, result_path, omniglot_root, tmp_path, capsys):
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(result_path), option,
                       "javascript:alert(1)") == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert not files_under(tmp_path / "board")


def test_submit_refuses_weights_of_another_model(result_path, omniglot_root, tmp_path, capsys, plugin):
    other = tmp_path / "other.pt"
    torch.save({"model": {"encoder.weight": torch.zeros(3)}}, other)
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(result_path), "--checkpoint", str(other)) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not files_under(tmp_path / "board")


def test_submit_never_overwrites_without_force(board, result_path, omniglot_root, capsys, plugin):
    before = files_under(board)
    assert leaderboard(board, omniglot_root, "submit", str(result_path), "--name", ENTRY) == 2
    assert "--force" in capsys.readouterr().err
    assert files_under(board) == before
    assert leaderboard(board, omniglot_root, "submit", str(result_path), "--name", ENTRY, "--submitter", "Again",
                       "--force") == 0
    assert json.loads(entry_path(board).read_text())["submitter"] == "Again"


def test_weights_kept_elsewhere_are_named_by_url(result_path, omniglot_root, tmp_path, capsys, plugin):
    root = tmp_path / "board"
    assert leaderboard(root, omniglot_root, "submit", str(result_path), "--name", ENTRY, "--checkpoint-url",
                       "https://example.org/nn.pt") == 0
    assert not (root / "checkpoints").exists()
    assert leaderboard(root, omniglot_root, "validate") == 0
    capsys.readouterr()
    assert leaderboard(root, omniglot_root, "verify", ENTRY) == 2
    assert "download them and pass --checkpoint" in capsys.readouterr().err


# --- tampered entries: validate and verify say what is wrong ------------------------------

def test_an_edited_mean_fails_validation_and_verification(board, omniglot_root, capsys, plugin):
    edit_entry(board, lambda e: e["result"]["tables"]["online"]["estimates"]["instance_2"].__setitem__("mean", 0.999))
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "instance_2.mean is 0.999, but its per-episode values give" in capsys.readouterr().out
    assert leaderboard(board, omniglot_root, "verify", f"{SUITE}/{ENTRY}") == 1
    output = capsys.readouterr().out
    (row,) = mismatches(output)
    assert row.split()[:3] == ["online", "instance_2", "mean"] and "99.900" in row
    assert "VERIFICATION FAILED" in output


def improved(table: dict) -> None:
    """Consistent forgery: better per-episode accuracies and the estimates they give."""
    for key, values in table["per_episode"].items():
        forged = [1.0] * len(values) if np.mean(values) < 1 else [0.0] * len(values)
        table["per_episode"][key] = forged
        table["estimates"][key] = vars(Estimate.from_samples(np.array(forged)))


def test_consistently_forged_numbers_pass_validation_but_fail_verification(board, omniglot_root, capsys, plugin):
    edit_entry(board, lambda e: improved(e["result"]["tables"]["5-way-1-shot"]))
    assert leaderboard(board, omniglot_root, "validate") == 0
    capsys.readouterr()
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    output = capsys.readouterr().out
    rows = [row.split()[:2] for row in mismatches(output)]
    assert ["5-way-1-shot", "mean"] in rows and all(table == "5-way-1-shot" for table, _ in rows)
    assert re.search(r"^5-way-1-shot\s+episodes that differ\s+≤ 5\s+[1-9]\d* \(≤ \d+ pred\.\)\s+MISMATCH", output,
                     re.MULTILINE)


def test_a_wrong_fingerprint_fails_before_anything_is_loaded(board, omniglot_root, capsys, plugin):
    edit_entry(board, lambda e: e["result"].__setitem__("fingerprint", "f" * 64))
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "is not that of the 1000 frozen test episodes" in capsys.readouterr().out
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    output = capsys.readouterr().out
    (row,) = mismatches(output)
    assert row.split()[:3] == ["–", "fingerprint", "f" * 64]
    assert "(%)" not in output  # nothing was re-evaluated


def test_a_swapped_checkpoint_fails_on_its_sha256(board, omniglot_root, capsys, plugin):
    stored = board / "checkpoints" / SUITE / f"{ENTRY}.pt"
    weights = torch.load(stored, weights_only=True)
    torch.save({k: v + 1 for k, v in weights.items()}, stored)
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "has sha256" in capsys.readouterr().out
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    output = capsys.readouterr().out
    (row,) = mismatches(output)
    assert row.split()[:3] == ["–", "checkpoint", "sha256"]
    assert "(%)" not in output


def test_an_entry_file_in_the_wrong_place_is_invalid(board, omniglot_root, capsys):
    entry_path(board).rename(entry_path(board, "renamed"))
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert f"the file must be entries/{SUITE}/{ENTRY}.json" in capsys.readouterr().out


@pytest.mark.parametrize("reference, complaint", [("..", "entry name"), (f"{SUITE}/..", "entry name"),
                                                   ("../../etc/passwd", "unknown suite")])
def test_verify_refuses_unsafe_references(reference, complaint, board, omniglot_root, capsys):
    assert leaderboard(board, omniglot_root, "verify", reference) == 2
    assert complaint in capsys.readouterr().err


# --- ranks --------------------------------------------------------------------------------

def test_methods_whose_intervals_do_not_separate_share_a_rank():
    separated = [(0.5, 0.01), (0.9, 0.01), (0.7, 0.01)]
    assert shared_ranks(separated) == [3, 1, 2]
    overlapping = [(0.90, 0.02), (0.89, 0.02), (0.80, 0.01), (0.795, 0.01)]
    assert shared_ranks(overlapping) == [1, 1, 3, 3]
    assert shared_ranks([]) == []


# --- citations ----------------------------------------------------------------------------

def bibtex_keys(text: str) -> list[str]:
    return re.findall(r"^@\w+\{([^,]+),", text, re.MULTILINE)


def test_cite_prints_the_suite_its_data_and_the_models_papers(omniglot_root, capsys):
    assert bench_main(["--cite", SUITE, "--models", "ntm,dnc,maml", "--data-root", str(omniglot_root)]) == 0
    text = capsys.readouterr().out
    keys = bibtex_keys(text)
    assert keys[0].startswith("fewshotmem_") and len(keys) == len(set(keys))
    assert {"santoro2016", "lake2015", "graves2014", "graves2016", "finn2017", "arnold2020"} <= set(keys)
    suite = get_suite(SUITE)
    assert SUITE in text and suite.fingerprint(load_pools(suite, omniglot_root, progress=False)["test"]) in text
    assert text.count("{") == text.count("}")


def test_cite_defaults_to_the_models_with_results(result_path, omniglot_root, capsys, plugin):
    out = result_path.parent.parent.parent
    assert bench_main(["--cite", SUITE, "--out", str(out), "--data-root", str(omniglot_root)]) == 0
    keys = bibtex_keys(capsys.readouterr().out)
    assert "cover1967" in keys and "graves2016" not in keys  # the plug-in's own entry, no other model's
    assert bench_main(["--cite", SUITE, "--out", str(out / "none"), "--data-root", str(omniglot_root)]) == 0
    assert {"graves2014", "graves2016", "hochreiter1997", "finn2017", "snell2017"} <= set(
        bibtex_keys(capsys.readouterr().out))


def test_cite_of_an_unknown_suite_lists_the_valid_ones(capsys):
    assert bench_main(["--cite", "omniglot-7way"]) == 2
    assert "available: omniglot-5way@1" in capsys.readouterr().err


def test_citation_cff_names_this_version():
    text = (REPO / "CITATION.cff").read_text()
    assert re.search(rf'^version: "?{re.escape(__version__)}"?$', text, re.MULTILINE)
    assert "fewshot-mem developers" in text
