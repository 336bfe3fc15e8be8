"""Strict verify: the per-episode values themselves are compared, within a documented
tolerance for another machine's float rounding; `verify --all`, the verification record that
render shows, and how a bare entry name is resolved."""

from __future__ import annotations

import json
import random
import re
import shutil

import numpy as np
import pytest
from leaderboard_fixtures import (ENTRY, SUITE, board, edit_entry, entry_path, leaderboard, mismatches,  # noqa: F401
                                  plugin, pristine_board, result_path)

from fewshot_mem.evaluate import Estimate
from fewshot_mem.leaderboard import find_entry
from fewshot_mem.leaderboard.validate import table_problems
from fewshot_mem.leaderboard.verify import EXACT, Tolerance, compare_episodes

ONLINE_PREDICTIONS = 5  # a 5-way sequence: one prediction per class at each instance position


def rewrite(table: dict, key: str, values: list[float]) -> None:
    """Per-episode values with the estimates they give, so `validate` has nothing to say about them."""
    table["per_episode"][key] = values
    table["estimates"][key] = vars(Estimate.from_samples(np.array(values, dtype=np.float64)))


def shuffled(values: list[float]) -> list[float]:
    shuffled = list(values)
    random.Random(0).shuffle(shuffled)
    assert shuffled != values  # else the test proves nothing
    return shuffled


def moved(values: list[float], episodes: int, by: float) -> list[float]:
    """The first ``episodes`` values that can move by ``by`` (staying in [0, 1]), moved."""
    changed, left = list(values), episodes
    for index, value in enumerate(values):
        if left and 0 <= value + by <= 1:
            changed[index], left = value + by, left - 1
    return changed


def online_instance_2(entry: dict) -> dict:
    return entry["result"]["tables"]["online"]


def test_shuffled_per_episode_values_pass_validation_but_fail_verify(board, omniglot_root, capsys, plugin):
    """Fails without strict verify: a shuffle keeps every mean and CI."""
    edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2",
                                        shuffled(online_instance_2(e)["per_episode"]["instance_2"])))
    assert leaderboard(board, omniglot_root, "validate") == 0
    capsys.readouterr()
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    (row,) = mismatches(capsys.readouterr().out)
    assert row.split()[:4] == ["online", "instance_2", "episodes", "that"]


def test_values_nudged_by_a_tenth_of_a_point_fail_validate_and_verify(board, omniglot_root, capsys, plugin):
    """+0.099 percentage points on every value (estimates made to match): off the grid of whole
    predictions for validate, and every episode differs for verify."""
    for table in ("online", "5-way-1-shot"):
        key = "instance_2" if table == "online" else table
        edit_entry(board, lambda e: rewrite(e["result"]["tables"][table], key,
                                            [min(v + 0.00099, 1.0) for v in e["result"]["tables"][table]
                                             ["per_episode"][key]]))
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "values are not a whole number of 5 predictions right" in capsys.readouterr().out
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    rows = [row.split()[:2] for row in mismatches(capsys.readouterr().out)]
    assert ["online", "instance_2"] in rows and ["5-way-1-shot", "episodes"] in rows


def test_another_machine_may_flip_a_few_predictions_but_no_more(board, omniglot_root, capsys, plugin):
    """The documented tolerance: up to 0.5% of a table's episodes (5 of 1,000), one prediction each."""
    one_prediction = 1 / ONLINE_PREDICTIONS

    def flip(episodes: int):
        edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2",
                                            moved(original, episodes, one_prediction)))

    original = json.loads(entry_path(board).read_text())["result"]["tables"]["online"]["per_episode"]["instance_2"]
    flip(5)
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 0
    assert re.search(r"\b5 of [0-9,]+ per-episode values differ, by at most 1 prediction\b", capsys.readouterr().out)
    assert leaderboard(board, omniglot_root, "verify", ENTRY, "--exact") == 1
    capsys.readouterr()
    flip(6)
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    assert leaderboard(board, omniglot_root, "verify", ENTRY, "--max-differing", "0.01") == 0
    capsys.readouterr()
    edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2", moved(original, 1, 2 * one_prediction)))
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1  # two predictions off in one episode


