"""Checks that need no model: an entry against its suite's frozen test episodes (fingerprint,
tables, episode counts, estimates that follow from the per-episode values), its metadata,
its place on disk and its stored weights' sha256."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path

import numpy as np

from ..data.episodes import ClassPool, LabelOffsetSampler, without_pixels
from ..errors import FewshotMemError
from ..evaluate import INSTANCE_POSITIONS, Estimate
from ..paths import resolve_data_root
from ..suites import Suite, get_suite, load_pools
from .schema import (CONSISTENCY_TOLERANCE, DEFAULT_SUITE, ENTRY_FORMAT, ENTRY_NAME, HIDDEN_CHARACTERS, ENTRY_SCHEMA, MODEL_NAME, RESULT_FORMAT, SHA256,
                     WEB_LINK, InvalidEntryError, LeaderboardError, schema_problems)
from .weights import sha256_of

# A per-episode value is float32(k) / float32(n), stored as float64: within 1e-6 of k / n.
GRID_TOLERANCE = 1e-4

# --- what a suite's frozen test episodes are -------------------------------------------------

@dataclass(frozen=True)
class SuiteFacts:
    """What entries of a suite must match, computed once per suite and data root."""

    suite: Suite
    fingerprint: str
    statistics: dict[str, tuple[str, ...]]  # table -> the estimates it must hold
    # table -> statistic -> the predictions behind each episode's value (its unit is 1 / that; 0: none)
    predictions: dict[str, dict[str, np.ndarray]]
    pools: dict[str, ClassPool] = field(repr=False)


_FACTS: dict[tuple[str, str], SuiteFacts] = {}


def _statistics(table: str, sampler) -> tuple[str, ...]:
    if isinstance(sampler, LabelOffsetSampler):
        return tuple(f"instance_{p}" for p in INSTANCE_POSITIONS
                     if p <= min(sampler.instances_per_class, sampler.steps))
    return (table,)


def _predictions(table: str, sampler, episodes: int) -> dict[str, np.ndarray]:
    """Per statistic, the predictions each episode's value averages, (episodes,): at an instance
    position one per class shown that often (every class, unless the episodes are cut short;
    0: no value), in an episode one per query."""
    if not isinstance(sampler, LabelOffsetSampler):
        return {table: np.full(episodes, sampler.ways * sampler.queries)}
    statistics = _statistics(table, sampler)
    if sampler.length is None:
        return {key: np.full(episodes, sampler.ways) for key in statistics}
    shown = without_pixels(sampler).batch(np.arange(episodes)).instance_index.numpy()  # (episodes, T)
    return {key: (shown == int(key.removeprefix("instance_"))).sum(1) for key in statistics}


def suite_facts(suite: Suite, data_root=None) -> SuiteFacts:
    """The suite's fingerprint and tables; the data is loaded once per process."""
    key = (suite.id, str(resolve_data_root(data_root).resolve()))
    if key not in _FACTS:
        pools = load_pools(suite, data_root, progress=False)
        samplers = suite.test_samplers(pools["test"])
        statistics = {t: _statistics(t, s) for t, s in samplers.items()}
        predictions = {t: _predictions(t, s, suite.test_episodes) for t, s in samplers.items()}
        _FACTS[key] = SuiteFacts(suite, suite.fingerprint(pools["test"]), statistics, predictions, pools)
    return _FACTS[key]


# --- validation -------------------------------------------------------------------------------

def off_grid(values: np.ndarray, predictions: np.ndarray | int) -> int:
    """How many per-episode values are no fraction k / predictions: none of a genuine table is
    (the evaluator divides whole counts), so this catches values nudged by less than a prediction."""
    scaled = np.asarray(values, dtype=np.float64) * predictions
    return int(np.sum(np.abs(scaled - np.round(scaled)) > GRID_TOLERANCE))


