"""The leaderboard: results anyone can re-check, one JSON file per entry.

    python -m fewshot_mem.leaderboard submit RESULT.json [--checkpoint PATH | --checkpoint-url URL]
        [--name ENTRY] [--submitter NAME] [--paper URL] [--code URL] [--force] [--root DIR]
    python -m fewshot_mem.leaderboard validate [ENTRY ...] [--root DIR]
    python -m fewshot_mem.leaderboard verify ENTRY [--device cpu] [--tolerance 0.001] [--root DIR]
    python -m fewshot_mem.leaderboard render [--root DIR]

An entry, ``<root>/entries/<suite name@version>/<entry>.json``, holds the results JSON the
bench wrote (every table with its per-episode accuracies), who submitted it, links to the
paper and code, and the sha256 of its weights: a weights-only state dict stored at
``<root>/checkpoints/<suite>/<entry>.pt`` (kept out of git), or a URL to get it from.

``validate`` checks what can be checked without running a model: the schema, that the suite
exists, that the fingerprint is that of the suite's frozen test episodes (so results of
``--test-episodes`` runs are refused), the number of episodes, and that every mean and
interval follows from the per-episode values. ``verify`` also rebuilds the learner, loads
the checkpoint (after checking its sha256, with ``weights_only=True``), re-evaluates it the
way the bench does (``bench.evaluate_on_suite``) and prints what differs. ``render`` writes
``README.md`` and ``index.html``. Exit codes: 0 fine, 1 verification failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import torch

from .bench import evaluate_on_suite
from .data.episodes import ClassPool, LabelOffsetSampler
from .errors import FewshotMemError
from .evaluate import INSTANCE_POSITIONS, Estimate
from .models.registry import create
from .paths import resolve_data_root, write_atomically
from .report import ordinal, plot_instance_accuracy, write_json
from .suites import Suite, get_suite, load_pools
from .train import load_checkpoint

ENTRY_FORMAT = "fewshot-mem-leaderboard-entry/1"
RESULT_FORMAT = "fewshot-mem-result/1"
DEFAULT_ROOT = Path("leaderboard")
# Entry names become file names: letters, digits, '.', '_' and '-' only, and no leading dot,
# so a name can neither climb out of its folder ('..', '/') nor hide a file.
ENTRY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MODEL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # a registered name or package.module:Class
# Links are written into Markdown and HTML: only plain http(s) URLs, without the characters
# that would end a Markdown link or an HTML attribute.
WEB_LINK = re.compile(r"https?://[^\s<>\"'()\[\]`|\\]+")
# JSON keeps floats exactly, so a mean recomputed from the per-episode values matches a
# genuine one to rounding error; anything further off was edited.
CONSISTENCY_TOLERANCE = 1e-9
DEFAULT_VERIFY_TOLERANCE = 1e-3  # 0.1 percentage point: room for another machine's float rounding


class LeaderboardError(FewshotMemError):
    """Bad input to the leaderboard: the CLI prints it and exits with 2."""


class InvalidEntryError(LeaderboardError):
    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{what} is not a valid leaderboard entry:\n  - " + "\n  - ".join(problems))


# --- schema ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListOf:
    item: object


@dataclass(frozen=True)
class MapOf:
    value: object


@dataclass(frozen=True)
class Nullable:
    inner: object


Number = (int, float)
ESTIMATE_SCHEMA = {"mean": Number, "ci95": Number, "episodes": int}
TABLE_SCHEMA = {"protocol": str, "estimates": MapOf(ESTIMATE_SCHEMA), "per_episode": MapOf(ListOf(Number))}
RESULT_SCHEMA = {"format": str, "suite": str, "fingerprint": str, "model": str, "hyperparameters": dict,
                 "budget": str, "seed": int, "tables": MapOf(TABLE_SCHEMA)}
CHECKPOINT_SCHEMA = {"sha256": str, "path": Nullable(str), "url": Nullable(str)}
ENTRY_SCHEMA = {"format": str, "entry": str, "submitter": str, "paper": Nullable(str), "code": Nullable(str),
                "submitted": str, "checkpoint": CHECKPOINT_SCHEMA, "result": RESULT_SCHEMA}
TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", Number: "a number"}


def schema_problems(value: object, schema: object, where: str) -> list[str]:
    """What in ``value`` does not fit ``schema`` (required keys and types); [] if it fits."""
    if isinstance(schema, Nullable):
        return [] if value is None else schema_problems(value, schema.inner, where)
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where} must be an object"]
        problems = [f"{where}.{key} is missing" for key, sub in schema.items()
                    if key not in value and not isinstance(sub, Nullable)]
        for key, sub in schema.items():
            if key in value:
                problems += schema_problems(value[key], sub, f"{where}.{key}")
        return problems
    if isinstance(schema, MapOf):
        if not isinstance(value, dict) or not value:
            return [f"{where} must be a non-empty object"]
        return [p for key, item in value.items() for p in schema_problems(item, schema.value, f"{where}.{key}")]
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return [f"{where} must be a list"]
        for index, item in enumerate(value):
            problems = schema_problems(item, schema.item, f"{where}[{index}]")
            if problems:
                return problems  # the first bad item says enough; a list may hold thousands
        return []
    if isinstance(value, bool) or not isinstance(value, schema):  # bool is an int to Python, not to JSON
        return [f"{where} must be {TYPE_NAMES.get(schema, schema)}, not {type(value).__name__}"]
    return []


# --- what a suite's frozen test episodes are -------------------------------------------------

@dataclass(frozen=True)
class SuiteFacts:
    """What entries of a suite must match, computed once per suite and data root."""

    suite: Suite
    fingerprint: str
    statistics: dict[str, tuple[str, ...]]  # table -> the estimates it must hold
    pools: dict[str, ClassPool] = field(repr=False)


_FACTS: dict[tuple[str, str], SuiteFacts] = {}


def _statistics(table: str, sampler) -> tuple[str, ...]:
    if isinstance(sampler, LabelOffsetSampler):
        return tuple(f"instance_{p}" for p in INSTANCE_POSITIONS if p <= sampler.instances_per_class)
    return (table,)


def suite_facts(suite: Suite, data_root=None) -> SuiteFacts:
    """The suite's fingerprint and tables; the data is loaded once per process."""
    key = (suite.id, str(resolve_data_root(data_root).resolve()))
    if key not in _FACTS:
        pools = load_pools(suite, data_root, progress=False)
        statistics = {t: _statistics(t, s) for t, s in suite.test_samplers(pools["test"]).items()}
        _FACTS[key] = SuiteFacts(suite, suite.fingerprint(pools["test"]), statistics, pools)
    return _FACTS[key]


