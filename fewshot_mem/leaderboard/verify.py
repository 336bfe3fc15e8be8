"""``verify``: rebuild an entry's learner from its weights, evaluate it again on the suite's
frozen test episodes the way the bench does, and say what differs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bench import evaluate_on_suite
from ..suites import get_suite
from .schema import DEFAULT_VERIFY_TOLERANCE, ENTRY_SCHEMA, InvalidEntryError, LeaderboardError, Number, schema_problems
from .validate import entry_problems, read_json, suite_facts
from .weights import build_learner, load_weights, sha256_of


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

    @property
    def ok(self) -> bool:
        return not self.problems and all(row.ok for row in self.rows)


def hash_row(statistic: str, claimed: str, measured: str) -> DiffRow:
    """Equal hashes are shortened to keep the table narrow; differing ones are shown whole."""
    if claimed == measured:
        return DiffRow("–", statistic, claimed[:12] + "…", measured[:12] + "…", True)
    return DiffRow("–", statistic, claimed, measured, False)


def _percent(value: float) -> str:
    return f"{100 * value:.3f}"


def statistic_rows(claimed: dict, measured: dict, tolerance: float) -> list[DiffRow]:
    """Claimed against re-measured estimates, one row per (table, statistic, mean or CI)."""
    rows = []
    for table, result in measured.items():
        for key, estimate in result["estimates"].items():
            claim = claimed.get(table, {}).get("estimates", {}).get(key, {})
            for statistic in ("mean", "ci95"):
                value = claim.get(statistic)
                ok = isinstance(value, Number) and abs(value - estimate[statistic]) <= tolerance
                label = statistic if key == table else f"{key} {statistic}"
                rows.append(DiffRow(table, f"{label} (%)", "–" if value is None else _percent(value),
                                    _percent(estimate[statistic]), ok))
            differing = _differing_episodes(claimed.get(table, {}).get("per_episode", {}).get(key),
                                            result["per_episode"][key])
            if differing:  # informative: the means above decide
                label = "episodes" if key == table else f"{key} episodes"
                rows.append(DiffRow(table, f"{label} that differ", "0", str(differing), True))
    return rows


def _differing_episodes(claimed: list | None, measured: list[float]) -> int:
    if claimed is None or len(claimed) != len(measured):
        return len(measured)
    return int(np.sum(~np.isclose(np.asarray(claimed, dtype=np.float64), measured, rtol=0, atol=1e-9)))


def verify(path: Path, root: Path, *, data_root=None, device: str = "cpu", checkpoint: Path | None = None,
           tolerance: float = DEFAULT_VERIFY_TOLERANCE) -> Verification:
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
    source = checkpoint or (root / entry["checkpoint"]["path"] if entry["checkpoint"].get("path") else None)
    if source is None:
        raise LeaderboardError(f"the weights are at {entry['checkpoint']['url']}: download them and pass "
                               "--checkpoint PATH")
    if not Path(source).is_file():
        raise LeaderboardError(f"the weights {source} are not here (checkpoints are kept out of git): get the "
                               "file from the submitter, or reproduce it with the entry's bench command, and pass "
                               "--checkpoint PATH; its sha256 must be " + entry["checkpoint"]["sha256"])
    data = Path(source).read_bytes()
    rows.append(hash_row("checkpoint sha256", entry["checkpoint"]["sha256"], sha256_of(data)))
    if not all(row.ok for row in rows):
        return Verification(rows, problems)
    learner = build_learner(result, suite, load_weights(data, str(source)))
    measured = evaluate_on_suite(learner, suite, facts.pools, device=device)
    return Verification(rows + statistic_rows(result["tables"], measured, tolerance), problems)


def format_verification(verification: Verification, reference: str, tolerance: float) -> str:
    header = ["table", "statistic", "claimed", "measured", ""]
    body = [[r.table, r.statistic, r.claimed, r.measured, "ok" if r.ok else "MISMATCH"] for r in verification.rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"invalid: {problem}" for problem in verification.problems]
    bad = sum(not row.ok for row in verification.rows)
    lines.append(f"{reference}: verified, every statistic within {100 * tolerance:g} percentage points of the claim"
                 if verification.ok else
                 f"{reference}: VERIFICATION FAILED ({bad} mismatches, {len(verification.problems)} problems)")
    return "\n".join(lines)