def presence_problems(where: str, values: list, predictions: np.ndarray) -> list[str]:
    """A value exactly for the episodes with predictions behind it, each in [0, 1]: else the
    values cannot be read at all."""
    if not all(isinstance(v, Number) == bool(n) for v, n in zip(values, predictions)):
        return [f"{where} must hold a value for exactly the episodes that show a class that often "
                f"({int(np.count_nonzero(predictions))} of {len(predictions)}), and None for the others"]
    if not all(0.0 <= v <= 1.0 for v in values if v is not None):
        return [f"{where} holds values outside [0, 1]"]
    return []


def grid_problems(where: str, present: np.ndarray, counts: np.ndarray) -> list[str]:
    """Values that are no whole number of their predictions right (k / n)."""
    wrong = off_grid(present, counts)
    if not wrong:
        return []
    n = f"{counts[0]}" if (counts == counts[0]).all() else "n"
    return [f"{where}: {wrong} values are not a whole number of {'' if n == 'n' else n + ' '}predictions right "
            f"(k / {n})"]


def table_problems(name: str, table: dict, statistics: tuple[str, ...], episodes: int,
                   predictions: dict[str, np.ndarray]) -> list[str]:
    """One table against the suite: its statistics, episode counts, per-episode values that
    are whole counts of correct predictions, and estimates that follow from them."""
    where = f"result.tables.{name}"
    protocol = "online" if name == "online" else "episodic"
    problems = [] if table["protocol"] == protocol else [f"{where}.protocol must be {protocol!r}"]
    for part in ("estimates", "per_episode"):
        if set(table[part]) != set(statistics):
            problems.append(f"{where}.{part} must hold exactly {', '.join(statistics)}")
    for key in set(statistics) & set(table["estimates"]) & set(table["per_episode"]):
        values, claimed, counts = table["per_episode"][key], table["estimates"][key], predictions[key]
        if len(values) != episodes:
            problems.append(f"{where}.per_episode.{key} has {len(values)} episodes; the suite has {episodes}")
            continue
        unreadable = presence_problems(f"{where}.per_episode.{key}", values, counts)
        if unreadable:
            problems += unreadable
            continue
        present = np.array([v for v in values if v is not None], dtype=np.float64)
        problems += grid_problems(f"{where}.per_episode.{key}", present, counts[counts > 0])
        recomputed = Estimate.from_samples(present)
        for statistic in ("mean", "ci95"):
            if not math.isclose(claimed[statistic], getattr(recomputed, statistic), rel_tol=0,
                                abs_tol=CONSISTENCY_TOLERANCE):
                problems.append(f"{where}.estimates.{key}.{statistic} is {claimed[statistic]!r}, but its "
                                f"per-episode values give {getattr(recomputed, statistic)!r}")
        if claimed["episodes"] != len(present):
            problems.append(f"{where}.estimates.{key}.episodes is {claimed['episodes']}; the suite has "
                            f"{len(present)} episodes with a value")
    return problems


def result_problems(result: dict, facts: SuiteFacts) -> list[str]:
    """A results JSON (already fitting RESULT_SCHEMA) against its suite's frozen test episodes."""
    suite = facts.suite
    problems = [] if result["format"] == RESULT_FORMAT else [f"result.format must be {RESULT_FORMAT!r}"]
    if not MODEL_NAME.fullmatch(result["model"]):
        problems.append(f"result.model {result['model']!r} is neither a registered name nor a module:Class spec")
    if result["suite"] != suite.id:
        problems.append(f"result.suite must name the version: {suite.id!r}, not {result['suite']!r}")
    if result["fingerprint"] != facts.fingerprint:
        problems.append(f"result.fingerprint {result['fingerprint']} is not that of the {suite.test_episodes} "
                        f"frozen test episodes of {suite.id} ({facts.fingerprint}); results of a "
                        "--test-episodes run, or of other episodes, cannot go on the leaderboard")
    tables = result["tables"]
    if set(tables) != set(facts.statistics):
        problems.append(f"result.tables must be exactly {', '.join(facts.statistics)} "
                        f"(found {', '.join(tables)})")
    for name in set(tables) & set(facts.statistics):
        problems += table_problems(name, tables[name], facts.statistics[name], suite.test_episodes,
                                   facts.predictions[name])
    return problems


