"""Every script under benchmarks/ imports: a script is run by hand, rarely, so a name it imports
that moved or went away would otherwise only show when someone needs its figures."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_each_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts import their siblings (bench_gpu: bench_train)
    module = runpy.run_path(str(script), run_name="benchmark_import_check")  # not __main__: nothing runs
    assert callable(module.get("main")) or "__main__" not in script.read_text(), f"{script.name}: no main()"
    for name in [name for name in sys.modules if name.startswith("bench_")]:
        sys.modules.pop(name)  # what a script imported from its siblings stays its own