def test_episode_comparison():
    same = compare_episodes([0.2, 0.4], [0.2, 0.4], 5)
    assert (same.differing, same.most_off) == (0, 0.0) and same.within(EXACT)
    one = compare_episodes([0.2, 0.4], [0.2, 0.6], 5)
    assert one.differing == 1 and round(one.most_off) == 1 and not one.within(EXACT)
    assert not one.within(Tolerance(0.005)) and one.within(Tolerance(0.5))  # 1 of 2 episodes is 50%
    assert compare_episodes([0.2], [0.2, 0.4], 5).differing == 2  # a list of another length differs whole
    assert compare_episodes(None, [0.2], 5).differing == 1
    # lag buckets: an episode with no step in a bucket has no value (None), equal only to None
    missing = compare_episodes([None, 0.5], [None, 0.5], 1)
    assert (missing.differing, missing.most_off) == (0, 0.0)
    assert compare_episodes([None, 0.5], [0.5, 0.5], 1).most_off == float("inf")


def test_episodes_cut_short_are_compared_and_validated_in_their_own_predictions():
    """Episodes of 100 steps (omniglot-15way-strings@2) show a class a varying number of times:
    each episode's value at a position averages its own count of predictions, and an episode that
    shows no class that often has no value. Verify counts how far a value moved in that episode's
    predictions; validate wants a value exactly where there are predictions, on that episode's grid."""
    counts = np.array([7, 3, 0, 15])  # predictions behind each episode's value
    two_of_seven = compare_episodes([3 / 7, 1 / 3, None, 0.4], [5 / 7, 1 / 3, None, 0.4], counts)
    assert two_of_seven.differing == 1 and round(two_of_seven.most_off) == 2
    assert round(compare_episodes([3 / 7, 1 / 3, None, 0.4], [3 / 7, 2 / 3, None, 0.4], counts).most_off) == 1
    assert Tolerance().estimate_bound(4, counts) == pytest.approx(Tolerance().estimate_bound(4, 3))

    values = [3 / 7, 1 / 3, None, 0.4]
    table = {"protocol": "online", "per_episode": {"instance_2": values},
             "estimates": {"instance_2": vars(Estimate.from_samples(np.array([3 / 7, 1 / 3, 0.4])))}}
    assert table_problems("online", table, ("instance_2",), 4, {"instance_2": counts}) == []
    for wrong, complaint in (([3 / 7, 1 / 3, 0.5, 0.4], "exactly the episodes"),
                             ([3 / 7, None, None, 0.4], "exactly the episodes"),
                             ([3 / 7, 0.4, None, 0.4], "not a whole number")):  # 0.4 is no k / 3
        table["per_episode"]["instance_2"] = wrong
        assert complaint in " ".join(table_problems("online", table, ("instance_2",), 4, {"instance_2": counts}))


def lag_table(entry: dict) -> dict:
    return entry["result"]["forgetting"]["online-lag"]


def test_verify_compares_the_stored_lag_table_too(board, omniglot_root, capsys, plugin):
    """Fails without the lag comparison: the suite's tables are untouched, only the stored
    accuracy by lag is shuffled (estimates kept, so only the per-episode values tell)."""
    def shuffle_lag(entry: dict) -> None:
        table = lag_table(entry)
        key = max(table["per_episode"], key=lambda k: sum(v is not None for v in table["per_episode"][k]))
        table["per_episode"][key] = shuffled(table["per_episode"][key])

    edit_entry(board, shuffle_lag)
    capsys.readouterr()
    assert leaderboard(board, omniglot_root, "verify", ENTRY) == 1
    rows = mismatches(capsys.readouterr().out)
    assert rows and all(row.split()[0] == "online-lag" for row in rows)


def test_the_bench_shows_the_entrys_lag_table_without_measuring_it(board, omniglot_root, plugin):
    """The default run re-measures the suite's tables only (``forgetting=False``): a damaged lag
    table is caught by `leaderboard verify`, not by the bench."""
    from fewshot_mem.leaderboard.verify import verify

    edit_entry(board, lambda e: lag_table(e)["per_episode"].update(
        {k: shuffled(v) for k, v in list(lag_table(e)["per_episode"].items())[:1]}))
    quick = verify(entry_path(board), board, data_root=omniglot_root, forgetting=False)
    assert quick.ok and not quick.forgetting
    full = verify(entry_path(board), board, data_root=omniglot_root)
    assert not full.ok and "online-lag" in full.forgetting


