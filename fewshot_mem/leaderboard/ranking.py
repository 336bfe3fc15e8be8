"""The board: each suite's entries in ranked tables (Meta-Dataset's shared ranks) and its plot."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..report import ordinal, plot_instance_accuracy
from ..suites import Suite, get_suite
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
    ci95: float
    rank: int

    @property
    def text(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}"


@dataclass(frozen=True)
class Row:
    entry: str
    model: str
    submitter: str
    links: tuple[tuple[str, str], ...]  # (label, href)
    cells: tuple[Cell, ...]
    verified: str  # "verified <date>, commit <sha>" from the entry's record, or "unverified"

    @property
    def average_rank(self) -> float:
        return sum(c.rank for c in self.cells) / len(self.cells)


@dataclass(frozen=True)
class BoardTable:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class SuiteBoard:
    suite: Suite
    fingerprint: str
    tables: tuple[BoardTable, ...]
    plot_png: bytes | None


def _columns(statistics: dict[str, tuple[str, ...]]) -> list[tuple[str, str, str, str]]:
    """(protocol, column label, table, estimate key) of every statistic of a suite."""
    columns = [("online", ordinal(int(key.split("_")[1])), "online", key) for key in statistics.get("online", ())]
    return columns + [("episodic", table, table, table) for table in sorted(statistics) if table != "online"]


def _links(entry: dict) -> tuple[tuple[str, str], ...]:
    checkpoint = entry["checkpoint"].get("url")  # stored weights are kept out of git: nothing to link to
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


def board_table(protocol: str, columns: list[tuple[str, str, str, str]], entries: list[dict]) -> BoardTable:
    chosen = [c for c in columns if c[0] == protocol]
    estimates = [[e["result"]["tables"][table]["estimates"][key] for _, _, table, key in chosen] for e in entries]
    ranks = [shared_ranks([(row[c]["mean"], row[c]["ci95"]) for row in estimates]) for c in range(len(chosen))]
    rows = [Row(entry["entry"], entry["result"]["model"], entry["submitter"], _links(entry),
                tuple(Cell(est["mean"], est["ci95"], ranks[c][i]) for c, est in enumerate(estimates[i])),
                verification_text(entry))
            for i, entry in enumerate(entries)]
    rows.sort(key=lambda r: (r.average_rank, -sum(c.mean for c in r.cells), r.entry))
    return BoardTable(CAPTIONS[protocol], tuple(c[1] for c in chosen), tuple(rows))


def _plot(suite: Suite, entries: list[dict]) -> bytes | None:
    """The accuracy-by-instance plot of report.py, one line per entry."""
    results = [{**entry["result"], "model": entry["entry"]} for entry in entries]
    with tempfile.TemporaryDirectory() as folder:
        path = plot_instance_accuracy(results, Path(folder) / f"{suite.id}.png")
        return path.read_bytes() if path else None


def build_board(root: Path, data_root=None) -> list[SuiteBoard]:
    """Every suite that has entries, with its ranked tables; refuses a board with an invalid entry."""
    invalid = {path: problems for path, problems in validate_board(root, data_root).items() if problems}
    if invalid:
        raise LeaderboardError("fix or remove the invalid entries first:\n" + "\n".join(
            f"  {path}: {'; '.join(problems)}" for path, problems in invalid.items()))
    by_suite: dict[str, list[dict]] = {}
    for path in entry_files(root):
        by_suite.setdefault(path.parent.name, []).append(read_json(path))
    boards = []
    for suite_id, entries in sorted(by_suite.items()):
        facts = suite_facts(get_suite(suite_id), data_root)
        columns = _columns(facts.statistics)
        protocols = dict.fromkeys(protocol for protocol, *_ in columns)  # online first, as the bench prints
        tables = tuple(board_table(protocol, columns, entries) for protocol in protocols)
        boards.append(SuiteBoard(facts.suite, facts.fingerprint, tables, _plot(facts.suite, entries)))
    return boards


