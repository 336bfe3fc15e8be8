"""``submit``: a results JSON and its weights become an entry, after every check passes."""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path

from ..paths import temporary_sibling, write_atomically
from ..report import write_json
from ..suites import get_suite
from .schema import ENTRY_FORMAT, RESULT_SCHEMA, InvalidEntryError, LeaderboardError, schema_problems
from .validate import checkpoint_location, metadata_problems, own_checkpoint, read_json, result_problems, suite_facts
from .weights import build_learner, load_weights, serialized, sha256_of

def default_entry_name(result: dict) -> str:
    raw = f"{result['model']}-{result['budget']}-seed{result['seed']}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".-")[:100]


def submit(result_path: Path, root: Path, *, checkpoint: Path | None = None, checkpoint_url: str | None = None,
           name: str | None = None, submitter: str = "anonymous", paper: str | None = None,
           code: str | None = None, force: bool = False, data_root=None) -> Path:
    """Validates a results JSON with its checkpoint and adds it as an entry; returns its path.

    Nothing is written unless every check passes, and the model a result names is imported
    only after every check that needs no import has passed. The weights are stored as a
    weights-only state dict under ``root`` unless ``checkpoint_url`` says where to get them
    instead (then the sha256 is that of the file at ``checkpoint``, which must be the file at
    the URL). Without ``force`` the entry is created exclusively: of two submits of one name,
    exactly one succeeds.
    """
    result = read_json(result_path)
    problems = schema_problems(result, RESULT_SCHEMA, "result")
    if problems:
        raise InvalidEntryError(str(result_path), problems)
    suite = get_suite(result["suite"])
    name = name or default_entry_name(result)
    where = {"url": checkpoint_url} if checkpoint_url else {"path": checkpoint_location(suite, name)}
    entry = {"format": ENTRY_FORMAT, "entry": name, "submitter": submitter, "paper": paper, "code": code,
             "submitted": date.today().isoformat(), "checkpoint": {"sha256": "0" * 64, **where}, "result": result}
    problems = metadata_problems(entry, suite) + result_problems(result, suite_facts(suite, data_root))
    if problems:
        raise InvalidEntryError(str(result_path), problems)
    entry_path = root / "entries" / suite.id / f"{name}.json"
    stored_path = own_checkpoint(entry, root)
    if not force and (entry_path.exists() or (stored_path and stored_path.exists())):
        raise _already_there(suite.id, name, entry_path)
    source = checkpoint or result.get("checkpoint")
    if not source or not Path(source).is_file():
        raise LeaderboardError(f"no checkpoint at {source or '(none given)'}: pass --checkpoint PATH "
                               "(the run's best.pt)")
    source = Path(source)
    weights = load_weights(source.read_bytes(), str(source))
    build_learner(result, suite, weights)  # the weights must fit the model they claim to be (imports it)
    data = source.read_bytes() if checkpoint_url else serialized(weights)
    entry["checkpoint"]["sha256"] = sha256_of(data)
    write_entry(entry, entry_path, stored_path, data, force)
    return entry_path


def _already_there(suite_id: str, name: str, entry_path: Path) -> LeaderboardError:
    return LeaderboardError(f"{suite_id}/{name} is already on the leaderboard ({entry_path}); "
                            "pass --force to replace it, or choose another --name")


def write_entry(entry: dict, entry_path: Path, stored_path: Path | None, weights: bytes, force: bool) -> None:
    """Writes the entry (and its weights). Without ``force`` the entry file is created with a hard
    link from a private temporary file, which fails when the name exists: the first of two
    concurrent submits wins, and the other writes nothing, not even the weights."""
    entry_path.parent.mkdir(parents=True, exist_ok=True)
    if force:
        if stored_path is not None:
            write_atomically(weights, stored_path)
        write_json(entry, entry_path)
        return
    staged = temporary_sibling(entry_path)  # hidden, and no *.json: never taken for an entry
    try:
        staged.write_text(json.dumps(entry, indent=1))
        os.link(staged, entry_path)
    except FileExistsError:
        raise _already_there(entry_path.parent.name, entry["entry"], entry_path) from None
    finally:
        staged.unlink(missing_ok=True)
    if stored_path is not None:
        write_atomically(weights, stored_path)