# --- validation -------------------------------------------------------------------------------

def table_problems(name: str, table: dict, statistics: tuple[str, ...], episodes: int) -> list[str]:
    """One table against the suite: its statistics, episode counts, and estimates that
    follow from the per-episode values."""
    where = f"result.tables.{name}"
    protocol = "online" if name == "online" else "episodic"
    problems = [] if table["protocol"] == protocol else [f"{where}.protocol must be {protocol!r}"]
    for part in ("estimates", "per_episode"):
        if set(table[part]) != set(statistics):
            problems.append(f"{where}.{part} must hold exactly {', '.join(statistics)}")
    for key in set(statistics) & set(table["estimates"]) & set(table["per_episode"]):
        values, claimed = table["per_episode"][key], table["estimates"][key]
        if len(values) != episodes:
            problems.append(f"{where}.per_episode.{key} has {len(values)} episodes; the suite has {episodes}")
            continue
        if not all(0.0 <= v <= 1.0 for v in values):
            problems.append(f"{where}.per_episode.{key} holds values outside [0, 1]")
            continue
        recomputed = Estimate.from_samples(np.array(values, dtype=np.float64))
        for statistic in ("mean", "ci95"):
            if not math.isclose(claimed[statistic], getattr(recomputed, statistic), rel_tol=0,
                                abs_tol=CONSISTENCY_TOLERANCE):
                problems.append(f"{where}.estimates.{key}.{statistic} is {claimed[statistic]!r}, but its "
                                f"per-episode values give {getattr(recomputed, statistic)!r}")
        if claimed["episodes"] != episodes:
            problems.append(f"{where}.estimates.{key}.episodes is {claimed['episodes']}; the suite has {episodes}")
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
        problems += table_problems(name, tables[name], facts.statistics[name], suite.test_episodes)
    return problems


