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

from ..evaluate import evaluate_forgetting, evaluate_on_suite
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

    def estimate_bound(self, total: int, predictions: np.ndarray | int) -> float:
        """How far a mean or 95% CI can move when the allowed episodes move by the allowed
        predictions: the mean by k·u/n, the CI by 1.96·sqrt(k)·u/sqrt(n(n-1)); 2·k·u/(n-1) bounds both
        (u: the largest unit, that of the episode with the fewest predictions behind its value)."""
        counts = np.asarray(predictions)
        fewest = counts[counts > 0].min() if (counts > 0).any() else 1
        unit = self.predictions / fewest
        return 2 * self.episodes(total) * unit / max(total - 1, 1) + CONSISTENCY_TOLERANCE

    def describe(self) -> str:
        if self.fraction == 0:
            return "bit-identical per-episode values"
        return (f"at most {100 * self.fraction:g}% of a table's episodes differing, by at most "
                f"{self.predictions} prediction{'s' * (self.predictions != 1)} each")


EXACT = Tolerance(0.0, 0)
LAG_TABLE = "online-lag"  # the accuracy-by-lag table, kept in result.forgetting


@dataclass(frozen=True)
class EpisodeComparison:
    """Claimed against re-measured per-episode values of one statistic."""

    total: int
    differing: int  # episodes whose value is not bit-identical
    most_off: float  # the largest difference, in predictions (inf: the lists cannot be compared)

    def within(self, tolerance: Tolerance) -> bool:
        return self.differing <= tolerance.episodes(self.total) and self.most_off <= tolerance.predictions + 1e-6


def _floats(values: list) -> np.ndarray:
    """Per-episode values as floats; None (an episode with no step in a lag bucket) becomes NaN."""
    return np.asarray([math.nan if value is None else value for value in values], dtype=np.float64)


def compare_episodes(claimed: object, measured: list, predictions: np.ndarray | int) -> EpisodeComparison:
    """How many per-episode values differ, and by how much at most (in predictions: those behind
    each episode's value). Missing values (None) are equal only to missing values; a value
    against a missing one cannot be compared (inf)."""
    if not isinstance(claimed, list) or len(claimed) != len(measured):
        return EpisodeComparison(len(measured), len(measured), math.inf)
    try:
        claimed_values, measured_values = _floats(claimed), _floats(measured)
    except (TypeError, ValueError):
        return EpisodeComparison(len(measured), len(measured), math.inf)
    both_missing = np.isnan(claimed_values) & np.isnan(measured_values)
    difference = np.where(both_missing, 0.0, np.abs(claimed_values - measured_values))
    off = np.where(np.isnan(difference), math.inf, difference * predictions)  # inf: one side missing
    return EpisodeComparison(len(measured), int(np.count_nonzero(off)), float(off.max(initial=0.0)))


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
    seconds: float | None = None  # how long re-measuring the suite's tables took (the lag table apart)
    forgetting: dict = field(default_factory=dict)  # the re-measured lag table, where one was compared

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


def statistic_rows(claimed: dict, measured: dict, predictions: dict[str, dict[str, np.ndarray | int]],
                   tolerance: Tolerance) -> tuple[list[DiffRow], list[EpisodeComparison]]:
    """Claimed against re-measured: per statistic its mean and CI, then its per-episode values,
    which decide (a mean can match while the episodes behind it were shuffled or nudged)."""
    rows, comparisons = [], []
    for table, result in measured.items():
        unmeasured = sorted(set(claimed.get(table, {}).get("estimates", {})) - set(result["estimates"]))
        if unmeasured:  # claimed statistics the re-evaluation has no value for
            rows.append(DiffRow(table, "statistics", ", ".join(unmeasured), "–", False))
        for key, estimate in result["estimates"].items():
            claim = claimed.get(table, {})
            label = "" if key == table else f"{key} "
            bound = tolerance.estimate_bound(len(result["per_episode"][key]), predictions[table][key])
            for statistic in ("mean", "ci95"):
                value = claim.get("estimates", {}).get(key, {}).get(statistic)
                ok = isinstance(value, Number) and abs(value - estimate[statistic]) <= bound
                rows.append(DiffRow(table, f"{label}{statistic} (%)", "–" if value is None else _percent(value),
                                    _percent(estimate[statistic]), ok))
            comparison = compare_episodes(claim.get("per_episode", {}).get(key), result["per_episode"][key],
                                          predictions[table][key])
            off = "" if comparison.differing == 0 or math.isinf(comparison.most_off) else \
                f" (≤ {comparison.most_off:.0f} pred.)"
            rows.append(DiffRow(table, f"{label}episodes that differ", f"≤ {tolerance.episodes(comparison.total)}",
                                f"{comparison.differing}{off}", comparison.within(tolerance)))
            comparisons.append(comparison)
    return rows, comparisons


def verify(path: Path, root: Path, *, data_root=None, device: str = "cpu", checkpoint: Path | None = None,
           tolerance: Tolerance = Tolerance(), progress: bool = False, forgetting: bool = True) -> Verification:
    """Re-evaluates an entry's checkpoint on its suite's frozen test episodes and compares.

    With ``forgetting``, an entry's accuracy-by-lag table (``result.forgetting``), where it stores
    one, is re-measured too, in a pass of its own, and compared (a per-prefix learner such as
    MAML learns at every step there, not at the instance positions alone: several times the
    online table's time). ``seconds`` is the suite's tables' time alone. Stops before loading
    anything when the fingerprint or the checkpoint's sha256 is not what the entry claims: there is
    nothing meaningful to re-measure then.
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
    seconds = time.perf_counter() - started  # the suite's tables: what the default bench re-measures
    claimed_lag = (result.get("forgetting") or {}).get(LAG_TABLE) if forgetting else None
    lag_table = evaluate_forgetting(learner, suite, facts.pools, device=device, progress=progress) \
        if claimed_lag is not None else None
    measured_lag = {LAG_TABLE: lag_table} if lag_table is not None else {}
    statistics, comparisons = statistic_rows(result["tables"], measured, facts.predictions, tolerance)
    # A lag bucket's per-episode value averages however many steps of that episode fall in it,
    # so no one prediction unit fits: the bucket is the unit, and the tolerance bounds how many
    # episodes may differ (none with --exact).
    lag_units = {LAG_TABLE: {key: 1 for key in lag_table["estimates"]}} if lag_table is not None else {}
    lag_rows, lag_comparisons = statistic_rows({LAG_TABLE: claimed_lag or {}}, measured_lag, lag_units, tolerance)
    return Verification(rows + statistics + lag_rows, problems, comparisons + lag_comparisons,
                        results_digest(entry), measured, seconds, measured_lag)


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
