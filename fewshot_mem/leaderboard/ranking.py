"""The board: each suite's entries in ranked tables (Meta-Dataset's shared ranks) under the
papers' quoted figures, its plot, and a summary of the best verified entry per model family."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..models.registry import model_label
from ..report import ordinal, plot_instance_accuracy, training_time
from ..suites import Suite, get_suite
from .context import (PaperFigures, board_position, citations, description, hardware, paper_figures,
                      training_budget)
from .schema import LeaderboardError
from .validate import entry_files, is_verified, read_json, suite_facts, validate_board


def shared_ranks(estimates: list[tuple[float, float]]) -> list[int]:
    """Ranks where methods whose 95% intervals do not separate share a rank (Meta-Dataset).

    Sorted by mean, the best method not yet ranked takes the next rank (1 + the number of
    methods ranked before it), and so does every following method whose interval (mean ±
    ci95) overlaps that method's, up to the first one whose interval does not.
    """
    order = sorted(range(len(estimates)), key=lambda i: -estimates[i][0])
    ranks = [0] * len(estimates)
    position = 0
    while position < len(order):
        leader_mean, leader_ci = estimates[order[position]]
        group = position + 1
        while group < len(order) and sum(estimates[order[group]]) >= leader_mean - leader_ci:
            group += 1
        for index in order[position:group]:
            ranks[index] = position + 1
        position = group
    return ranks


@dataclass(frozen=True)
class Cell:
    mean: float
    ci95: float | None  # None: a paper's figure, quoted without an interval
    rank: int | None  # None: not ranked (a paper's figure)

    @property
    def text(self) -> str:
        if self.ci95 is None:
            return f"{100 * self.mean:.1f}"
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}"


@dataclass(frozen=True)
class Row:
    entry: str  # the entry name, or the paper's model label for a reference row
    model: str
    submitter: str  # or who published a reference row's figures
    links: tuple[tuple[str, str], ...]  # (label, href)
    cells: tuple[Cell | None, ...]  # None: the paper gives no figure there
    verified: str  # "verified <date>, commit <sha>", "unverified", or "quoted, not verified"
    training: str  # "750 steps × 16 = 12,000 sequences"
    time: str
    hardware: str
    reference: bool = False  # a paper's figures: shown above the entries, never ranked

    @property
    def average_rank(self) -> float | None:
        ranks = [c.rank for c in self.cells if c is not None and c.rank is not None]
        return sum(ranks) / len(ranks) if ranks and not self.reference else None


@dataclass(frozen=True)
class BoardTable:
    caption: str
    columns: tuple[str, ...]
    references: tuple[Row, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class SuiteBoard:
    suite: Suite
    fingerprint: str
    description: str
    citation: str
    tables: tuple[BoardTable, ...]
    plot_png: bytes | None


@dataclass(frozen=True)
class SummaryRow:
    suite: str
    statistic: str  # "2nd instance", "5-way-1-shot"
    family: str  # the model's label
    entry: str | None  # the best verified entry, if any
    ours: Cell | None
    paper: float | None  # the paper's figure (%), if it gives one


@dataclass(frozen=True)
class Board:
    summary: tuple[SummaryRow, ...]
    suites: tuple[SuiteBoard, ...]


Column = tuple[str, str, str, str]  # (protocol, label, table, estimate key)


def _columns(statistics: dict[str, tuple[str, ...]]) -> list[Column]:
    """(protocol, column label, table, estimate key) of every statistic of a suite."""
    columns = [("online", ordinal(int(key.split("_")[1])), "online", key) for key in statistics.get("online", ())]
    return columns + [("episodic", table, table, table) for table in sorted(statistics) if table != "online"]


def _links(entry: dict) -> tuple[tuple[str, str], ...]:
    checkpoint = entry["checkpoint"].get("url")  # stored weights are in the repository: nothing to link to
    links = [(label, entry.get(label)) for label in ("paper", "code")] + [("checkpoint", checkpoint)]
    return tuple((label, href) for label, href in links if href)


def verification_text(entry: dict) -> str:
    """The entry's last passed verification, as the board shows it (validate refuses a stale record)."""
    if not is_verified(entry):
        return "unverified"
    record = entry["verification"]
    return f"verified {record['date']}, commit {record['commit'][:7]}"


CAPTIONS = {"online": "Online protocol: accuracy (%) by instance position, ± 95% CI",
            "episodic": "Episodic protocol: query accuracy (%), ± 95% CI"}