def test_verify_all_gives_one_line_per_entry_and_fails_when_one_differs(board, omniglot_root, capsys, plugin):
    other = entry_path(board, "nn2")
    entry = json.loads(entry_path(board).read_text())
    entry["entry"], entry["checkpoint"]["path"] = "nn2", f"checkpoints/{SUITE}/nn2.pt"
    other.write_text(json.dumps(entry))
    shutil.copy(board / "checkpoints" / SUITE / f"{ENTRY}.pt", board / "checkpoints" / SUITE / "nn2.pt")
    unstored = dict(entry, entry="nn3", checkpoint={**entry["checkpoint"], "path": f"checkpoints/{SUITE}/nn3.pt"})
    entry_path(board, "nn3").write_text(json.dumps(unstored))
    assert leaderboard(board, omniglot_root, "verify", "--all") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["ok", f"{SUITE}/nn:"], ["ok", f"{SUITE}/nn2:"], ["skipped", f"{SUITE}/nn3:"]]
    assert "bit-identical" in lines[0] and lines[-1].startswith("3 entries: 2 ok, 0 differs, 0 error, 1 skipped")
    edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2",
                                        shuffled(online_instance_2(e)["per_episode"]["instance_2"])))
    assert leaderboard(board, omniglot_root, "verify", "--all") == 1
    assert capsys.readouterr().out.splitlines()[0].startswith(f"DIFFERS   {SUITE}/nn: ")


def test_a_recorded_verification_shows_on_the_board_until_the_results_change(board, omniglot_root, capsys, plugin):
    assert leaderboard(board, omniglot_root, "render") == 0
    assert "| unverified |" in (board / "README.md").read_text()
    assert leaderboard(board, omniglot_root, "verify", ENTRY, "--record") == 0
    record = json.loads(entry_path(board).read_text())["verification"]
    assert record["differing_episodes"] == 0 and len(record["commit"]) >= 7 and record["seconds"] > 0
    assert leaderboard(board, omniglot_root, "render") == 0
    readme = (board / "README.md").read_text()
    assert f"| verified {record['date']}, commit {record['commit'][:7]} |" in readme
    assert f"verified {record['date']}" in (board / "index.html").read_text()
    edit_entry(board, lambda e: e.__setitem__("submitter", "Someone Else"))  # who submitted is not what was verified
    assert leaderboard(board, omniglot_root, "validate") == 0
    capsys.readouterr()
    edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2",
                                        shuffled(online_instance_2(e)["per_episode"]["instance_2"])))
    assert leaderboard(board, omniglot_root, "validate") == 2
    assert "entry.verification is the record of other results" in capsys.readouterr().out


def test_a_failed_verification_records_nothing(board, omniglot_root, plugin):
    edit_entry(board, lambda e: rewrite(online_instance_2(e), "instance_2",
                                        shuffled(online_instance_2(e)["per_episode"]["instance_2"])))
    before = entry_path(board).read_bytes()
    assert leaderboard(board, omniglot_root, "verify", ENTRY, "--record") == 1
    assert entry_path(board).read_bytes() == before


def test_a_bare_name_means_the_default_suite_first(board):
    """The README's `verify protonet-quick` must not be ambiguous when that name is in several suites."""
    for suite in ("omniglot-5way-1shot@2", "omniglot-20way-1shot@2"):
        (board / "entries" / suite).mkdir()
        shutil.copy(entry_path(board), board / "entries" / suite / f"{ENTRY}.json")
    assert find_entry(board, ENTRY) == entry_path(board)
    assert find_entry(board, f"omniglot-5way-1shot@2/{ENTRY}").parent.name == "omniglot-5way-1shot@2"
    entry_path(board).unlink()
    with pytest.raises(Exception, match="ambiguous.*suite@version/entry"):
        find_entry(board, ENTRY)
