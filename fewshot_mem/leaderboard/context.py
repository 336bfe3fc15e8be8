"""What a reader needs around the numbers: the suites in a deliberate order, each with a line
saying what it measures and whom it follows, the papers' own figures (quoted from the data
``papers.py`` holds, never ranked), and what each entry cost to train."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..citation import BIBTEX
from ..models.registry import model_label
from ..report import budget_text, training_hardware
from ..suites import Suite

# Santoro et al.'s two tables first (the headline), then the few-shot suites, then mini-ImageNet:
# the order of suites.SUITES, written out so that a new suite has to be placed on purpose.
BOARD_ORDER = ("omniglot-5way", "omniglot-15way-strings", "omniglot-5way-1shot", "omniglot-5way-5shot",
               "omniglot-20way-1shot", "omniglot-20way-5shot", "miniimagenet-5way-1shot", "miniimagenet-5way-5shot")

DESCRIPTIONS = {
    "omniglot-5way": "Santoro et al.'s Table 1: sequences of 5 Omniglot classes, each seen 10 times, labelled "
                     "one step late; accuracy by how often the class has been seen (the 2nd instance is the "
                     "one-shot score).",
    "omniglot-15way-strings": "Santoro et al.'s Table 2: episodes of 100 steps over 15 classes labelled with "
                              "five-character strings (a class shows about 6.7 times, at most 20); a prediction "
                              "counts only when all five characters are right.",
    # by id: a version whose protocol differs from its name's current one
    "omniglot-15way-strings@1": "15 classes labelled with five-character strings, each seen 10 times: 150 steps, "
                                "more than the paper's 100 (version 2 has those); a prediction counts only when "
                                "all five characters are right.",
}
FEW_SHOT = ("{ways}-way {shots}-shot {dataset} episodes at {size}x{size}, {queries} queries per class: the "
            "benchmark on which MAML and prototypical networks report.")


def board_position(suite_id: str) -> tuple[int, str]:
    name = suite_id.partition("@")[0]
    return (BOARD_ORDER.index(name) if name in BOARD_ORDER else len(BOARD_ORDER), suite_id)


def description(suite: Suite) -> str:
    for key in (suite.id, suite.name):
        if key in DESCRIPTIONS:
            return DESCRIPTIONS[key]
    dataset = "Omniglot" if suite.dataset == "omniglot" else "mini-ImageNet"
    return FEW_SHOT.format(ways=suite.ways, shots=suite.shots[0], dataset=dataset, size=suite.image_size,
                           queries=suite.queries)


def short_citation(key: str) -> str:
    """"Santoro et al. (2016)" from the BibTeX the project cites with."""
    entry = BIBTEX.get(key, "")
    authors = re.search(r"author = \{(.+?)\},?\n", entry)
    year = re.search(r"year = \{(\d{4})\}", entry)
    if not (authors and year):
        return key
    names = [name.split(",")[0].strip() for name in authors.group(1).split(" and ")]
    who = names[0] if len(names) == 1 else f"{names[0]} & {names[1]}" if len(names) == 2 else f"{names[0]} et al."
    return f"{who} ({year.group(1)})"


def citations(suite: Suite) -> str:
    return "; ".join(short_citation(key) for key in suite.references)


# --- the papers' figures -----------------------------------------------------------------------

@dataclass(frozen=True)
class PaperFigures:
    model: str
    label: str  # "MANN (LRUA)"
    source: str  # who published them
    training: str  # the paper's budget as it states it, or "–"
    figures: dict[tuple[str, str], float]  # (table, estimate) -> accuracy (%)


def paper_figures(suite_id: str) -> list[PaperFigures]:
    """Every published row for the suite, from papers.COMPARISONS (the README's Results data)."""
    papers = _papers()
    found = []
    for comparison in papers.COMPARISONS:
        for row in comparison.rows:
            if row.suite != suite_id or row.published is None:
                continue
            statistics = papers.statistics(suite_id, row.protocol)
            figures = dict(zip(statistics, row.published)) if len(statistics) == len(row.published) else {}
            training = comparison.paper_budget
            label = model_label(row.model)
            found.append(PaperFigures(row.model, label, _source(comparison, label), training, figures))
    return found


def _source(comparison, label: str) -> str:
    """Who published a row: "Snell et al. (2017), Table 1" out of "ProtoNets: Snell et al. (2017),
    Table 1; MAML: ...", else the comparison's title up to its colon."""
    for part in comparison.source.split(";"):
        model, _, source = part.strip().partition(": ")
        if source and label.lower() in model.lower():
            return source
    return comparison.title.split(":")[0]


# --- what an entry cost -------------------------------------------------------------------------

def training_budget(result: dict) -> str:
    """Steps of a batch, and episodes (sequences, online), as report.budget_text writes them;
    "–" for a result without a training record (one the schema does not require)."""
    training = result.get("training")
    if not isinstance(training, dict) or not {"episodes", "batch_size"} <= set(training):
        return "–"
    return budget_text(result)


def hardware(result: dict) -> str:
    return training_hardware(result) if isinstance(result.get("hardware"), dict) else "–"


def _papers():
    """papers.py reads the board, so it is imported when it is needed, not when this package loads."""
    from .. import papers

    return papers
