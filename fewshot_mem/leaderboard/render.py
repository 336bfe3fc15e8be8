"""``render``: the board as Markdown (README.md) and as a self-contained page (index.html):
a summary, then each suite in the board's order with the papers' quoted figures above its
ranked entries, then how to submit."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..paths import write_atomically
from .guide import HOW_TO_SUBMIT, INTRO
from .ranking import Board, BoardTable, Cell, Row, SuiteBoard, SummaryRow, build_board

HEADER = ("rank", "entry", "model")
TRAILER = ("training", "training time", "hardware", "submitter", "verified", "links")
SUMMARY_HEADER = ("suite", "statistic", "model", "best verified entry", "ours (%)", "paper (%)")
SUMMARY_NOTE = ("The best *verified* entry of each model family at each suite's headline statistic (the 2nd "
                "instance online, else N-way K-shot accuracy), beside the paper's figure where one is published.")


def _md_text(text: str) -> str:
    """Free text (a submitter's name) that cannot break a Markdown table or inject markup."""
    return re.sub(r"([\\`*_{}\[\]<>|#!])", r"\\\1", " ".join(text.split()))


def _md_cell(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    if cell.rank is None:
        return cell.text
    return f"**{cell.text}** (1)" if cell.rank == 1 else f"{cell.text} ({cell.rank})"


def _md_row(row: Row) -> list[str]:
    if row.reference:
        start = ["paper", f"*{_md_text(row.entry)}*", f"`{row.model}`"]
    else:
        start = [f"{row.average_rank:.2f}", f"`{row.entry}`", f"`{row.model}`"]
    links = " · ".join(f"[{label}]({href})" for label, href in row.links)
    return [*start, *map(_md_cell, row.cells), row.training, row.time, row.hardware, _md_text(row.submitter),
            row.verified, links]


def _md_lines(header: list[str], rows: list[list[str]], numeric: set[int]) -> list[str]:
    rule = "|" + "|".join(" ---: " if i in numeric else " --- " for i in range(len(header))) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(row) + " |" for row in rows)]


def markdown_table(table: BoardTable) -> str:
    header = [*HEADER, *table.columns, *TRAILER]
    numeric = {0, *range(len(HEADER), len(HEADER) + len(table.columns))}
    rows = [_md_row(row) for row in (*table.references, *table.rows)]
    return "\n".join([f"**{table.caption}**", "", *_md_lines(header, rows, numeric)])


def _summary_cells(row: SummaryRow) -> list[str]:
    ours = row.ours.text if row.ours else "–"
    paper = "–" if row.paper is None else f"{row.paper:.1f}"
    entry = f"`{row.entry}`" if row.entry else "none verified yet"
    return [f"`{row.suite}`", row.statistic, row.family, entry, ours, paper]


def suite_heading(board: SuiteBoard) -> str:
    return f"{board.suite.id} — {board.suite.title}"


def suite_facts_line(board: SuiteBoard) -> str:
    return (f"Follows {board.citation}. {board.suite.test_episodes} frozen test episodes per table, "
            f"fingerprint `{board.fingerprint}`.")


def render_markdown(board: Board) -> str:
    parts = ["# fewshot-mem leaderboard", "",
             "Written by `python -m fewshot_mem.leaderboard render` from `entries/`: edit those, not this file.",
             "", INTRO]
    if not board.suites:
        parts += ["", "No entries yet."]
    if board.summary:
        parts += ["", "## Summary", "", SUMMARY_NOTE, "",
                  *_md_lines(list(SUMMARY_HEADER), [_summary_cells(r) for r in board.summary], {4, 5})]
    for suite in board.suites:
        parts += ["", f"## {suite_heading(suite)}", "", suite.description, "", suite_facts_line(suite)]
        for table in suite.tables:
            parts += ["", markdown_table(table)]
        if suite.plot_png:
            parts += ["", "The accuracy-by-instance plot is in [index.html](index.html)."]
    return "\n".join(parts + ["", HOW_TO_SUBMIT]) + "\n"


