"""The papers' tables beside ours: the README's Results section, built from the leaderboard.

    python -m fewshot_mem.papers [--leaderboard leaderboard] [--plots docs] [--readme README.md]

Each comparison names the suite and model of every row and the figures its paper
published; our rows are the leaderboard's entries for that suite and model, so every
number printed comes from a committed results JSON that ``leaderboard verify`` can
re-measure. Rows say what each number cost: training steps and episodes, wall-clock time,
hardware, and the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .evaluate import INSTANCE_POSITIONS
from .leaderboard import DEFAULT_ROOT, entry_files, read_json
from .models.registry import model_label
from .paths import write_atomically
from .report import (budget_text, lag_rows, markdown_table, ordinal, plot_learning_curves, training_hardware,
                     training_time)
from .results import ONLINE_TABLE, episodic_key, format_estimate, instance_key, trained_episodes
from .suites import get_suite

@dataclass(frozen=True)
class PaperRow:
    model: str  # a registered model name
    suite: str  # suite id
    published: tuple[float, ...] | None  # the paper's figures (%), in column order; None: not in the paper
    paper_budget: str | None = None  # the row's training budget where it is not the comparison's
    protocol: str | None = None  # the table the figures are of, where the suite has both: "episodic"


@dataclass(frozen=True)
class Comparison:
    key: str
    title: str
    source: str  # who published the figures
    columns: tuple[str, ...]
    rows: tuple[PaperRow, ...]
    note: str = ""
    paper_budget: str = "–"  # the paper's training budget, where it says


# Santoro et al.'s "100,000 episodes", read as optimizer steps on batches of 16 (see budgets.py)
SANTORO_BUDGET = "100,000 steps × 16 = 1,600,000 episodes"
_SANTORO_COLUMNS = tuple(ordinal(p) for p in INSTANCE_POSITIONS)
_FEW_SHOT = (("omniglot-5way-1shot@2", "5-way 1-shot"), ("omniglot-5way-5shot@2", "5-way 5-shot"),
             ("omniglot-20way-1shot@2", "20-way 1-shot"), ("omniglot-20way-5shot@2", "20-way 5-shot"))
_SNELL = (98.8, 99.7, 96.0, 98.9)  # Snell et al. (2017), Table 1
_FINN = (98.7, 99.9, 95.8, 98.9)  # Finn et al. (2017), Table 1
_RAJESWARAN = (99.50, 99.74, 96.18, 99.14)  # Rajeswaran et al. (2019), Table 2, iMAML Hessian-free
_RAJESWARAN_MINIIMAGENET = 49.30  # ± 1.88, Rajeswaran et al. (2019), Table 3, iMAML Hessian-free

_TABLE2 = "omniglot-15way-strings@2"  # the paper's 100-step episodes

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"  # the README's generated section

COMPARISONS = (
    Comparison(
        "santoro-table1", "Santoro et al. (2016), Table 1: Omniglot, 5 classes, one-hot labels",
        "Santoro et al. (2016) report MANN and LSTM after 100,000 episodes (of 16 sequences each, as we read it)", _SANTORO_COLUMNS,
        (PaperRow("mann", "omniglot-5way@1", (36.4, 82.8, 91.0, 92.6, 94.9, 98.1)),
         PaperRow("mann-add", "omniglot-5way@1", None),  # our faster reading of MANN's write (see the ablation)
         PaperRow("mann-add-key-strength", "omniglot-5way@1", None),  # Table 2's reading (README), on Table 1
         PaperRow("lstm", "omniglot-5way@1", (24.4, 49.5, 55.3, 61.0, 63.6, 62.5)),
         PaperRow("ntm", "omniglot-5way@1", None), PaperRow("dnc", "omniglot-5way@1", None),
         PaperRow("maml", "omniglot-5way@1", None), PaperRow("protonet", "omniglot-5way@1", None),
         PaperRow("knn-pixels", "omniglot-5way@1", None), PaperRow("knn-features", "omniglot-5way@1", None)),
        "Accuracy (%) by instance position on the suite's 1,000 frozen test episodes, ± 95% CI. MAML and "
        "ProtoNet take part by adapting on the labelled prefix, and the kNN baselines by taking it as their "
        "training set (see the online protocol above).", SANTORO_BUDGET),
    Comparison(
        "santoro-table2", "Santoro et al. (2016), Table 2: Omniglot, 15 classes, five-character string labels",
        "Santoro et al. (2016), Table 2, 15 classes, LSTM controllers", _SANTORO_COLUMNS,
        (PaperRow("mann", _TABLE2, (0.1, 62.6, 79.3, 86.6, 88.7, 95.3)),
         PaperRow("mann-add", _TABLE2, None),
         PaperRow("mann-add-key-strength", _TABLE2, None),  # the reading that learns Table 2 (README)
         PaperRow("ntm", _TABLE2, (0.0, 35.4, 61.2, 71.7, 77.7, 88.4)),
         # Not verified against the paper: quoted from a secondary summary of Table 2.
         PaperRow("knn-pixels", _TABLE2, (0.5, 18.7, 23.3, 26.5, 29.1, 37.0), "–"),
         PaperRow("knn-features", _TABLE2, (0.4, 32.7, 41.2, 47.1, 50.6, 60.0), "–"),
         # version 1's 150-step episodes: our entries on it, beside the paper's protocol, not in its place
         *(PaperRow(model, "omniglot-15way-strings@1", None) for model in ("mann", "mann-add", "ntm", "knn-pixels"))),
        "A label is right when all five characters are. The paper's figures stand beside version 2, whose "
        "episodes have the paper's 100 steps; version 1's have 15 x 10 = 150 (see Benchmark). MANN (NTM "
        "addressing) is the `ntm` model at Santoro's size (200 LSTM units, 128 x 40 memory, 4 heads). The kNN "
        "rows' figures are Table 2's as quoted by a secondary summary, not verified against the paper; Santoro's "
        "deep features came from an autoencoder, ours (`knn-features`) from a Conv-4 embedding trained as "
        "ProtoNet.", SANTORO_BUDGET),
    Comparison(
        "fewshot-omniglot", "Snell et al. (2017) and Finn et al. (2017): Omniglot N-way K-shot, 28 x 28",
        "ProtoNets: Snell et al. (2017), Table 1; MAML: Finn et al. (2017), Table 1; iMAML: Rajeswaran et al. "
        "(2019), Table 2, its Hessian-free inner solver (its gradient-descent one, which `imaml` is, reports "
        "99.16 / 99.67 / 94.46 / 98.69)", ("accuracy (%)",),
        tuple(PaperRow(model, suite, (figures[i],))
              for model, figures in (("protonet", _SNELL), ("maml", _FINN), ("imaml", _RAJESWARAN))
              for i, (suite, _) in enumerate(_FEW_SHOT))
        # Ravi & Larochelle report mini-ImageNet only: ours on Omniglot stand without a paper figure.
        + tuple(PaperRow("meta-lstm", suite, None) for suite, _ in _FEW_SHOT)),
    Comparison(
        "fewshot-miniimagenet", "Rajeswaran et al. (2019): mini-ImageNet 5-way 1-shot, 84 x 84",
        "iMAML: Rajeswaran et al. (2019), Table 3, Hessian-free inner solver: 49.30 ± 1.88", ("accuracy (%)",),
        (PaperRow("imaml", "miniimagenet-5way-1shot@1", (_RAJESWARAN_MINIIMAGENET,), protocol="episodic"),)),
    Comparison(
        "ravi-miniimagenet", "Ravi & Larochelle (2017), Table 1: mini-ImageNet 5-way, 84 x 84",
        "Meta-learner LSTM: Ravi & Larochelle (2017), Table 1", ("accuracy (%)",),
        (PaperRow("meta-lstm", "miniimagenet-5way-1shot@1", (43.44,), "75,000 episodes, one per step", "episodic"),
         PaperRow("meta-lstm", "miniimagenet-5way-5shot@1", (60.60,), "50,000 episodes, one per step", "episodic")),
        "Published: 43.44 ± 0.77 (1-shot) and 60.60 ± 0.71 (5-shot), 95% CI. Training budgets: the "
        "authors' configs (github.com/twitter/meta-learning-lstm).",
        "75,000 (1-shot) or 50,000 (5-shot) episodes, one per step"),
)


def statistics(suite_id: str, protocol: str | None = None) -> list[tuple[str, str]]:
    """(table, estimate) of each column a suite's rows fill: instance positions online (by default
    where the suite has an online table), else N-way K-shot."""
    suite = get_suite(suite_id)
    if (protocol or ("online" if "online" in suite.protocols else "episodic")) == "online":
        return [(ONLINE_TABLE, instance_key(p)) for p in INSTANCE_POSITIONS]
    return [(episodic_key(suite.ways, shots),) * 2 for shots in suite.shots]


def load_entries(root: Path) -> list[dict]:
    return [read_json(path) for path in entry_files(root)]


def _matching(entries: list[dict], row: PaperRow) -> list[dict]:
    found = [e for e in entries if e["result"]["suite"] == row.suite and e["result"]["model"] == row.model]
    return sorted(found, key=lambda e: trained_episodes(e["result"]))


def command(result: dict) -> str:
    """The bench command that reproduces a result (a custom recipe: its budget and --set changes)."""
    if not result.get("training"):
        return "trained outside the bench (fewshot_mem.evaluate)"
    seed = f" --seed {result['seed']}" if result["seed"] else ""
    overrides = result.get("overrides") or {}
    budget = result["training"]["budget"] if overrides else result["budget"]
    changes = "".join(f" --set {key}={json.dumps(value)}" for key, value in overrides.items())
    return (f"`python -m fewshot_mem.bench --suite {result['suite']} --models {result['model']} "
            f"--budget {budget}{changes}{seed}`")


def _budget_cell(result: dict) -> str:
    """"paper: 100,000 steps × 16 = 1,600,000 episodes (best at step 96,000)"; "–" for a model
    trained outside the bench."""
    if not result.get("training"):
        return "–"
    best, trained = result.get("best_step") or 0, result.get("trained_steps") or 0
    return budget_text(result) + (f" (best at step {best:,})" if best and best != trained else "")


def _our_row(entry: dict, row: PaperRow) -> list[str]:
    result = entry["result"]
    cells = []
    for table, estimate in statistics(row.suite, row.protocol):
        cells.append(format_estimate(result["tables"][table]["estimates"][estimate]))
    return cells + [_budget_cell(result), training_time(result), training_hardware(result),
                    command(result)]


def _settings(comparison: Comparison, row: PaperRow, markdown: bool = True) -> list[str]:
    """The row's setting where a comparison spans several suites: its title's last part in a
    one-column comparison ("Omniglot 5-way 1-shot, 28x28"), else its id (Markdown code, or plain
    text for a plot's legend) and episode length."""
    suite = get_suite(row.suite)
    if len(comparison.columns) == 1:
        return [suite.title.split(": ")[-1]]
    if len({r.suite for r in comparison.rows}) == 1:
        return []
    suite_id = f"`{suite.id}`" if markdown else suite.id
    return [f"{suite_id}, {suite.online_steps} steps"]


def _row_label(comparison: Comparison, row: PaperRow, markdown: bool = True) -> str:
    """The model's label, with its setting where the comparison spans suites: entries share names
    across suites, so a plot's line or a forgetting row is named by both."""
    return ", ".join([model_label(row.model), *_settings(comparison, row, markdown)])


def comparison_rows(comparison: Comparison, entries: list[dict]) -> list[list[str]]:
    rows = []
    for row in comparison.rows:
        label = model_label(row.model)
        setting = _settings(comparison, row)
        if row.published is not None:
            rows.append([label, *setting, "paper", *(f"{f:.1f}" for f in row.published),
                         row.paper_budget or comparison.paper_budget, "–", "–", "–"])
        for entry in _matching(entries, row):
            rows.append([label, *setting, f"ours: `{entry['entry']}`", *_our_row(entry, row)])
    return rows


def comparison_table(comparison: Comparison, entries: list[dict]) -> str:
    setting = ["setting"] if _settings(comparison, comparison.rows[0]) else []
    header = ["model", *setting, "source", *comparison.columns, "training budget", "training time",
              "hardware", "command"]
    return markdown_table(header, comparison_rows(comparison, entries))


def learning_curves(comparison: Comparison, entries: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Validation accuracy (2nd instance online, else the N-way K-shot score) against training episodes."""
    curves = {}
    for row in comparison.rows:
        for entry in _matching(entries, row):
            online = statistics(row.suite, row.protocol)[0][0] == ONLINE_TABLE
            key = "validation_instance_2" if online else "validation_score"
            # The axis is logarithmic: a validation before any training (0 episodes: kNN on pixels) has no place on it.
            points = [(r["episodes"], r[key]) for r in entry["result"].get("learning_curve", [])
                      if key in r and r["episodes"] > 0]
            if points:
                curves[f"{_row_label(comparison, row, markdown=False)}: {entry['entry']}"] = points
    return curves


def forgetting_table(comparison: Comparison, entries: list[dict]) -> str | None:
    """Accuracy by lag of the comparison's entries that store one (``forgetting.online-lag``), one
    row per entry, named by its setting too where the comparison spans suites (entries share
    names across suites); None where none does. The papers report no such figures."""
    rows = [(row, entry) for row in comparison.rows for entry in _matching(entries, row)]
    results = [{**entry["result"], "model": f"{_row_label(comparison, row)}: `{entry['entry']}`"} for row, entry in rows]
    header, body = lag_rows(results)
    if not body:
        return None
    return ("Forgetting: accuracy (%) by lag, the steps since the current class was last shown (first "
            "appearances left out), ± 95% CI, on the same test episodes; the papers report no such figures.\n\n"
            + markdown_table(["entry", *header[1:]], body))


def results_section(entries: list[dict], plots: dict[str, str] | None = None) -> str:
    """The Markdown of every comparison (with its forgetting table where its entries have one), and
    the learning-curve plot's path where one was drawn."""
    parts = []
    for comparison in COMPARISONS:
        parts += [f"#### {comparison.title}", "", comparison_table(comparison, entries), "",
                  f"Paper figures: {comparison.source}. {comparison.note}".rstrip()]
        forgetting = forgetting_table(comparison, entries)
        if forgetting:
            parts += ["", forgetting]
        if plots and comparison.key in plots:
            parts += ["", f"![learning curves]({plots[comparison.key]})"]
        parts.append("")
    return "\n".join(parts)


def plot_paths(entries: list[dict], folder: Path) -> dict[str, str]:
    """Where each comparison's learning-curve plot goes, for the comparisons that have curves."""
    return {c.key: (folder / f"learning-curves-{c.key}.png").as_posix()
            for c in COMPARISONS if learning_curves(c, entries)}


def draw_learning_curves(entries: list[dict], folder: Path) -> dict[str, str]:
    plots = plot_paths(entries, folder)
    for comparison in COMPARISONS:
        if comparison.key in plots:
            ylabel = "2nd-instance accuracy (val)" if comparison.columns == _SANTORO_COLUMNS else "accuracy (val)"
            plot_learning_curves(learning_curves(comparison, entries), ylabel, comparison.title,
                                 Path(plots[comparison.key]))
    return plots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.papers", description=__doc__.splitlines()[0])
    parser.add_argument("--leaderboard", type=Path, default=DEFAULT_ROOT, help="the board's root folder")
    parser.add_argument("--plots", type=Path, default=None, help="also draw the learning curves into this folder")
    parser.add_argument("--readme", type=Path, default=None,
                        help=f"also write the section into this file, between {BEGIN} and {END}")
    args = parser.parse_args(argv)
    entries = load_entries(args.leaderboard)
    plots = draw_learning_curves(entries, args.plots) if args.plots else None
    section = results_section(entries, plots)
    print(section, end="")
    if args.readme:
        text = args.readme.read_text()
        if text.count(BEGIN) != 1 or text.count(END) != 1:
            print(f"error: {args.readme} needs exactly one {BEGIN} and one {END}", file=sys.stderr)
            return 2
        before, rest = text.split(BEGIN)
        write_atomically(f"{before}{BEGIN}\n{section.strip()}\n{END}{rest.split(END)[1]}".encode(), args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