def name_problem(name: str) -> str | None:
    if ENTRY_NAME.fullmatch(name) is None:
        return (f"entry name {name!r} is not allowed: use 1 to 100 of A-Z a-z 0-9 . _ -, "
                "not starting with a dot or a dash")
    return None


def checkpoint_location(suite: Suite, entry: str) -> str:
    """Where an entry's weights live, relative to the leaderboard root."""
    return f"checkpoints/{suite.id}/{entry}.pt"


def metadata_problems(entry: dict, suite: Suite) -> list[str]:
    problems = [p for p in [name_problem(entry["entry"])] if p]
    if entry["format"] != ENTRY_FORMAT:
        problems.append(f"entry.format must be {ENTRY_FORMAT!r}")
    if not entry["submitter"].strip():
        problems.append("entry.submitter is empty")
    if HIDDEN_CHARACTERS.search(entry["submitter"]):
        problems.append("entry.submitter holds control or bidirectional-override characters")
    for key in ("paper", "code"):
        if entry.get(key) is not None and not WEB_LINK.fullmatch(entry[key]):
            problems.append(f"entry.{key} must be an http(s) URL, not {entry[key]!r}")
    checkpoint = entry["checkpoint"]
    if not SHA256.fullmatch(checkpoint["sha256"]):
        problems.append("entry.checkpoint.sha256 must be 64 lowercase hex digits")
    path, url = checkpoint.get("path"), checkpoint.get("url")
    if (path is None) == (url is None):
        problems.append("entry.checkpoint needs exactly one of path (inside the leaderboard) or url")
    elif path is not None and path != checkpoint_location(suite, entry["entry"]):
        problems.append(f"entry.checkpoint.path must be {checkpoint_location(suite, entry['entry'])!r}")
    elif url is not None and not WEB_LINK.fullmatch(url):
        problems.append(f"entry.checkpoint.url must be an http(s) URL, not {url!r}")
    return problems + record_problems(entry)


def results_digest(entry: dict) -> str:
    """sha256 of what `verify` checks: the result (every per-episode value) and the weights' sha256."""
    verified = {"result": entry["result"], "checkpoint_sha256": entry["checkpoint"]["sha256"]}
    return sha256_of(json.dumps(verified, sort_keys=True, separators=(",", ":")).encode())


def record_problems(entry: dict) -> list[str]:
    """A verification record must be one of these results: otherwise it vouches for other numbers."""
    record = entry.get("verification")
    if record is None or record["results_sha256"] == results_digest(entry):
        return []
    return ["entry.verification is the record of other results or weights (they changed after it was "
            "written): verify the entry again with --record, or delete the record"]


def is_verified(entry: dict) -> bool:
    return entry.get("verification") is not None and not record_problems(entry)


def entry_problems(entry: object, data_root=None) -> list[str]:
    """Everything about an entry that needs no file beside it and no model."""
    problems = schema_problems(entry, ENTRY_SCHEMA, "entry")
    if problems:
        return problems
    try:
        suite = get_suite(entry["result"]["suite"])
    except FewshotMemError as error:
        return [f"result.suite: {error}"]
    return metadata_problems(entry, suite) + result_problems(entry["result"], suite_facts(suite, data_root))