def _entry_row(entry: dict, estimates: list[dict], ranks: list[int]) -> Row:
    result = entry["result"]
    cells = tuple(Cell(est["mean"], est["ci95"], rank) for est, rank in zip(estimates, ranks))
    return Row(entry["entry"], result["model"], entry["submitter"], _links(entry), cells, verification_text(entry),
               training_budget(result), training_time(result), hardware(result))


def _reference_row(paper: PaperFigures, columns: list[Column]) -> Row:
    cells = tuple(Cell(paper.figures[(table, key)] / 100, None, None) if (table, key) in paper.figures else None
                  for _, _, table, key in columns)
    return Row(paper.label, paper.model, paper.source, (), cells, "quoted, not verified", paper.training, "–", "–",
               reference=True)


def board_table(protocol: str, columns: list[Column], entries: list[dict],
                papers: list[PaperFigures] = ()) -> BoardTable:
    chosen = [c for c in columns if c[0] == protocol]
    estimates = [[e["result"]["tables"][table]["estimates"][key] for _, _, table, key in chosen] for e in entries]
    ranks = [shared_ranks([(row[c]["mean"], row[c]["ci95"]) for row in estimates]) for c in range(len(chosen))]
    rows = [_entry_row(entry, estimates[i], [ranks[c][i] for c in range(len(chosen))])
            for i, entry in enumerate(entries)]
    rows.sort(key=lambda r: (r.average_rank, -sum(c.mean for c in r.cells), r.entry))
    references = [_reference_row(paper, chosen) for paper in papers]
    return BoardTable(CAPTIONS[protocol], tuple(c[1] for c in chosen),
                      tuple(r for r in references if any(r.cells)), tuple(rows))


def _plot(suite: Suite, entries: list[dict]) -> bytes | None:
    """The accuracy-by-instance plot of report.py, one line per entry."""
    results = [{**entry["result"], "model": entry["entry"]} for entry in entries]
    with tempfile.TemporaryDirectory() as folder:
        path = plot_instance_accuracy(results, Path(folder) / f"{suite.id}.png")
        return path.read_bytes() if path else None


def headline(statistics: dict[str, tuple[str, ...]]) -> tuple[str, str, str]:
    """The summary's statistic of a suite: the 2nd instance online (one shot), else its first table."""
    if "instance_2" in statistics.get("online", ()):
        return "online", "instance_2", "2nd instance"
    table = sorted(statistics)[0]
    return table, table, table


def summary_rows(suite_id: str, statistics: dict[str, tuple[str, ...]], entries: list[dict],
                 papers: list[PaperFigures]) -> list[SummaryRow]:
    """Per model family: the best verified entry at the suite's headline statistic, and the paper's figure."""
    table, key, label = headline(statistics)
    published = {paper.model: paper.figures.get((table, key)) for paper in papers}
    families = dict.fromkeys([*published, *(e["result"]["model"] for e in entries)])
    rows = []
    for model in families:
        verified = [e for e in entries if e["result"]["model"] == model and is_verified(e)]
        best = max(verified, key=lambda e: e["result"]["tables"][table]["estimates"][key]["mean"], default=None)
        estimate = best["result"]["tables"][table]["estimates"][key] if best else None
        ours = Cell(estimate["mean"], estimate["ci95"], None) if estimate else None
        if ours or published.get(model) is not None:
            rows.append(SummaryRow(suite_id, label, model_label(model), best and best["entry"], ours,
                                   published.get(model)))
    return rows


def build_board(root: Path, data_root=None) -> Board:
    """Every suite that has entries, in the board's order, with its ranked tables under the papers'
    figures; refuses a board with an invalid entry."""
    invalid = {path: problems for path, problems in validate_board(root, data_root).items() if problems}
    if invalid:
        raise LeaderboardError("fix or remove the invalid entries first:\n" + "\n".join(
            f"  {path}: {'; '.join(problems)}" for path, problems in invalid.items()))
    by_suite: dict[str, list[dict]] = {}
    for path in entry_files(root):
        by_suite.setdefault(path.parent.name, []).append(read_json(path))
    boards, summary = [], []
    for suite_id in sorted(by_suite, key=board_position):
        entries, facts = by_suite[suite_id], suite_facts(get_suite(suite_id), data_root)
        papers = paper_figures(suite_id)
        columns = _columns(facts.statistics)
        protocols = dict.fromkeys(protocol for protocol, *_ in columns)  # online first, as the bench prints
        tables = tuple(board_table(protocol, columns, entries, papers) for protocol in protocols)
        boards.append(SuiteBoard(facts.suite, facts.fingerprint, description(facts.suite), citations(facts.suite),
                                 tables, _plot(facts.suite, entries)))
        summary += summary_rows(suite_id, facts.statistics, entries, papers)
    return Board(tuple(summary), tuple(boards))
