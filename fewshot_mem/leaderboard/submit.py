"""``submit``: a results JSON and its weights become an entry, after every check passes."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from ..paths import write_atomically
from ..report import write_json
from ..suites import get_suite
from .schema import ENTRY_FORMAT, RESULT_SCHEMA, InvalidEntryError, LeaderboardError, schema_problems
from .validate import checkpoint_location, metadata_problems, name_problem, read_json, result_problems, suite_facts
from .weights import build_learner, load_weights, serialized, sha256_of

def default_entry_name(result: dict) -> str:
    raw = f"{result['model']}-{result['budget']}-seed{result['seed']}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".")[:100]


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


