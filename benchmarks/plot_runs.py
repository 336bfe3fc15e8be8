"""Validation curves of training runs side by side, finished or not: one line per run directory,
drawn from its ``metrics.jsonl`` (the bench validates every ``validate_every`` steps).

    python benchmarks/plot_runs.py "NAME=RUN_DIR" ["NAME=RUN_DIR" ...] --out docs/curves.png \
        [--statistic instance_2] [--title TEXT] [--every 2000]

Prints each run's validation value of ``--statistic`` (default: the 2nd instance; ``score``, or
``character_instance_2`` for string labels) every ``--every`` steps, one column a run, and draws
them against training episodes (log scale), as the README's learning curves are drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewshot_mem.report import plot_learning_curves
from fewshot_mem.results import learning_curve


def validation_curve(run_dir: Path, statistic: str) -> list[dict]:
    """(step, episodes, value) of each validation record of a run that has ``statistic``."""
    key = f"validation_{statistic}"
    return [{"step": r["step"], "episodes": r["episodes"], "value": r[key]}
            for r in learning_curve(run_dir / "metrics.jsonl") if key in r]


def side_by_side(curves: dict[str, list[dict]], every: int) -> str:
    """A text table: one row per multiple of ``every`` steps that some run validated at."""
    steps = sorted({r["step"] for curve in curves.values() for r in curve if r["step"] % every == 0})
    lookup = {name: {r["step"]: r["value"] for r in curve} for name, curve in curves.items()}
    width = max(10, *(len(name) for name in curves))
    lines = [f"{'step':>8}  " + "  ".join(f"{name:>{width}}" for name in curves)]
    for step in steps:
        cells = [f"{100 * lookup[name][step]:>{width}.1f}" if step in lookup[name] else f"{'–':>{width}}"
                 for name in curves]
        lines.append(f"{step:>8,}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR (a folder holding metrics.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="the plot (.png)")
    parser.add_argument("--statistic", default="instance_2")
    parser.add_argument("--title", default="validation accuracy during training")
    parser.add_argument("--every", type=int, default=2000, help="steps between the printed rows")
    args = parser.parse_args(argv)
    curves = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        metrics = Path(folder) / "metrics.jsonl"
        if not name or not folder or not metrics.is_file():
            print(f"error: {spec!r}: give NAME=RUN_DIR, a folder holding metrics.jsonl", file=sys.stderr)
            return 2
        curves[name] = validation_curve(Path(folder), args.statistic)
        if not curves[name]:
            print(f"error: {metrics} has no validation_{args.statistic}", file=sys.stderr)
            return 2
    print(side_by_side(curves, args.every))
    label = args.statistic.replace("_", " ")
    plot_learning_curves({name: [(r["episodes"], r["value"]) for r in curve] for name, curve in curves.items()},
                         f"{label} (validation)", args.title, args.out)
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
