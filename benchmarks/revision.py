"""Another git revision of this package, importable beside the checkout's, so that a benchmark can
time a change side by side in one process (``bench_train.py --before REV``).

``git archive REV fewshot_mem`` is unpacked into a temporary folder as ``fewshot_mem_<commit>``,
with the package's references to its own name rewritten (absolute imports, registry specs), and
the folder is put on ``sys.path``; it is removed when the process exits.
"""

from __future__ import annotations

import atexit
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

REPOSITORY = Path(__file__).resolve().parent.parent
_SELF_REFERENCE = re.compile(r"\bfewshot_mem(?=[.:\"'\s]|$)", re.MULTILINE)


def import_revision(revision: str) -> str:
    """The name under which ``revision``'s ``fewshot_mem`` package is importable (imported once)."""
    commit = subprocess.run(["git", "rev-parse", "--short=8", revision], cwd=REPOSITORY, check=True,
                            capture_output=True, text=True).stdout.strip()
    name = f"fewshot_mem_{commit}"
    if name in sys.modules:
        return name
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "fewshot_mem"], cwd=REPOSITORY, check=True,
                             capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="fewshot-mem-revision-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = (folder / "fewshot_mem").rename(folder / name)
    for source in package.rglob("*.py"):
        source.write_text(_SELF_REFERENCE.sub(name, source.read_text()))
    sys.path.insert(0, str(folder))
    importlib.import_module(name)
    return name


def counterpart(obj: object, package: str) -> object:
    """The class of ``obj`` (a class or instance of this checkout's package) in ``package``."""
    cls = obj if isinstance(obj, type) else type(obj)
    module: ModuleType = importlib.import_module(cls.__module__.replace("fewshot_mem", package, 1))
    return getattr(module, cls.__qualname__)
