"""Where data lives: ``--data-root``, else ``$FEWSHOT_MEM_DATA``, else ``data/``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_VARIABLE = "FEWSHOT_MEM_DATA"


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_VARIABLE) or "data")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root) if data_root is not None else default_data_root()


def write_atomically(data: bytes, path: Path) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it over ``path``: a reader
    (or a crash) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