def name_problem(name: str) -> str | None:
    if ENTRY_NAME.fullmatch(name) is None:
        return (f"entry name {name!r} is not allowed: use 1 to 100 of A-Z a-z 0-9 . _ -, "
                "not starting with a dot")
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
    return problems


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


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_checkpoint_problems(entry: dict, root: Path) -> list[str]:
    """The stored weights are there and are the ones the entry names."""
    relative = entry["checkpoint"].get("path")
    if relative is None:
        return []
    path = root / relative
    if not path.is_file():  # weights stay out of git: a clone has the entries, not always the weights
        return []
    actual = sha256_of(path.read_bytes())
    if actual != entry["checkpoint"]["sha256"]:
        return [f"the checkpoint {path} has sha256 {actual}, but the entry claims {entry['checkpoint']['sha256']}"]
    return []


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise LeaderboardError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise LeaderboardError(f"{path} is not JSON: {error}") from error


def validate_file(path: Path, root: Path, data_root=None) -> list[str]:
    """All problems of the entry file at ``path``: its content, its place, its checkpoint."""
    entry = read_json(path)
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


# --- submit -----------------------------------------------------------------------------------

def state_dict_of(loaded: object, source: str) -> dict[str, torch.Tensor]:
    """The weights in a bench checkpoint ({"model": ...}) or a plain state dict."""
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not (isinstance(loaded, dict) and loaded
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items())):
        raise LeaderboardError(f"{source} holds no state dict (a bench best.pt or a dict of tensors)")
    return loaded


