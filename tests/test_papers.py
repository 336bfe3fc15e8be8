"""The Results section: the papers' figures beside the leaderboard's, and the README kept equal to it."""

from __future__ import annotations

import copy
from pathlib import Path

from fewshot_mem import papers
from fewshot_mem.models.registry import BUILTIN_MODELS
from fewshot_mem.suites import get_suite

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _entry(name: str, model: str, suite: str, means: dict[str, dict[str, float]], **result) -> dict:
    tables = {table: {"protocol": "online" if table == "online" else "episodic",
                      "estimates": {k: {"mean": m, "ci95": 0.012, "episodes": 1000} for k, m in estimates.items()},
                      "per_episode": {}} for table, estimates in means.items()}
    base = {"suite": suite, "model": model, "budget": "quick", "seed": 0, "trained_steps": 750, "best_step": 600,
            "training": {"episodes": 12_000, "batch_size": 16}, "train_seconds": 85.0,
            "hardware": {"processor": "x86_64", "cpu_threads": 2, "processes": 1}, "tables": tables,
            "learning_curve": [{"episodes": 4800, "validation_score": 0.3, "validation_instance_2": 0.25},
                               {"episodes": 9600, "validation_score": 0.5, "validation_instance_2": 0.61}]}
    return {"entry": name, "result": {**base, **result}}


ONLINE = {"online": {f"instance_{p}": p / 100 for p in (1, 2, 3, 4, 5, 10)}}


def test_every_comparison_names_real_suites_and_models_with_one_figure_per_column():
    for comparison in papers.COMPARISONS:
        for row in comparison.rows:
            assert row.model in BUILTIN_MODELS
            columns = papers.statistics(row.suite, row.protocol)
            assert len(columns) == (len(comparison.columns) if len(comparison.columns) > 1 else 1)
            assert get_suite(row.suite).id == row.suite
            assert row.published is None or len(row.published) == len(comparison.columns)


def test_our_rows_come_from_the_entries_with_their_cost_and_command():
    entries = [_entry("mann-quick", "mann", "omniglot-5way@1", ONLINE),
               _entry("mann-paper", "mann", "omniglot-5way@1", ONLINE, budget="paper", trained_steps=20_000,
                      best_step=20_000, training={"episodes": 1_600_000, "batch_size": 16}, train_seconds=7200.0,
                      hardware={"processor": "x86_64", "cpu_threads": 1})]
    table = papers.comparison_table(papers.COMPARISONS[0], entries)
    lines = table.splitlines()
    paper = next(line for line in lines if "MANN (LRUA) | paper" in line)
    assert "| 36.4 | 82.8 | 91.0 | 92.6 | 94.9 | 98.1 | 100,000 steps × 16 = 1,600,000 episodes |" in paper
    quick, long = (next(line for line in lines if f"`mann-{b}`" in line) for b in ("quick", "paper"))
    assert lines.index(quick) < lines.index(long)  # by training episodes
    assert "| 1.0 ± 1.2 | 2.0 ± 1.2 | 3.0 ± 1.2 | 4.0 ± 1.2 | 5.0 ± 1.2 | 10.0 ± 1.2 |" in quick
    assert "quick: 750 steps × 16 = 12,000 episodes (best at step 600) | 85 s | x86_64 CPU, 2 threads" in quick
    assert "`python -m fewshot_mem.bench --suite omniglot-5way@1 --models mann --budget quick`" in quick
    assert "paper: 20,000 of 100,000 steps × 16 = 320,000 episodes | 2.0 h | x86_64 CPU, 1 thread |" in long  # cut short
    assert "LSTM | paper" in table and "ours: `lstm" not in table  # no entry, no row of ours
    assert "DNC" not in table  # neither a paper figure nor an entry


def test_a_few_shot_row_reads_its_suites_only_table():
    means = {"20-way-5-shot": {"20-way-5-shot": 0.987}}
    entry = _entry("protonet-quick", "protonet", "omniglot-20way-5shot@2", means, hardware={"gpu": "H100",
                   "processor": "x86_64", "cpu_threads": 16})
    row = next(r for r in papers.comparison_rows(papers.COMPARISONS[2], [entry]) if "ours" in r[2])
    assert row[:4] == ["ProtoNet", "Omniglot 20-way 5-shot, 28x28", "ours: `protonet-quick`", "98.7 ± 1.2"]
    assert row[6] == "H100"


def test_a_row_of_a_suite_with_both_protocols_reads_the_table_its_paper_reports():
    """mini-ImageNet suites have an online table too; Ravi & Larochelle's figures are episodic, so
    our meta-LSTM row shows the 5-way 1-shot estimate, not the instance positions."""
    means = {**ONLINE, "5-way-1-shot": {"5-way-1-shot": 0.434}}
    entry = _entry("meta-lstm-quick", "meta-lstm", "miniimagenet-5way-1shot@1", means)
    ravi = next(c for c in papers.COMPARISONS if c.key == "ravi-miniimagenet")
    row = next(r for r in papers.comparison_rows(ravi, [entry]) if "ours" in r[2])
    assert row[2:4] == ["ours: `meta-lstm-quick`", "43.4 ± 1.2"]


