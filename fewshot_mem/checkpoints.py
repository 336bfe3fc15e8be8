"""Checkpoint files: written atomically, read weights-only, with errors that name the file.

The training loop writes ``last.pt`` and ``best.pt`` through :func:`save_checkpoint`; the
bench, the leaderboard (reference weights) and the benchmarks read them through
:func:`load_checkpoint`, which never runs code from a file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import BinaryIO, Iterable

import torch

from .errors import CheckpointError
from .paths import write_atomically

# What a resumable ``last.pt`` holds (``train_seconds`` and ``train_cpu_seconds`` are optional: older runs lack them).
LAST_KEYS = ("model", "optimizer", "step", "best_step", "best_score", "config")
RERUN_ADVICE = ("Delete it and rerun without --resume to train this run again from the start "
                "(or put back a copy of the file if you keep one).")


def save_checkpoint(payload: dict, path: Path) -> None:
    """``torch.save`` through :func:`paths.write_atomically`: a reader or a crash never sees half a file."""
    write_atomically(lambda handle: torch.save(payload, handle), path)


def load_checkpoint(path: Path | BinaryIO, *, keys: Iterable[str] = (), recovery: str = RERUN_ADVICE) -> dict:
    """A checkpoint, loaded weights-only (a file's pickled code never runs) on the CPU.

    Args:
        path: the file (or a binary file object).
        keys: what the checkpoint must hold (:data:`LAST_KEYS` for a ``last.pt``).
        recovery: what the error message tells the user to do.

    Raises:
        CheckpointError: naming the file and why it cannot be used (missing, empty, truncated,
            damaged, not a checkpoint, lacking ``keys``), and ``recovery``.
    """
    where = f"the checkpoint {path}" if isinstance(path, (str, os.PathLike)) else "the checkpoint"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{where} cannot be read: {_unreadable(path, error)}. {recovery}") from error
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else list(keys)
    if not isinstance(state, dict) or missing:
        held = f"lacks {', '.join(missing)}" if isinstance(state, dict) else f"holds a {type(state).__name__}"
        raise CheckpointError(f"{where} is not a training checkpoint: it {held}. {recovery}")
    return state


def _unreadable(path: Path | BinaryIO, error: Exception) -> str:
    """Why ``torch.load`` failed, in words (torch's own messages are long, or empty)."""
    if _size(path) == 0:
        return "it is empty (0 bytes)"
    if isinstance(error, FileNotFoundError):
        return "there is no such file"
    if isinstance(error, (PermissionError, IsADirectoryError)):
        return error.strerror or str(error)
    if isinstance(error, EOFError):
        return "it ends too early (cut off while it was written)"
    if isinstance(error, pickle.UnpicklingError):
        return "it is damaged, or not a PyTorch checkpoint of plain weights (the weights-only loader refused it)"
    first = str(error).split(". ")[0].strip()
    return f"it is truncated, damaged or not a PyTorch checkpoint ({type(error).__name__}: {first})"


def _size(path: Path | BinaryIO) -> int | None:
    try:
        return os.path.getsize(path) if isinstance(path, (str, os.PathLike)) else len(path.getbuffer())
    except (OSError, AttributeError):  # no such file; a file object that is not a BytesIO
        return None
