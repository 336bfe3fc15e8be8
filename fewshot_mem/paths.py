"""Where data lives (``--data-root``, else ``$FEWSHOT_MEM_DATA``, else ``data/``), the two ways
files are written safely (atomically, and under a directory lock), and folders made so that a
failed write can take them back."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import DirectoryInUseError

try:
    import fcntl
except ImportError:  # not on a POSIX system: directories are not locked there
    fcntl = None

DATA_ROOT_VARIABLE = "FEWSHOT_MEM_DATA"
LOCK_NAME = ".lock"


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_VARIABLE) or "data")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root) if data_root is not None else default_data_root()


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden name beside ``path`` that no other writer (process or thread) will pick."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def write_atomically(content: bytes | Callable[[BinaryIO], object], path: Path, suffix: str = ".tmp") -> None:
    """Writes ``content`` (bytes, or a function that writes into a binary file) to a temporary file
    beside ``path``, flushes it to disk, then renames it over ``path``.

    A reader (or a crash) sees the old file or the new one, never half of one; concurrent writers
    each use their own temporary file, so the last rename wins and none fails. If writing raises,
    the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path, suffix)
    try:
        with open(temporary, "xb") as handle:  # open(), not mkstemp: the file gets the umask's mode
            if callable(content):
                content(handle)
            else:
                handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def make_directories(directory: Path) -> list[Path]:
    """Creates ``directory`` and its missing parents; returns those it created, deepest first, for
    :func:`remove_empty_directories` to take back when what was to go in them fails.

    Raises:
        OSError: one cannot be made (a file in the way, no permission); those made are removed.
    """
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists() or candidate.is_symlink():  # a dangling link is in the way too
            break
        missing.append(candidate)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        remove_empty_directories(missing)
        raise
    return missing


def remove_empty_directories(directories: list[Path]) -> None:
    """Removes ``directories`` (deepest first) while they are empty; stops at the first that is not.
    Those not there are passed over (a failed :func:`make_directories` made only the upper ones)."""
    for directory in directories:
        if not os.path.lexists(directory):
            continue
        try:
            directory.rmdir()
        except OSError:
            return


@contextmanager
def locked(directory: Path, activity: str) -> Iterator[None]:
    """Holds an exclusive lock on ``directory`` (``flock`` on its ``.lock`` file) while the block runs.

    ``activity`` ("training") is written into the lock file beside this process's id, for the
    message another process gets.

    The operating system drops the lock when the process ends, however it ends, so a killed
    process never leaves a directory locked.

    Raises:
        DirectoryInUseError: another process holds the lock; nothing was changed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "a+") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                raise DirectoryInUseError(
                    f"{directory} is in use by another process ({holder or 'pid unknown'}), so this one cannot "
                    f"start {activity} there. Wait for it to finish, or give this one another directory "
                    "(for the bench: another --out or --seed).") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}, {activity}\n")
        handle.flush()
        yield
