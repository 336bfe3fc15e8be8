"""Where data lives: ``--data-root``, else ``$FEWSHOT_MEM_DATA``, else ``data/``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_VARIABLE = "FEWSHOT_MEM_DATA"


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_VARIABLE) or "data")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root) if data_root is not None else default_data_root()
