"""Which entries a change adds or modifies, for CI to re-evaluate (`verify --changed`).

The answer comes from git, never from the entries: an entry's verification record is written
by whoever made the change, so it cannot say whether the entry needs checking. An entry counts
as changed when its JSON file or its weights differ between the merge base of HEAD with the
base branch and the working tree (committed or not, tracked or not). When git cannot tell (no
repository, no base branch), every entry counts as changed: slower, never laxer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .schema import LeaderboardError

BASE_VARIABLE = "LEADERBOARD_BASE"
DEFAULT_BASES = ("origin/main", "main")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def merge_base(root: Path, base: str | None) -> tuple[str | None, str]:
    """The commit to compare with, and the base it came from (or why there is none). A base that
    was named (``base``, $LEADERBOARD_BASE) must exist; the default ones may not."""
    named = base or os.environ.get(BASE_VARIABLE)
    for candidate in [named] if named else DEFAULT_BASES:
        commit = _git(root, "merge-base", candidate, "HEAD")
        if commit:
            return commit.strip(), candidate
    if named:
        raise LeaderboardError(f"the base {named!r} is not a git branch or commit of the repository holding "
                               f"{root} (a shallow clone may lack it: fetch it, or name another)")
    return None, f"none of {', '.join(DEFAULT_BASES)} is a git branch or commit here"


def entry_of(relative: str) -> str | None:
    """``entries/<suite>/<name>.json`` for an entry file or its weights (paths relative to the board)."""
    parts = Path(relative).parts
    if len(parts) != 3 or parts[0] not in ("entries", "checkpoints"):
        return None
    suite, name = parts[1], Path(parts[2])
    if (parts[0], name.suffix) not in (("entries", ".json"), ("checkpoints", ".pt")):
        return None
    return f"entries/{suite}/{name.stem}.json"


def changed_entries(root: Path, entries: list[Path], base: str | None = None) -> tuple[list[Path], str]:
    """The entries (of ``entries``) that differ from the base, and a line saying how they were chosen."""
    commit, origin = merge_base(root, base)
    if commit is None:
        return entries, f"every entry ({origin})"
    diff = _git(root, "diff", "--name-only", "--relative", commit, "--", "entries", "checkpoints")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", "entries", "checkpoints")
    if diff is None or untracked is None:
        return entries, "every entry (git could not compare with the base)"
    touched = {entry_of(line) for line in (diff + untracked).splitlines()}
    chosen = [path for path in entries if path.relative_to(root).as_posix() in touched]
    return chosen, f"entries added or modified since {origin} ({commit[:12]})"
