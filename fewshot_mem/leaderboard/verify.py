"""``verify``: rebuild an entry's learner from its weights, evaluate it again on the suite's
frozen test episodes the way the bench does, and compare every per-episode value.

On the machine that produced an entry, CPU evaluation is bit-identical. On another machine
float rounding may flip a prediction whose scores nearly tie, so by default a table passes
when at most ``Tolerance.fraction`` of its episodes differ, each by at most
``Tolerance.predictions`` predictions; ``EXACT`` allows none. Shuffled per-episode values, or
values nudged by less than a prediction, fail either way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluate import evaluate_on_suite
from ..suites import get_suite
from .schema import CONSISTENCY_TOLERANCE, ENTRY_SCHEMA, InvalidEntryError, LeaderboardError, Number, schema_problems
from .validate import entry_problems, own_checkpoint, read_json, read_weights_file, results_digest, suite_facts
from .weights import build_learner, load_weights, sha256_of


@dataclass(frozen=True)
class Tolerance:
    """What another machine may change: a share of a table's episodes, each by a few predictions."""

    fraction: float = 0.005  # of a table's episodes (5 of 1,000)
    predictions: int = 1  # how far each may be off, in predictions

    def episodes(self, total: int) -> int:
        return math.floor(self.fraction * total + 1e-9)

    def estimate_bound(self, total: int, predictions: int) -> float:
        """How far a mean or 95% CI can move when the allowed episodes move by the allowed
        predictions: the mean by k·u/n, the CI by 1.96·sqrt(k)·u/sqrt(n(n-1)); 2·k·u/(n-1) bounds both."""
        unit = self.predictions / predictions
        return 2 * self.episodes(total) * unit / max(total - 1, 1) + CONSISTENCY_TOLERANCE

    def describe(self) -> str:
        if self.fraction == 0:
            return "bit-identical per-episode values"
        return (f"at most {100 * self.fraction:g}% of a table's episodes differing, by at most "
                f"{self.predictions} prediction{'s' * (self.predictions != 1)} each")


EXACT = Tolerance(0.0, 0)


@dataclass(frozen=True)
class EpisodeComparison:
    """Claimed against re-measured per-episode values of one statistic."""

    total: int
    differing: int  # episodes whose value is not bit-identical
    most_off: float  # the largest difference, in predictions (inf: the lists cannot be compared)

    def within(self, tolerance: Tolerance) -> bool:
        return self.differing <= tolerance.episodes(self.total) and self.most_off <= tolerance.predictions + 1e-6


def compare_episodes(claimed: object, measured: list[float], predictions: int) -> EpisodeComparison:
    if not isinstance(claimed, list) or len(claimed) != len(measured):
        return EpisodeComparison(len(measured), len(measured), math.inf)
    difference = np.abs(np.asarray(claimed, dtype=np.float64) - np.asarray(measured, dtype=np.float64))
    differing = int(np.count_nonzero(difference))
    return EpisodeComparison(len(measured), differing, float(difference.max(initial=0.0)) * predictions)


@dataclass(frozen=True)
class DiffRow:
    table: str
    statistic: str
    claimed: str
    measured: str
    ok: bool


@dataclass
class Verification:
    rows: list[DiffRow]
    problems: list[str]
    episodes: list[EpisodeComparison] = field(default_factory=list)  # empty when nothing was re-measured
    results_sha256: str = ""  # validate.results_digest of the entry as it was verified
    measured: dict | None = None  # the re-measured tables, where the weights were evaluated
    seconds: float | None = None  # how long the re-evaluation took

    @property
    def ok(self) -> bool:
        return not self.problems and all(row.ok for row in self.rows)

    @property
    def differing_episodes(self) -> int:
        return sum(c.differing for c in self.episodes)

    def summary(self) -> str:
        """One line: how close the re-measured values came, and what else is wrong."""
        invalid = f"; invalid: {'; '.join(self.problems)}" if self.problems else ""
        values = sum(c.total for c in self.episodes)
        if not self.episodes:
            return "not re-measured: " + ", ".join(r.statistic for r in self.rows if not r.ok) + " differ" + invalid
        if self.differing_episodes == 0:
            return f"bit-identical: all {values:,} per-episode values" + invalid
        most = max(c.most_off for c in self.episodes)
        by = "in length" if math.isinf(most) else f"by at most {most:.0f} prediction{'s' * (round(most) != 1)}"
        return f"{self.differing_episodes:,} of {values:,} per-episode values differ, {by}" + invalid


