"""The leaderboard under hostile or unlucky input (issue 20): no reads outside the board, no
tracebacks for bad hyper-parameters, no import before the checks, one winner of two concurrent
submits, every unreadable entry reported, no hidden characters, a clear word on empty weights.
Each test failed before its fix."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import threading

import pytest
from leaderboard_fixtures import (ENTRY, SUITE, board, edit_entry, entry_path, files_under,  # noqa: F401
                                  leaderboard, plugin, pristine_board, result_path)

from fewshot_mem.leaderboard import LeaderboardError, submit

submit_module = importlib.import_module("fewshot_mem.leaderboard.submit")  # the package's `submit` is the function


def stored(root):
    return root / "checkpoints" / SUITE / f"{ENTRY}.pt"


def outside_copy(board, tmp_path):
    """The entry's own weights, copied outside the board: the sha256 still matches."""
    outside = tmp_path / "outside" / "weights.pt"
    outside.parent.mkdir()
    shutil.copy(stored(board), outside)
    return outside


@pytest.mark.parametrize("where", ["absolute", "climbing", "another entry's"])
def test_verify_reads_no_checkpoint_but_the_entrys_own(where, board, omniglot_root, tmp_path, capsys, plugin):
    outside = outside_copy(board, tmp_path)
    path = {"absolute": str(outside), "climbing": "../outside/weights.pt",
            "another entry's": f"checkpoints/{SUITE}/other.pt"}[where]
    if where == "another entry's":
        shutil.copy(stored(board), board / path)
    edit_entry(board, lambda e: e["checkpoint"].__setitem__("path", path))
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 2
    captured = capsys.readouterr()
    assert "is not the entry's own location" in captured.err and "nothing was opened" in captured.err
    assert "sha256" not in captured.out  # nothing was hashed, let alone loaded


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_verify_and_validate_follow_no_symbolic_link(linked, board, omniglot_root, tmp_path, capsys, plugin):
    outside = outside_copy(board, tmp_path)
    if linked == "file":
        stored(board).unlink()
        stored(board).symlink_to(outside)
    else:
        shutil.rmtree(stored(board).parent)
        stored(board).parent.symlink_to(outside.parent)
        (outside.parent / f"{ENTRY}.pt").write_bytes(outside.read_bytes())
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "is a symbolic link" in capsys.readouterr().out


@pytest.mark.parametrize("model, hyperparameters", [
    ("my_model.learner:NearestNeighbourLearner", {"bogus": 1}),
    ("my_model.learner:NearestNeighbourLearner", {"temperature": "big"}),
    ("lstm", {"controller_size": "big"}),
])
def test_bad_hyperparameters_are_bad_input_not_a_mismatch(model, hyperparameters, board, omniglot_root, capsys,
                                                         plugin):
    """rc 1 means a verified difference; these exited 1 with a TypeError traceback."""
    edit_entry(board, lambda e: e["result"].update(model=model, hyperparameters=hyperparameters))
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 2
    assert f"result.hyperparameters {hyperparameters} do not build {model}" in capsys.readouterr().err
    assert leaderboard(board, omniglot_root, "verify", "--all") == 2
    assert capsys.readouterr().out.startswith(f"ERROR     {SUITE}/{ENTRY}: result.hyperparameters")


def test_submit_of_bad_hyperparameters_exits_2_and_writes_nothing(result_path, omniglot_root, tmp_path, capsys,
                                                                 plugin):
    result = json.loads(result_path.read_text())
    result["hyperparameters"] = {"bogus": 1}
    (tmp_path / "result.json").write_text(json.dumps(result))
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(tmp_path / "result.json")) == 2
    assert "do not build" in capsys.readouterr().err
    assert not files_under(tmp_path / "board")


def test_submit_imports_nothing_before_the_checks_that_need_no_import(result_path, omniglot_root, tmp_path,
                                                                     monkeypatch, capsys):
    marker = tmp_path / "imported"
    package = tmp_path / "site"
    package.mkdir()
    (package / "side_effect_model.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(package))
    result = json.loads(result_path.read_text())
    result["model"] = "side_effect_model:Model"
    (tmp_path / "result.json").write_text(json.dumps(result))
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(tmp_path / "result.json"),
                       "--paper", "javascript:alert(1)") == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert not marker.exists()


def test_of_two_concurrent_submits_of_one_name_exactly_one_wins(result_path, omniglot_root, tmp_path, monkeypatch,
                                                               plugin):
    """Both pass the 'already there?' check before either writes (a barrier holds them there)."""
    root, barrier = tmp_path / "board", threading.Barrier(2, timeout=60)
    load_weights = submit_module.load_weights

    def after_the_check(*args):
        barrier.wait()
        return load_weights(*args)

    outcomes = {}

    def attempt(submitter: str) -> None:
        try:
            outcomes[submitter] = submit(result_path, root, name=ENTRY, submitter=submitter, data_root=omniglot_root)
        except LeaderboardError as error:
            outcomes[submitter] = error

    submit(result_path, tmp_path / "warm", name=ENTRY, data_root=omniglot_root)  # loads the suite once
    monkeypatch.setattr(submit_module, "load_weights", after_the_check)
    threads = [threading.Thread(target=attempt, args=(who,)) for who in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [who for who, outcome in outcomes.items() if not isinstance(outcome, Exception)]
    (loser,) = set(outcomes) - set(winners)
    assert len(winners) == 1 and "already on the leaderboard" in str(outcomes[loser])
    entry = json.loads(entry_path(root).read_text())
    assert entry["submitter"] == winners[0]
    assert hashlib.sha256(stored(root).read_bytes()).hexdigest() == entry["checkpoint"]["sha256"]
    assert [p.name for p in entry_path(root).parent.iterdir()] == [f"{ENTRY}.json"]  # no staging left behind


def test_validate_reports_every_unreadable_entry(board, omniglot_root, capsys):
    for name in ("broken", "empty"):
        entry_path(board, name).write_text("{not json" if name == "broken" else "")
    assert leaderboard(board, omniglot_root, "validate") == 2
    output = capsys.readouterr().out
    assert f"INVALID  {entry_path(board, 'broken')}" in output and f"INVALID  {entry_path(board, 'empty')}" in output
    assert f"ok  {entry_path(board)}" in output and "3 entries, 2 invalid" in output


@pytest.mark.parametrize("option, value, complaint", [
    ("--name", "-rf", "entry name"),
    ("--paper", "https://example.org/\u202efdp.exe", "http(s) URL"),
    ("--code", "https://example.org/a\x07b", "http(s) URL"),
    ("--code", "https://example.org/\u2066x", "http(s) URL"),
    ("--submitter", "Eve \u202eevil", "bidirectional-override"),
])
def test_submit_refuses_hidden_characters_and_option_like_names(option, value, complaint, result_path,
                                                               omniglot_root, tmp_path, capsys):
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(result_path), f"{option}={value}") == 2
    assert complaint in capsys.readouterr().err
    assert not files_under(tmp_path / "board")


def test_an_empty_checkpoint_gets_a_reason(result_path, omniglot_root, tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    assert leaderboard(tmp_path / "board", omniglot_root, "submit", str(result_path), "--checkpoint",
                       str(tmp_path / "empty.pt")) == 2
    assert "empty.pt is empty (0 bytes)" in capsys.readouterr().err
    assert not files_under(tmp_path / "board")