def _html_cell(cell: Cell | None) -> str:
    if cell is None:
        return '<td class="num">–</td>'
    rank = "" if cell.rank is None else f' <span class="rank">({cell.rank})</span>'
    return f'<td class="num{" best" if cell.rank == 1 else ""}">{html.escape(cell.text)}{rank}</td>'


def _html_row(row: Row) -> str:
    escape = html.escape
    rank = "paper" if row.reference else f"{row.average_rank:.2f}"
    name = f"<em>{escape(row.entry)}</em>" if row.reference else f"<code>{escape(row.entry)}</code>"
    links = " · ".join(f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in row.links)
    trailer = "".join(f"<td>{escape(text)}</td>" for text in (row.training, row.time, row.hardware, row.submitter,
                                                               row.verified))
    kind = ' class="reference"' if row.reference else ' class="entry"'
    return (f'<tr{kind}><td class="num">{rank}</td><td>{name}</td><td><code>{escape(row.model)}</code></td>'
            + "".join(map(_html_cell, row.cells)) + f"{trailer}<td>{links}</td></tr>")


def _html_table(caption: str, header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    return (f"<div class=\"scroll\"><table>\n<caption>{html.escape(caption)}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table></div>")


def _html_summary(board: Board) -> str:
    rows = ["<tr>" + "".join(f"<td>{html.escape(cell.strip('`'))}</td>" for cell in _summary_cells(row)) + "</tr>"
            for row in board.summary]
    return (f'<section id="summary">\n<h2>Summary</h2>\n<p>{html.escape(SUMMARY_NOTE.replace("*", ""))}</p>\n'
            + _html_table("Best verified entry per model family", list(SUMMARY_HEADER), rows) + "\n</section>")


PAGE_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;color:#222}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
caption{text-align:left;font-weight:600;padding:.3em 0}th,td{border-bottom:1px solid #ddd;padding:.3em .5em}
td{white-space:nowrap}td.num{text-align:right}td.best{font-weight:700}.rank{color:#888;font-size:.85em}
tr.reference{background:#f6f6f0;color:#555}code{white-space:nowrap}img{max-width:100%;border:1px solid #eee}"""


def _html_suite(board: SuiteBoard) -> str:
    escape = html.escape
    parts = [f"<section class=\"suite\" id=\"{escape(board.suite.id)}\">", f"<h2>{escape(suite_heading(board))}</h2>",
             f"<p>{escape(board.description)}</p>",
             f"<p>{escape(suite_facts_line(board)).replace('`', '')}</p>"]
    for table in board.tables:
        header = [*HEADER, *table.columns, *TRAILER]
        parts.append(_html_table(table.caption, header, [_html_row(r) for r in (*table.references, *table.rows)]))
    if board.plot_png:
        encoded = base64.b64encode(board.plot_png).decode()
        parts.append(f'<img alt="{escape(board.suite.id)}: accuracy by instance position" '
                     f'src="data:image/png;base64,{encoded}">')
    return "\n".join(parts + ["</section>"])


def render_html(board: Board) -> str:
    sections = ([_html_summary(board)] if board.summary else []) + [_html_suite(s) for s in board.suites]
    content = "\n".join(sections) or "<p>No entries yet.</p>"
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>fewshot-mem leaderboard</title>\n<style>\n{PAGE_STYLE}\n</style>\n</head>\n<body>\n"
            f"<h1>fewshot-mem leaderboard</h1>\n<p>Ranks: methods whose 95% confidence intervals do not "
            f"separate share a rank (Meta-Dataset); rows by average rank. Rows marked <em>paper</em> quote the "
            f"papers' figures: not verified, not ranked. Entries, checkpoints, how to submit and how entries "
            f"are verified: <a href=\"README.md\">README.md</a>.</p>\n{content}\n</body>\n</html>\n")


def render(root: Path, data_root=None) -> tuple[Path, Path]:
    """Writes ``root/README.md`` and ``root/index.html`` from the entries."""
    board = build_board(root, data_root)
    root.mkdir(parents=True, exist_ok=True)
    readme, page = root / "README.md", root / "index.html"
    write_atomically(render_markdown(board).encode(), readme)
    write_atomically(render_html(board).encode(), page)
    return readme, page