def test_learning_curves_plot_the_second_instance_online(tmp_path):
    entries = [_entry("mann-quick", "mann", "omniglot-5way@1", ONLINE)]
    curves = papers.learning_curves(papers.COMPARISONS[0], entries)
    assert curves == {"MANN (LRUA): mann-quick": [(4800, 0.25), (9600, 0.61)]}
    plots = papers.draw_learning_curves(entries, tmp_path)
    assert list(plots) == ["santoro-table1"] and Path(plots["santoro-table1"]).stat().st_size > 10_000
    section = papers.results_section(entries, plots)
    assert f"![learning curves]({plots['santoro-table1']})" in section


def test_each_few_shot_suite_gets_its_own_learning_curve():
    """Entries of the same name in different suites are different lines."""
    entries = [_entry("protonet-quick", "protonet", suite, {},
                      learning_curve=[{"episodes": 200, "validation_score": s}])
               for suite, s in (("omniglot-5way-1shot@2", 0.5), ("omniglot-20way-5shot@2", 0.7))]
    curves = papers.learning_curves(papers.COMPARISONS[2], entries)
    assert sorted(curves.values()) == [[(200, 0.5)], [(200, 0.7)]]
    assert any("5-way 1-shot" in label for label in curves), curves


def test_a_curve_is_labelled_in_plain_text_where_the_table_shows_code():
    """Table 2 spans two suites: its rows name the suite as Markdown code, its plot's legend as text."""
    entries = [_entry("mann-quick", "mann", "omniglot-15way-strings@1", ONLINE)]
    table2 = papers.COMPARISONS[1]
    assert "`omniglot-15way-strings@1`" in papers.comparison_table(table2, entries)
    (label,) = papers.learning_curves(table2, entries)
    assert "omniglot-15way-strings@1" in label and "`" not in label


def test_an_entry_without_a_curve_draws_nothing(tmp_path):
    entry = _entry("mann-quick", "mann", "omniglot-5way@1", ONLINE)
    del entry["result"]["learning_curve"]
    assert papers.draw_learning_curves([entry], tmp_path) == {} and not list(tmp_path.iterdir())


def test_the_readme_results_section_is_what_the_leaderboard_gives():
    entries = papers.load_entries(ROOT / "leaderboard")
    readme = (ROOT / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "README lost its Results markers"
    shown = readme.split(BEGIN)[1].split(END)[0].strip()
    expected = papers.results_section(entries, papers.plot_paths(entries, Path("docs"))).strip()
    assert shown == expected, "README's Results differ: run `python -m fewshot_mem.papers --plots docs`"
    for path in papers.plot_paths(entries, Path("docs")).values():
        assert (ROOT / path).exists(), f"{path} is not drawn: run `python -m fewshot_mem.papers --plots docs`"


def test_the_section_follows_the_entries():
    entries = [_entry("mann-quick", "mann", "omniglot-5way@1", ONLINE)]
    changed = copy.deepcopy(entries)
    changed[0]["result"]["tables"]["online"]["estimates"]["instance_2"]["mean"] = 0.828
    assert "82.8 ± 1.2" in papers.results_section(changed) and "82.8 ± 1.2" not in papers.results_section(entries)


def test_the_forgetting_table_holds_the_entries_that_stored_a_lag_table():
    lag = {"online-lag": {"estimates": {"lag_1": {"mean": 0.9, "ci95": 0.01}, "lag_2-3": {"mean": 0.8, "ci95": 0.02}}}}
    entries = [_entry("mann-paper", "mann", "omniglot-5way@1", ONLINE, forgetting=lag),
               _entry("lstm-quick", "lstm", "omniglot-5way@1", ONLINE)]  # an older entry: no lag table
    table = papers.forgetting_table(papers.COMPARISONS[0], entries)
    assert "| entry | 1 | 2-3 |" in table
    assert "| MANN (LRUA): `mann-paper` | 90.0 ± 1.0 | 80.0 ± 2.0 |" in table
    assert "lstm-quick" not in table
    assert papers.forgetting_table(papers.COMPARISONS[0], entries[1:]) is None  # nothing to show, no table


def test_forgetting_rows_name_their_suite_where_a_comparison_spans_several():
    lag = {"online-lag": {"estimates": {"lag_1": {"mean": 0.9, "ci95": 0.01}}}}
    table2 = next(c for c in papers.COMPARISONS if len({r.suite for r in c.rows}) > 1)
    ntm_rows = [r for r in table2.rows if r.model == "ntm"]
    entries = [_entry("ntm-paper", "ntm", row.suite, ONLINE, forgetting=lag) for row in ntm_rows]
    lines = [line for line in papers.forgetting_table(table2, entries).splitlines() if "`ntm-paper`" in line]
    assert len(lines) == len(ntm_rows) > 1
    for row, line in zip(ntm_rows, lines):
        assert line.startswith(f"| MANN (NTM addressing), `{row.suite}`, {get_suite(row.suite).online_steps} steps: ")
