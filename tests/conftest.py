"""Shared fixtures: the real Omniglot, linked from ../shared/data (never written to).

The data root for the real-data tests is, in order:
``$FEWSHOT_MEM_TEST_DATA_ROOT`` (a root whose cache survives between runs; the
shared zips are linked into it if it has no Omniglot), ``$FEWSHOT_MEM_DATA`` if
it holds Omniglot (``make test`` sets it to ``data/``), else a temporary root
with links to the shared zips, decoded once per session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from fewshot_mem.data.omniglot import Omniglot, load_omniglot
from fewshot_mem.paths import DATA_ROOT_VARIABLE

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
from link_data import SHARED_FILES, link  # noqa: E402 - `make data`'s linker: the tests link as it does

SHARED_DATA = REPO.parent / "shared" / "data"
OMNIGLOT_ZIPS = SHARED_FILES["omniglot"]
TEST_ROOT_VARIABLE = "FEWSHOT_MEM_TEST_DATA_ROOT"
# The bench's default run spreads over the cores (--processes auto); tests run it in this process,
# where their monkeypatches apply, unless they ask for processes (tests/test_bench.py does).
os.environ.setdefault("FEWSHOT_MEM_PROCESSES", "1")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not all((SHARED_DATA / "omniglot" / name).is_file() for name in OMNIGLOT_ZIPS):
        pytest.skip(f"the shared Omniglot zips are not in {SHARED_DATA / 'omniglot'}")
    return SHARED_DATA


def link_shared_omniglot(shared_data_dir: Path, root: Path) -> Path:
    """Links the shared zips into ``root/omniglot/`` as ``make data`` does (the shared folder is only read)."""
    if root.resolve().is_relative_to(shared_data_dir.resolve()):
        raise pytest.UsageError(f"{TEST_ROOT_VARIABLE} must not point into the shared data ({shared_data_dir})")
    link(shared_data_dir, root)
    return root


@pytest.fixture(scope="session")
def omniglot_root(shared_data_dir, tmp_path_factory) -> Path:
    if os.environ.get(TEST_ROOT_VARIABLE):
        root = Path(os.environ[TEST_ROOT_VARIABLE])
        return root if not Omniglot.describe_missing(root) else link_shared_omniglot(shared_data_dir, root)
    configured = os.environ.get(DATA_ROOT_VARIABLE)
    if configured and not Omniglot.describe_missing(configured):
        return Path(configured)
    return link_shared_omniglot(shared_data_dir, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def omniglot(omniglot_root):
    return load_omniglot(omniglot_root, download=False, progress=False)


@pytest.fixture
def one_thread():
    """For tests of tiny tensors, where worker threads only add synchronisation (seconds on a busy
    machine): ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
