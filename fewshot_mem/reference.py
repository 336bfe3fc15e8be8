"""The reference weights that the default run evaluates instead of training.

Each built-in model's reference on a suite is the board's entry for that suite and model whose
weights are shipped in ``leaderboard/checkpoints/`` and that trained longest (ties: the higher
score). The default bench re-evaluates those weights through the leaderboard's verify, so every
row it prints is checked against the committed entry it came from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .results import hardware, trained_episodes
from .suites import Suite

if TYPE_CHECKING:  # imported for the annotation alone: the leaderboard imports this module
    from .leaderboard.verify import Verification

BOARD_ROOT = Path(__file__).resolve().parent.parent / "leaderboard"  # the repository's own board


@dataclass(frozen=True)
class Reference:
    """A board entry whose weights are here."""

    path: Path  # the entry's JSON file
    entry: dict

    @property
    def result(self) -> dict:
        return self.entry["result"]

    @property
    def name(self) -> str:
        return f"{self.result['suite']}/{self.entry['entry']}"

    @property
    def trained_episodes(self) -> int:
        return trained_episodes(self.result)

    def score(self) -> float:
        """The entry's headline figure: 2nd-instance accuracy online, else its first episodic table."""
        tables = self.result["tables"]
        if "online" in tables:
            return tables["online"]["estimates"]["instance_2"]["mean"]
        first = sorted(tables)[0]
        return tables[first]["estimates"][first]["mean"]


def default_board_root() -> Path:
    """The repository's ``leaderboard/`` beside the package, else ``leaderboard/`` here."""
    return BOARD_ROOT if BOARD_ROOT.is_dir() else Path("leaderboard")


def _weights_here(entry: dict, root: Path) -> bool:
    relative = entry.get("checkpoint", {}).get("path")
    return bool(relative) and (root / relative).is_file() and not (root / relative).is_symlink()


def references(root: Path, suite: Suite, models: list[str]) -> dict[str, Reference | None]:
    """For each model, its reference entry on ``suite`` (None where no entry has weights here)."""
    found: dict[str, list[Reference]] = {model: [] for model in models}
    for path, entry in _readable_entries(root, suite):
        try:
            model = entry["result"]["model"]
        except (KeyError, TypeError):
            continue  # a malformed entry is validate's business, not a reference
        if model in found and _weights_here(entry, root):
            found[model].append(Reference(path, entry))
    return {model: max(candidates, key=lambda r: (r.trained_episodes, r.score()), default=None)
            for model, candidates in found.items()}


def evaluate_reference(reference: Reference, root: Path, *, data_root=None, device: str = "cpu",
                       progress: bool = True) -> tuple[dict, "Verification"]:
    """Re-evaluates a reference entry's weights through ``leaderboard verify`` (the bench's own
    evaluation path, with verify's default tolerance): the entry's result with the re-measured
    tables and where they were measured (``evaluated_on``; ``hardware`` stays the entry's), and the
    verification (``.ok``; ``.summary()`` says whether the per-episode values are bit-identical or
    how many differ). The accuracy-by-lag table is the entry's own, not
    re-measured: for MAML that would add about 20 minutes to the default run (its lag pass took
    1,176 s against 861 s for its tables, one thread); ``leaderboard verify`` re-measures it."""
    from .leaderboard import verify  # the leaderboard evaluates through evaluate_on_suite

    started = time.perf_counter()
    verification = verify(reference.path, root, data_root=data_root, device=device, progress=progress,
                          forgetting=False)
    result = {**reference.result, "tables": verification.measured or {}, "reference_entry": reference.name,
              "eval_seconds": time.perf_counter() - started, "evaluated_on": hardware(device)}
    return result, verification


def expected_seconds(plan: dict[str, Reference | None], board: list[dict], budget: str,
                     processes: int = 1) -> float | None:
    """What the run should take: the references' recorded evaluation times (of their last
    verification where it recorded one: the evaluation code as it is now; else of their bench run),
    shared by ``processes`` (each scores an equal share of the episodes), plus, for each model
    trained, the training and evaluation time of a board entry of that model at ``budget`` (None
    where nothing on the board tells)."""
    total = 0.0
    for model, reference in plan.items():
        if reference is not None:
            verified = (reference.entry.get("verification") or {}).get("seconds")
            total += (verified or reference.result.get("eval_seconds") or 0.0) / processes
            continue
        known = [e["result"] for e in board if e["result"]["model"] == model and e["result"]["budget"] == budget]
        if not known:
            return None
        total += (known[0].get("train_seconds") or 0.0) + (known[0].get("eval_seconds") or 0.0)
    return total


def board_entries(root: Path, suite: Suite) -> list[dict]:
    """The suite's entries on the board (unreadable ones left out)."""
    return [entry for _, entry in _readable_entries(root, suite)]


def _readable_entries(root: Path, suite: Suite) -> Iterator[tuple[Path, dict]]:
    """(path, entry) of each of the suite's entry files that reads as JSON, in name order."""
    for path in sorted((root / "entries" / suite.id).glob("*.json")):
        try:
            yield path, json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # an unreadable entry is validate's business