def load_weights(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """Weights from checkpoint bytes (those whose sha256 was checked, not the file again);
    load_checkpoint loads with weights_only=True, which never runs code from the file."""
    try:
        loaded = load_checkpoint(io.BytesIO(data))
    except Exception as error:  # torch raises many kinds for a file that is not a safe checkpoint
        raise LeaderboardError(f"{source} cannot be loaded as weights only: {error}") from error
    return state_dict_of(loaded, source)


def build_learner(result: dict, suite: Suite, weights: dict[str, torch.Tensor]):
    """The result's learner with ``weights``, as the bench built it."""
    learner = create(result["model"], suite.task(), **result["hyperparameters"])
    try:
        learner.load_state_dict(weights)
    except RuntimeError as error:
        raise LeaderboardError(f"the checkpoint does not fit {result['model']} with "
                               f"{result['hyperparameters']}: {error}") from error
    return learner


def default_entry_name(result: dict) -> str:
    raw = f"{result['model']}-{result['budget']}-seed{result['seed']}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".")[:100]


def serialized(weights: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    return buffer.getvalue()


def submit(result_path: Path, root: Path, *, checkpoint: Path | None = None, checkpoint_url: str | None = None,
           name: str | None = None, submitter: str = "anonymous", paper: str | None = None,
           code: str | None = None, force: bool = False, data_root=None) -> Path:
    """Validates a results JSON with its checkpoint and adds it as an entry; returns its path.

    Nothing is written unless every check passes. The weights are stored as a weights-only
    state dict under ``root`` unless ``checkpoint_url`` says where to get them instead (then
    the sha256 is that of the file at ``checkpoint``, which must be the file at the URL).
    """
    result = read_json(result_path)
    problems = schema_problems(result, RESULT_SCHEMA, "result")
    if problems:
        raise InvalidEntryError(str(result_path), problems)
    suite = get_suite(result["suite"])
    problems = result_problems(result, suite_facts(suite, data_root))
    if problems:
        raise InvalidEntryError(str(result_path), problems)
    name = name or default_entry_name(result)
    if name_problem(name):
        raise LeaderboardError(name_problem(name))
    entry_path = root / "entries" / suite.id / f"{name}.json"
    stored_path = root / checkpoint_location(suite, name)
    if not force and (entry_path.exists() or stored_path.exists()):
        raise LeaderboardError(f"{suite.id}/{name} is already on the leaderboard ({entry_path}); "
                               "pass --force to replace it, or choose another --name")
    source = checkpoint or result.get("checkpoint")
    if not source or not Path(source).is_file():
        raise LeaderboardError(f"no checkpoint at {source or '(none given)'}: pass --checkpoint PATH "
                               "(the run's best.pt)")
    source = Path(source)
    weights = load_weights(source.read_bytes(), str(source))
    build_learner(result, suite, weights)  # the weights must fit the model they claim to be
    data = source.read_bytes() if checkpoint_url else serialized(weights)
    where = {"url": checkpoint_url} if checkpoint_url else {"path": checkpoint_location(suite, name)}
    entry = {"format": ENTRY_FORMAT, "entry": name, "submitter": submitter, "paper": paper, "code": code,
             "submitted": date.today().isoformat(), "checkpoint": {"sha256": sha256_of(data), **where},
             "result": result}
    problems = metadata_problems(entry, suite)
    if problems:
        raise InvalidEntryError(str(result_path), problems)
    if not checkpoint_url:
        write_atomically(data, stored_path)
    write_json(entry, entry_path)
    return entry_path


# --- verify -----------------------------------------------------------------------------------

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
    measured: dict | None = None  # the re-measured tables, where the weights were evaluated

    @property
    def ok(self) -> bool:
        return not self.problems and all(row.ok for row in self.rows)


def find_entry(root: Path, reference: str) -> Path:
    """An entry file from ``name``, ``suite/name`` or a path to the JSON file."""
    if reference.endswith(".json") and Path(reference).is_file():
        return Path(reference)
    suite_part, _, name = reference.rpartition("/")
    if name_problem(name):
        raise LeaderboardError(name_problem(name))
    pattern = f"{get_suite(suite_part).id if suite_part else '*'}/{name}.json"
    matches = sorted((root / "entries").glob(pattern))
    if not matches:
        raise LeaderboardError(f"no entry {reference!r} under {root / 'entries'}")
    if len(matches) > 1:
        choices = ", ".join(f"{p.parent.name}/{name}" for p in matches)
        raise LeaderboardError(f"{reference!r} is ambiguous: name one of {choices}")
    return matches[0]


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
           tolerance: float = DEFAULT_VERIFY_TOLERANCE, progress: bool = False) -> Verification:
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
    measured = evaluate_on_suite(learner, suite, facts.pools, device=device, progress=progress)
    return Verification(rows + statistic_rows(result["tables"], measured, tolerance), problems, measured)


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


# --- render -----------------------------------------------------------------------------------

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


CAPTIONS = {"online": "Online protocol: accuracy (%) by instance position, ± 95% CI",
            "episodic": "Episodic protocol: query accuracy (%), ± 95% CI"}


def board_table(protocol: str, columns: list[tuple[str, str, str, str]], entries: list[dict]) -> BoardTable:
    chosen = [c for c in columns if c[0] == protocol]
    estimates = [[e["result"]["tables"][table]["estimates"][key] for _, _, table, key in chosen] for e in entries]
    ranks = [shared_ranks([(row[c]["mean"], row[c]["ci95"]) for row in estimates]) for c in range(len(chosen))]
    rows = [Row(entry["entry"], entry["result"]["model"], entry["submitter"], _links(entry),
                tuple(Cell(est["mean"], est["ci95"], ranks[c][i]) for c, est in enumerate(estimates[i])))
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
    header = ["avg. rank", "entry", "model", "submitter", *table.columns, "links"]
    lines = [f"**{table.caption}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([" ---: ", " --- ", " --- ", " --- "] + [" ---: "] * len(table.columns) + [" --- "]) + "|"]
    for row in table.rows:
        links = " · ".join(f"[{label}]({href})" for label, href in row.links)
        lines.append("| " + " | ".join([f"{row.average_rank:.2f}", f"`{row.entry}`", f"`{row.model}`",
                                        _md_text(row.submitter), *map(_md_cell, row.cells), links]) + " |")
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
                                                       "links"))
    body = []
    for row in table.rows:
        cells = "".join(f'<td class="num{" best" if c.rank == 1 else ""}">{escape(c.text)} '
                        f'<span class="rank">({c.rank})</span></td>' for c in row.cells)
        links = " · ".join(f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in row.links)
        body.append(f"<tr><td class=\"num\">{row.average_rank:.2f}</td><td><code>{escape(row.entry)}</code></td>"
                    f"<td><code>{escape(row.model)}</code></td><td>{escape(row.submitter)}</td>{cells}"
                    f"<td>{links}</td></tr>")
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


# --- CLI --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the leaderboard folder (default: leaderboard)")
    common.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.leaderboard", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    submit_ = commands.add_parser("submit", parents=[common], help="validate a results JSON and add it as an entry")
    submit_.add_argument("result", type=Path, help="a results JSON written by the bench")
    submit_.add_argument("--checkpoint", type=Path, default=None,
                         help="the weights (default: the checkpoint the results JSON names)")
    submit_.add_argument("--checkpoint-url", default=None,
                         help="store no weights here: they are at this URL (the file --checkpoint names)")
    submit_.add_argument("--name", default=None, help="entry name (default: MODEL-BUDGET-seedN)")
    submit_.add_argument("--submitter", default="anonymous")
    submit_.add_argument("--paper", default=None, help="URL of the paper")
    submit_.add_argument("--code", default=None, help="URL of the code")
    submit_.add_argument("--force", action="store_true", help="replace an entry of the same name")
    validate_ = commands.add_parser("validate", parents=[common], help="check every entry (or the ones named)")
    validate_.add_argument("entries", nargs="*", help="entry names, suite/name, or JSON paths")
    verify_ = commands.add_parser("verify", parents=[common], help="re-evaluate an entry's checkpoint and compare")
    verify_.add_argument("entry", help="an entry name, suite/name, or JSON path")
    verify_.add_argument("--device", default="cpu")
    verify_.add_argument("--checkpoint", type=Path, default=None, help="the weights, for an entry that has a URL")
    verify_.add_argument("--tolerance", type=float, default=DEFAULT_VERIFY_TOLERANCE,
                         help="largest difference allowed in a mean or CI, as a fraction (default 0.001)")
    commands.add_parser("render", parents=[common], help="write README.md and index.html")
    return parser.parse_args(argv)


def _validate_command(args: argparse.Namespace) -> int:
    paths = [find_entry(args.root, e) for e in args.entries] or entry_files(args.root)
    bad = 0
    for path in paths:
        problems = validate_file(path, args.root, args.data_root)
        bad += bool(problems)
        print(f"{'ok' if not problems else 'INVALID'}  {path}" + "".join(f"\n  - {p}" for p in problems))
    print(f"{len(paths)} entries, {bad} invalid")
    return 2 if bad else 0


def run(args: argparse.Namespace) -> int:
    if args.command == "submit":
        path = submit(args.result, args.root, checkpoint=args.checkpoint, checkpoint_url=args.checkpoint_url,
                      name=args.name, submitter=args.submitter, paper=args.paper, code=args.code,
                      force=args.force, data_root=args.data_root)
        print(f"added {path}; now run: python -m fewshot_mem.leaderboard verify {path.parent.name}/{path.stem}")
        return 0
    if args.command == "validate":
        return _validate_command(args)
    if args.command == "verify":
        path = find_entry(args.root, args.entry)
        verification = verify(path, args.root, data_root=args.data_root, device=args.device,
                              checkpoint=args.checkpoint, tolerance=args.tolerance)
        print(format_verification(verification, f"{path.parent.name}/{path.stem}", args.tolerance))
        return 0 if verification.ok else 1
    readme, page = render(args.root, args.data_root)
    print(f"wrote {readme} and {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FewshotMemError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
