"""Versioned on-disk caches, written atomically.

A cache is a directory of arrays (``<name>.npy``) and ``meta.json``, which
holds a format ``version``, a ``key`` (what the cache was built from: its sources'
paths, sizes and times), each array file's sha256, size and times (``arrays``), and
whatever else its data set records. It is built in a staging directory beside
its final place and renamed into place only once complete, so a crash, a full
disk or bad input never leaves a cache that looks complete; and
:func:`changed_arrays` finds an array changed after it was built (a bad disk, a
stray script), so no one computes results from damaged data without knowing.

    with cache.staged(directory, version=1, key=sources) as stage:
        np.save(stage.path / "images.npy", images)
        stage.meta["classes"] = names
    images = cache.load_array(directory, "images", mmap=True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import CacheError
from ..paths import make_directories, remove_empty_directories, write_atomically

META = "meta.json"
ARRAYS = "arrays"  # meta.json's record of each array file: {"<name>.npy": {sha256, bytes, mtime_ns, ctime_ns}}
_STAGING = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]+$")


@dataclass
class Stage:
    """An empty directory to fill; ``meta`` is written to ``meta.json`` on success."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The cache's metadata, or None when there is no readable ``meta.json``."""
    try:
        meta = json.loads((Path(directory) / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_current(directory: Path, version: int, key: Any) -> bool:
    """True if ``directory`` is a complete cache of this ``version`` built from ``key``."""
    meta = read_meta(directory)
    return meta is not None and meta.get("version") == version and meta.get("key") == _jsonable(key)


def load_array(directory: Path, name: str, mmap: bool = False) -> np.ndarray:
    """Loads ``<name>.npy``; read-only, memory-mapped if ``mmap``."""
    array = np.load(Path(directory) / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    if not mmap:
        array.setflags(write=False)  # shared by every caller: nobody may change it in place
    return array


@contextmanager
def staged(directory: Path, version: int, key: Any) -> Iterator[Stage]:
    """Builds a cache at ``directory``: yields a staging directory, then renames it into place.

    The staging directory is created first, so an unwritable location is
    reported before any expensive work. If the block raises, everything this
    created (staging directory and any parent folders) is removed and the
    exception propagates; an existing cache at ``directory`` is untouched.
    On success a cache at ``directory`` is replaced, unless another process
    committed one for the same ``key`` meanwhile: that one is kept.

    Raises:
        CacheError: the cache cannot be written: the staging directory cannot
            be made (the block does not run), or the block or the commit hits
            an OSError (the block is expected to only write into the stage);
            nothing is left behind.
    """
    directory = Path(directory)
    # A cache that is current already is being rebuilt on purpose (it is damaged): replace it. One
    # that becomes current while we build was committed by another process: keep theirs.
    replace_current = is_current(directory, version, key)
    try:
        created = make_directories(directory.parent)
    except OSError as error:
        raise _unwritable(directory.parent, error) from error
    try:
        _remove_abandoned_stages(directory)
        staging = directory.with_name(
            f".{directory.name}.tmp-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")
        staging.mkdir()
    except OSError as error:
        remove_empty_directories(created)
        raise _unwritable(directory.parent, error) from error
    stage = Stage(staging)
    try:
        try:
            yield stage
            arrays = {path.name: _record(path) for path in sorted(staging.glob("*.npy"))}
            (staging / META).write_text(json.dumps({**stage.meta, "version": version, "key": _jsonable(key),
                                                    ARRAYS: arrays}))
            _commit(staging, directory, version, key, replace_current)
        except OSError as error:  # the block only writes here: its OSErrors are ours to explain
            raise _unwritable(directory.parent, error) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # a no-op after a successful commit
        if not directory.exists():
            remove_empty_directories(created)


def changed_arrays(directory: Path) -> list[str]:
    """What differs between the cache's array files and those it was built with: [] if nothing.

    A file whose size, mtime and ctime are as recorded is unchanged, provided it was recorded
    before ``meta.json`` was written (the time stamps are coarse: as git does, a file touched in
    the same tick as the record is checked in full). Any other file is read and its sha256
    compared. Writing a file in place changes its ctime, even if its mtime is then set back, so a
    change made through the file system is always caught; the full read happens once per change:
    a file found unchanged gets its new times recorded (where ``meta.json`` is writable).

    A cache built before digests were recorded gets them on its first check (trusted as it is).
    """
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        return [f"{META} is missing or unreadable"]
    recorded = meta.get(ARRAYS)
    if not isinstance(recorded, dict):
        _rewrite_meta(directory, {**meta, ARRAYS: {p.name: _record(p) for p in sorted(directory.glob("*.npy"))}})
        return []
    written = (directory / META).stat().st_mtime_ns
    changed, refreshed = [], {}
    for name, record in recorded.items():
        try:
            problem, fresh = _compare(directory / name, record, written)
        except (OSError, KeyError, TypeError) as error:  # a missing file, or a hand-edited record
            problem, fresh = f"{name} cannot be checked ({error})", None
        if problem:
            changed.append(problem)
        elif fresh is not None:
            refreshed[name] = fresh
    if refreshed and not changed:
        _rewrite_meta(directory, {**meta, ARRAYS: {**recorded, **refreshed}})
    return changed


def intact(directory: Path, label: str) -> bool:
    """False, with a warning that says what changed, if :func:`changed_arrays` finds anything."""
    changed = changed_arrays(directory)
    if changed:
        warnings.warn(f"{label} in {directory} differs from what was built ({'; '.join(changed)}); "
                      "it is built again from the source data.", stacklevel=3)
    return not changed


def _compare(path: Path, record: dict, meta_written_ns: int) -> tuple[str, dict | None]:
    """(what changed or "", a new record to keep when only the times changed, else None)."""
    stat = path.stat()
    if stat.st_size != record["bytes"]:
        return f"{path.name} holds {stat.st_size} bytes, not the {record['bytes']} it was built with", None
    if (stat.st_mtime_ns, stat.st_ctime_ns) == (record["mtime_ns"], record["ctime_ns"]) \
            and record["ctime_ns"] < meta_written_ns:
        return "", None
    fresh = _record(path)
    if fresh["sha256"] != record["sha256"]:
        return f"{path.name} was modified after the cache was built (its sha256 differs)", None
    return "", fresh


def _record(path: Path) -> dict:
    stat = path.stat()
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"sha256": digest, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}


def _rewrite_meta(directory: Path, meta: dict) -> None:
    try:
        write_atomically(json.dumps(meta).encode(), directory / META)
    except OSError:  # a read-only cache stays as it is: it is checked in full next time too
        pass


def remove_other_versions(directory: Path, pattern: str) -> None:
    """Deletes sibling caches whose names match ``pattern`` (a regex), except ``directory``.

    Only directories holding a ``meta.json`` are removed: they are caches this
    code wrote (for an older format), never user data.
    """
    directory = Path(directory)
    for sibling in directory.parent.iterdir():
        if sibling.name != directory.name and re.fullmatch(pattern, sibling.name) and (sibling / META).is_file():
            shutil.rmtree(sibling, ignore_errors=True)


def _commit(staging: Path, directory: Path, version: int, key: Any, replace_current: bool) -> None:
    """Moves ``staging`` to ``directory``; a cache there is moved aside, then deleted."""
    if not replace_current and is_current(directory, version, key):  # theirs may be in use already
        return
    aside = directory.with_name(f".{directory.name}.old-{secrets.token_hex(4)}")
    try:
        os.rename(directory, aside)
    except FileNotFoundError:
        aside = None
    try:
        os.rename(staging, directory)
    except OSError:
        # Another process may have committed the same cache meanwhile: theirs is as good as ours.
        if not is_current(directory, version, key):
            raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _remove_abandoned_stages(directory: Path) -> None:
    """Removes staging directories left by killed processes of this host (never live ones)."""
    for candidate in directory.parent.glob(f".{directory.name}.tmp-*"):
        match = _STAGING.match(candidate.name)
        if match and match["host"] == _host() and not _alive(int(match["pid"])):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname()) or "host"


def _unwritable(where: Path, error: OSError) -> CacheError:
    reason = "a file is in the way of a folder" if isinstance(error, (FileExistsError, NotADirectoryError)) \
        else error.strerror or str(error)
    return CacheError(f"cannot write the cache in {where}: {reason}. Make that folder "
                      "writable (or free some space), or choose another data root with --data-root or "
                      "FEWSHOT_MEM_DATA; nothing was kept.")


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so keys compare equal."""
    return json.loads(json.dumps(value))
