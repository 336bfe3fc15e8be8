"""What a leaderboard entry is: its format, the names and links it may hold, and a small
schema checker (required keys and JSON types) with messages that name the bad field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FewshotMemError
from ..results import RESULT_FORMAT  # noqa: F401  (the results record owns its format)

ENTRY_FORMAT = "fewshot-mem-leaderboard-entry/1"
DEFAULT_ROOT = Path("leaderboard")
# Entry names become file names and command arguments: letters, digits, '.', '_' and '-' only,
# starting with neither a dot nor a dash, so a name can neither climb out of its folder ('..',
# '/'), nor hide a file, nor pass for an option.
ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MODEL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # a registered name or package.module:Class
# Links are written into Markdown and HTML: only plain http(s) URLs of printable ASCII (no control
# or bidirectional-override characters, which hide what a link says), without the characters
# that would end a Markdown link or an HTML attribute.
WEB_LINK = re.compile(r"https?://(?:(?![<>\"'()\[\]`|\\])[\x21-\x7e])+")
# Free text (a submitter's name) may be any language, but not control characters or the
# bidirectional controls that reorder what the board shows around them.
HIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# JSON keeps floats exactly, so a mean recomputed from the per-episode values matches a
# genuine one to rounding error; anything further off was edited.
CONSISTENCY_TOLERANCE = 1e-9
# A bare entry name is looked up in this suite first (the bench's default, Santoro's Table 1).
DEFAULT_SUITE = "omniglot-5way@1"


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
# A per-episode value is None where the episode has none: no class shown that often (episodes cut short).
TABLE_SCHEMA = {"protocol": str, "estimates": MapOf(ESTIMATE_SCHEMA), "per_episode": MapOf(ListOf(Nullable(Number)))}
RESULT_SCHEMA = {"format": str, "suite": str, "fingerprint": str, "model": str, "hyperparameters": dict,
                 "budget": str, "seed": int, "tables": MapOf(TABLE_SCHEMA)}
CHECKPOINT_SCHEMA = {"sha256": str, "path": Nullable(str), "url": Nullable(str)}
# Written by `verify --record`: when, with which code and where the entry last re-measured as claimed.
# results_sha256 hashes what was verified (the result and the weights' sha256), so any later
# change to them leaves a record that no longer matches.
VERIFICATION_SCHEMA = {"results_sha256": str, "commit": str, "date": str, "hardware": str,
                       "differing_episodes": int, "seconds": Nullable(Number)}  # seconds: of the re-evaluation
ENTRY_SCHEMA = {"format": str, "entry": str, "submitter": str, "paper": Nullable(str), "code": Nullable(str),
                "submitted": str, "checkpoint": CHECKPOINT_SCHEMA, "result": RESULT_SCHEMA,
                "verification": Nullable(VERIFICATION_SCHEMA)}
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

