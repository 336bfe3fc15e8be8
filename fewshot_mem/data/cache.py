"""Versioned on-disk caches, written atomically.

A cache is a directory holding arrays (``.npy``) and ``meta.json`` with a
``version`` and the fingerprint of the source it was built from. It is built
in a temporary directory beside its final place and renamed into place, so a
crash or a full disk never leaves a cache that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError

META = "meta.json"


def read_meta(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return None


def is_current(directory: Path, version: int, source: Any) -> bool:
    meta = read_meta(directory)
    return meta is not None and meta.get("version") == version and meta.get("source") == source


def write_cache(directory: Path, version: int, source: Any, arrays: dict[str, np.ndarray],
                meta: dict[str, Any]) -> None:
    """Writes ``arrays`` and ``meta`` as a complete cache at ``directory`` or raises CacheError."""
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=parent))
    except OSError as error:
        raise CacheError(f"cannot write the cache in {parent}: {error.strerror or error}. "
                         "Make it writable, or choose another data root with --data-root "
                         "or FEWSHOT_MEM_DATA.") from error
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        (staging / META).write_text(json.dumps({**meta, "version": version, "source": source}))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except OSError as error:
        raise CacheError(f"cannot write the cache {directory}: {error.strerror or error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_array(directory: Path, name: str, mmap: bool = False) -> np.ndarray:
    return np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None)