def hash_row(statistic: str, claimed: str, measured: str) -> DiffRow:
    """Equal hashes are shortened to keep the table narrow; differing ones are shown whole."""
    if claimed == measured:
        return DiffRow("–", statistic, claimed[:12] + "…", measured[:12] + "…", True)
    return DiffRow("–", statistic, claimed, measured, False)


def _percent(value: float) -> str:
    return f"{100 * value:.3f}"


def statistic_rows(claimed: dict, measured: dict, predictions: dict[str, int],
                   tolerance: Tolerance) -> tuple[list[DiffRow], list[EpisodeComparison]]:
    """Claimed against re-measured: per statistic its mean and CI, then its per-episode values,
    which decide (a mean can match while the episodes behind it were shuffled or nudged)."""
    rows, comparisons = [], []
    for table, result in measured.items():
        for key, estimate in result["estimates"].items():
            claim = claimed.get(table, {})
            label = "" if key == table else f"{key} "
            bound = tolerance.estimate_bound(len(result["per_episode"][key]), predictions[table])
            for statistic in ("mean", "ci95"):
                value = claim.get("estimates", {}).get(key, {}).get(statistic)
                ok = isinstance(value, Number) and abs(value - estimate[statistic]) <= bound
                rows.append(DiffRow(table, f"{label}{statistic} (%)", "–" if value is None else _percent(value),
                                    _percent(estimate[statistic]), ok))
            comparison = compare_episodes(claim.get("per_episode", {}).get(key), result["per_episode"][key],
                                          predictions[table])
            off = "" if comparison.differing == 0 or math.isinf(comparison.most_off) else \
                f" (≤ {comparison.most_off:.0f} pred.)"
            rows.append(DiffRow(table, f"{label}episodes that differ", f"≤ {tolerance.episodes(comparison.total)}",
                                f"{comparison.differing}{off}", comparison.within(tolerance)))
            comparisons.append(comparison)
    return rows, comparisons


def verify(path: Path, root: Path, *, data_root=None, device: str = "cpu", checkpoint: Path | None = None,
           tolerance: Tolerance = Tolerance(), progress: bool = False) -> Verification:
    """Re-evaluates an entry's checkpoint on its suite's frozen test episodes and compares.

    Stops before loading anything when the fingerprint or the checkpoint's sha256 is not
    what the entry claims: there is nothing meaningful to re-measure then.
    """
    entry = read_json(path)
    problems = schema_problems(entry, ENTRY_SCHEMA, "entry")
    if problems:
        raise InvalidEntryError(str(path), problems)
    result = entry["result"]
    suite = get_suite(result["suite"])
    facts = suite_facts(suite, data_root)
    problems = [p for p in entry_problems(entry, data_root) if not p.startswith("result.fingerprint")]
    rows = [hash_row("fingerprint", result["fingerprint"], facts.fingerprint)]
    source = checkpoint or own_checkpoint(entry, root)  # an entry's own path is checked before it is opened
    if source is None:
        raise LeaderboardError(f"the weights are at {entry['checkpoint']['url']}: download them and pass "
                               "--checkpoint PATH")
    if not Path(source).is_file():
        raise LeaderboardError(f"the weights {source} are not here: get the file from the submitter, or "
                               "reproduce it with the entry's bench command, and pass --checkpoint PATH; its "
                               "sha256 must be " + entry["checkpoint"]["sha256"])
    data = read_weights_file(Path(source))
    rows.append(hash_row("checkpoint sha256", entry["checkpoint"]["sha256"], sha256_of(data)))
    if not all(row.ok for row in rows):
        return Verification(rows, problems, results_sha256=results_digest(entry))
    learner = build_learner(result, suite, load_weights(data, str(source)))
    started = time.perf_counter()
    measured = evaluate_on_suite(learner, suite, facts.pools, device=device, progress=progress)
    seconds = time.perf_counter() - started
    statistics, comparisons = statistic_rows(result["tables"], measured, facts.predictions, tolerance)
    return Verification(rows + statistics, problems, comparisons, results_digest(entry), measured, seconds)


def format_verification(verification: Verification, reference: str, tolerance: Tolerance) -> str:
    header = ["table", "statistic", "claimed", "measured", ""]
    body = [[r.table, r.statistic, r.claimed, r.measured, "ok" if r.ok else "MISMATCH"] for r in verification.rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"invalid: {problem}" for problem in verification.problems]
    bad = sum(not row.ok for row in verification.rows)
    lines.append(f"{reference}: verified ({verification.summary()}; allowed: {tolerance.describe()})"
                 if verification.ok else
                 f"{reference}: VERIFICATION FAILED ({bad} mismatches, {len(verification.problems)} problems; "
                 f"allowed: {tolerance.describe()})")
    return "\n".join(lines)
