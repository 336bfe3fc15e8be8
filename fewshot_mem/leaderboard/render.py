"""``render``: the board as Markdown (README.md) and as a self-contained page (index.html)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..paths import write_atomically
from .ranking import BoardTable, Cell, SuiteBoard, build_board


HOW_TO = """Every number here can be re-measured: an entry holds the per-episode accuracies on the suite's
frozen test episodes (named by the fingerprint) and the weights, with their sha256.

```bash
python -m fewshot_mem.bench --suite omniglot-5way --models protonet --budget quick
python -m fewshot_mem.leaderboard submit runs/omniglot-5way@1/results/protonet-quick-seed0.json \\
    --submitter "Your Name" [--paper URL] [--code URL] [--name ENTRY]
python -m fewshot_mem.leaderboard validate           # schema, suite, fingerprint, episodes, CIs
python -m fewshot_mem.leaderboard verify ENTRY       # re-evaluate the checkpoint, diff the numbers
python -m fewshot_mem.leaderboard render             # this page and index.html
```

Ranks follow Meta-Dataset: in each column, methods whose 95% confidence intervals do not
separate share a rank; rows are ordered by their average rank. The best rank of a column is in bold."""


def _md_text(text: str) -> str:
    """Free text (a submitter's name) that cannot break a Markdown table or inject markup."""
    return re.sub(r"([\\`*_{}\[\]<>|#!])", r"\\\1", " ".join(text.split()))


def _md_cell(cell: Cell) -> str:
    return f"**{cell.text}** (1)" if cell.rank == 1 else f"{cell.text} ({cell.rank})"


def markdown_table(table: BoardTable) -> str:
    header = ["avg. rank", "entry", "model", "submitter", *table.columns, "verified", "links"]
    lines = [f"**{table.caption}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([" ---: ", " --- ", " --- ", " --- "] + [" ---: "] * len(table.columns)
                            + [" --- ", " --- "]) + "|"]
    for row in table.rows:
        links = " · ".join(f"[{label}]({href})" for label, href in row.links)
        lines.append("| " + " | ".join([f"{row.average_rank:.2f}", f"`{row.entry}`", f"`{row.model}`",
                                        _md_text(row.submitter), *map(_md_cell, row.cells), row.verified,
                                        links]) + " |")
    return "\n".join(lines)


def render_markdown(boards: list[SuiteBoard]) -> str:
    parts = ["# fewshot-mem leaderboard", "",
             "Written by `python -m fewshot_mem.leaderboard render` from `entries/`: edit those, not this file.",
             "", HOW_TO]
    if not boards:
        parts += ["", "No entries yet."]
    for board in boards:
        parts += ["", f"## {board.suite.id}", "", f"{board.suite.title}. {board.suite.test_episodes} frozen test "
                  f"episodes per table, fingerprint `{board.fingerprint}`."]
        for table in board.tables:
            parts += ["", markdown_table(table)]
        if board.plot_png:
            parts += ["", "The accuracy-by-instance plots are in [index.html](index.html)."]
    return "\n".join(parts) + "\n"


def _html_table(table: BoardTable) -> str:
    escape = html.escape
    head = "".join(f"<th>{escape(c)}</th>" for c in ("avg. rank", "entry", "model", "submitter", *table.columns,
                                                       "verified", "links"))
    body = []
    for row in table.rows:
        cells = "".join(f'<td class="num{" best" if c.rank == 1 else ""}">{escape(c.text)} '
                        f'<span class="rank">({c.rank})</span></td>' for c in row.cells)
        links = " · ".join(f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in row.links)
        body.append(f"<tr><td class=\"num\">{row.average_rank:.2f}</td><td><code>{escape(row.entry)}</code></td>"
                    f"<td><code>{escape(row.model)}</code></td><td>{escape(row.submitter)}</td>{cells}"
                    f"<td>{escape(row.verified)}</td><td>{links}</td></tr>")
    return (f"<div class=\"scroll\"><table>\n<caption>{escape(table.caption)}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table></div>")


PAGE_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:90em;padding:0 1em;color:#222}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
caption{text-align:left;font-weight:600;padding:.3em 0}th,td{border-bottom:1px solid #ddd;padding:.3em .5em}
td.num{text-align:right;white-space:nowrap}td.best{font-weight:700}.rank{color:#888;font-size:.85em}
code{white-space:nowrap}img{max-width:100%;border:1px solid #eee}"""


def render_html(boards: list[SuiteBoard]) -> str:
    escape = html.escape
    sections = []
    for board in boards:
        parts = [f"<section id=\"{escape(board.suite.id)}\">", f"<h2>{escape(board.suite.id)}</h2>",
                 f"<p>{escape(board.suite.title)}. {board.suite.test_episodes} frozen test episodes per table, "
                 f"fingerprint <code>{escape(board.fingerprint)}</code>.</p>"]
        parts += [_html_table(table) for table in board.tables]
        if board.plot_png:
            encoded = base64.b64encode(board.plot_png).decode()
            parts.append(f'<img alt="{escape(board.suite.id)}: accuracy by instance position" '
                         f'src="data:image/png;base64,{encoded}">')
        sections.append("\n".join(parts + ["</section>"]))
    content = "\n".join(sections) or "<p>No entries yet.</p>"
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>fewshot-mem leaderboard</title>\n<style>\n{PAGE_STYLE}\n</style>\n</head>\n<body>\n"
            f"<h1>fewshot-mem leaderboard</h1>\n<p>Ranks: methods whose 95% confidence intervals do not "
            f"separate share a rank (Meta-Dataset); rows by average rank. Entries, checkpoints and how to "
            f"submit or verify: <a href=\"README.md\">README.md</a>.</p>\n{content}\n</body>\n</html>\n")


def render(root: Path, data_root=None) -> tuple[Path, Path]:
    """Writes ``root/README.md`` and ``root/index.html`` from the entries."""
    boards = build_board(root, data_root)
    root.mkdir(parents=True, exist_ok=True)
    readme, page = root / "README.md", root / "index.html"
    write_atomically(render_markdown(boards).encode(), readme)
    write_atomically(render_html(boards).encode(), page)
    return readme, page


