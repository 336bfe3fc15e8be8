"""Install learn2learn 0.2.0 into the running interpreter's environment.

learn2learn 0.2.0 ships no wheels, and its sdist's Cython-generated C files
include ``longintrepr.h``, which Python 3.11 removed (upstream issue 413).
Regenerating those C files with Cython 3 fixes the build. This script:

1. does nothing if ``import learn2learn`` already works;
2. otherwise installs a wheel from the wheel cache if one fits this Python;
3. otherwise downloads the sdist, re-cythonizes its ``.pyx`` files, drops the
   heavy optional requirements (gsutil, qpth -> cvxpy) that fewshot-mem never
   uses, builds a wheel into the cache and installs it.

The cache (``$FEWSHOT_MEM_WHEEL_CACHE`` or ``~/.cache/fewshot-mem/wheels``)
lives outside the clone, so a fresh clone reuses a wheel built earlier.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.2.0"
# Imported only by optional features we never touch; qpth drags in cvxpy.
UNUSED_REQUIREMENTS = ("gsutil", "qpth")
BUILD_REQUIREMENTS = ("cython>=3", "setuptools", "wheel")


def wheel_cache() -> Path:
    default = Path.home() / ".cache" / "fewshot-mem" / "wheels"
    return Path(os.environ.get("FEWSHOT_MEM_WHEEL_CACHE", default))


def pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", *args])


def importable() -> bool:
    probe = "import learn2learn, sys; sys.exit(learn2learn.__version__ != %r)" % VERSION
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def cached_wheel(cache: Path) -> Path | None:
    tag = "cp%d%d" % sys.version_info[:2]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    matches = sorted(cache.glob(f"learn2learn-{VERSION}-{tag}-{tag}-*{platform}*.whl"))
    return matches[-1] if matches else None


def drop_unused_requirements(setup_py: Path) -> None:
    text = setup_py.read_text()
    for name in UNUSED_REQUIREMENTS:
        text, count = re.subn(rf"^\s*'{name}[^']*',\s*\n", "", text, flags=re.M)
        if count != 1:
            raise RuntimeError(f"could not drop {name!r} from {setup_py}")
    setup_py.write_text(text)


def build_wheel(cache: Path) -> Path:
    pip("install", "--quiet", *BUILD_REQUIREMENTS)
    with tempfile.TemporaryDirectory(prefix="l2l-build-") as tmp:
        work = Path(tmp)
        pip("download", "--quiet", "--no-deps", "--no-binary", ":all:",
            f"learn2learn=={VERSION}", "-d", str(work))
        (sdist,) = work.glob("learn2learn-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = work / f"learn2learn-{VERSION}"
        pyx_files = sorted((source / "learn2learn").rglob("*.pyx"))
        for pyx in pyx_files:
            pyx.with_suffix(".c").unlink(missing_ok=True)
        subprocess.check_call([sys.executable, "-m", "cython", "-3",
                               *map(str, pyx_files)])
        drop_unused_requirements(source / "setup.py")
        cache.mkdir(parents=True, exist_ok=True)
        pip("wheel", "--quiet", "--no-deps", "--no-build-isolation",
            "-w", str(work / "dist"), str(source))
        (built,) = (work / "dist").glob("learn2learn-*.whl")
        target = cache / built.name
        os.replace(built, target)  # same filesystem or not, the rename is the last step
        return target


def main() -> int:
    if importable():
        print(f"learn2learn {VERSION} already installed")
        return 0
    cache = wheel_cache()
    wheel = cached_wheel(cache)
    if wheel is None:
        print(f"building learn2learn {VERSION} from its sdist (re-cythonized for Python "
              f"{sys.version_info.major}.{sys.version_info.minor}); the wheel is cached in {cache}")
        wheel = build_wheel(cache)
    pip("install", "--quiet", str(wheel))
    if not importable():
        print("learn2learn was installed but does not import", file=sys.stderr)
        return 1
    print(f"learn2learn {VERSION} installed from {wheel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
