"""Shared fixtures: the real Omniglot, linked from ../shared/data (never written to).

``FEWSHOT_MEM_DATA`` (set by ``make test``) names a data root whose decoded
cache is reused between runs; without it the zips are linked into a temporary
root and decoded once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fewshot_mem.data.omniglot import load_omniglot
from fewshot_mem.paths import DATA_ROOT_VARIABLE

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
OMNIGLOT_ZIPS = ("images_background.zip", "images_evaluation.zip")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not (SHARED_DATA / "omniglot").is_dir():
        pytest.skip(f"the shared data set is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def omniglot_root(shared_data_dir, tmp_path_factory) -> Path:
    configured = os.environ.get(DATA_ROOT_VARIABLE)
    if configured and all((Path(configured) / "omniglot" / name).exists() for name in OMNIGLOT_ZIPS):
        return Path(configured)
    root = tmp_path_factory.mktemp("data")
    (root / "omniglot").mkdir()
    for name in OMNIGLOT_ZIPS:
        (root / "omniglot" / name).symlink_to(shared_data_dir / "omniglot" / name)
    return root


@pytest.fixture(scope="session")
def omniglot(omniglot_root):
    return load_omniglot(omniglot_root, download=False, progress=False)