def own_checkpoint(entry: dict, root: Path) -> Path | None:
    """Where the entry's stored weights are: ``root/checkpoints/<suite>/<entry>.pt`` and nowhere
    else, reached through no symbolic link; None for weights named by URL. Checked before
    anything is opened, so an entry cannot make the board read a file outside it."""
    relative = entry["checkpoint"].get("path")
    if relative is None:
        return None
    if name_problem(entry["entry"]):
        raise LeaderboardError(f"{name_problem(entry['entry'])}; nothing was opened")
    expected = checkpoint_location(get_suite(entry["result"]["suite"]), entry["entry"])
    if relative != expected:
        raise LeaderboardError(f"entry.checkpoint.path {relative!r} is not the entry's own location {expected!r} "
                               "under the board: refused, nothing was opened")
    path = root
    for part in Path(expected).parts:
        path = path / part
        if path.is_symlink():
            raise LeaderboardError(f"{path} is a symbolic link: a board's weights are plain files under its "
                                   "root; refused, nothing was opened")
    return path


def read_weights_file(path: Path) -> bytes:
    """The bytes of a plain file (O_NOFOLLOW: a link put there after the checks is not followed)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise LeaderboardError(f"cannot open the weights {path}: {error.strerror}") from error
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def stored_checkpoint_problems(entry: dict, root: Path) -> list[str]:
    """The stored weights are the ones the entry names (weights may be absent from a clone)."""
    try:
        path = own_checkpoint(entry, root)
    except LeaderboardError as error:
        return [str(error)]
    if path is None or not path.is_file():
        return []
    actual = sha256_of(read_weights_file(path))
    if actual != entry["checkpoint"]["sha256"]:
        return [f"the checkpoint {path} has sha256 {actual}, but the entry claims {entry['checkpoint']['sha256']}"]
    return []


def stored_weights(path: Path, root: Path) -> Path | None:
    """The entry's weights under ``root``, if they are stored there and present."""
    entry = read_json(path)
    problems = schema_problems(entry, ENTRY_SCHEMA, "entry")
    if problems:
        raise InvalidEntryError(str(path), problems)
    weights = own_checkpoint(entry, root)
    return weights if weights is not None and weights.is_file() else None


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise LeaderboardError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise LeaderboardError(f"{path} is not JSON: {error}") from error


def validate_file(path: Path, root: Path, data_root=None) -> list[str]:
    """All problems of the entry file at ``path``: its content, its place, its checkpoint
    (an unreadable file is one problem, so a board reports all of them, not the first)."""
    try:
        entry = read_json(path)
    except LeaderboardError as error:
        return [str(error)]
    problems = entry_problems(entry, data_root)
    if problems:
        return problems
    if path.stem != entry["entry"] or path.parent.name != entry["result"]["suite"]:
        problems.append(f"the file must be entries/{entry['result']['suite']}/{entry['entry']}.json")
    return problems + stored_checkpoint_problems(entry, root)


def entry_files(root: Path) -> list[Path]:
    return sorted((root / "entries").glob("*/*.json"))


def validate_board(root: Path, data_root=None) -> dict[Path, list[str]]:
    """Every entry file's problems (an empty list for a valid one)."""
    return {path: validate_file(path, root, data_root) for path in entry_files(root)}


def find_entry(root: Path, reference: str) -> Path:
    """An entry file from ``name``, ``suite/name`` or a path to the JSON file."""
    if reference.endswith(".json") and Path(reference).is_file():
        return Path(reference)
    suite_part, _, name = reference.rpartition("/")
    if name_problem(name):
        raise LeaderboardError(name_problem(name))
    pattern = f"{get_suite(suite_part).id if suite_part else '*'}/{name}.json"
    matches = sorted((root / "entries").glob(pattern))
    in_default_suite = [path for path in matches if path.parent.name == DEFAULT_SUITE]
    if not suite_part and in_default_suite:  # the bench's default suite, as `make bench` runs it
        return in_default_suite[0]
    if not matches:
        raise LeaderboardError(f"no entry {reference!r} under {root / 'entries'}")
    if len(matches) > 1:
        choices = ", ".join(f"{p.parent.name}/{name}" for p in matches)
        raise LeaderboardError(f"{reference!r} is ambiguous: name one of {choices} (suite@version/entry)")
    return matches[0]

