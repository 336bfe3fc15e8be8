"""The bench's command line: its options, their help, and the checks argparse makes of them
(``python -m fewshot_mem.bench --help``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .models.registry import default_models
from .recipes import BUDGETS

PROCESSES_VARIABLE = "FEWSHOT_MEM_PROCESSES"  # the default of --processes
DESCRIPTION = ("The benchmark: trains what needs training, evaluates on the suite's frozen test episodes, "
               "and prints the tables people cite.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The bench's options from ``argv`` (None: the process's own arguments); argparse exits 2 on bad ones."""
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.bench", description=DESCRIPTION)
    parser.add_argument("--suite", default="omniglot-5way", help="a suite name or name@version (see --list)")
    parser.add_argument("--models", default=None,
                        help="comma-separated registered names or package.module:Class plug-ins "
                             f"(default: {','.join(default_models())})")
    parser.add_argument("--budget", default=None, choices=BUDGETS,
                        help="train at this budget instead of evaluating the reference weights. smoke: seconds; "
                             "quick: minutes; paper: the papers' schedules, in their optimizer steps (the sequence "
                             "models: 100,000 steps of 16 episodes; hours)")
    parser.add_argument("--train", action="store_true",
                        help="train (at --budget, default quick) even where reference weights exist")
    parser.add_argument("--leaderboard", type=Path, default=None,
                        help="the board whose reference weights the default run evaluates "
                             "(default: the repository's leaderboard/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a training setting of the budget's recipe (repeatable): learning_rate=3e-4, "
                             "steps=500, batch_size=32, train_queries=5, or a model hyper-parameter such as "
                             "hidden_size=128; recorded in the results as overrides, with budget 'custom'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser.add_argument("--out", default="runs", help="checkpoints and results go here")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N, or auto (CUDA when present, else CPU); the reference numbers "
                             "were measured on CPU, where evaluation is bit-identical")
    parser.add_argument("--processes", default=os.environ.get(PROCESSES_VARIABLE, "auto"), type=_processes,
                        help="CPU processes, as torchrun would launch them (the tables are one process's, bit for "
                             "bit). auto (default): one a core, up to 8, where the run only evaluates reference "
                             "weights on CPU, else 1. A number applies to any run; training then runs DDP, whose "
                             f"weights differ in the last bits from one process's. Default from ${PROCESSES_VARIABLE}")
    parser.add_argument("--eval-only", action="store_true", help="evaluate existing checkpoints, train nothing")
    parser.add_argument("--resume", action="store_true", help="continue interrupted training runs")
    parser.add_argument("--compile-steps", action="store_true",
                        help="train the memory models with each time step compiled by torch.compile "
                             "(about 1.2-1.7x faster on CPU after a compile of tens of seconds, cached on disk); "
                             "evaluation stays eager, so the tables depend on the weights alone. Recorded in the "
                             "run's log and results")
    parser.add_argument("--wandb", action="store_true", help="also log to wandb (offline unless configured)")
    parser.add_argument("--list", action="store_true", help="list suites (with fingerprints) and models")
    parser.add_argument("--cite", metavar="SUITE", default=None,
                        help="print BibTeX for SUITE, its data set and the models (--models, else those with "
                             "results under --out, else the built-ins), and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-download", action="store_true", help="never download missing data")
    parser.add_argument("--test-episodes", type=int, default=None,
                        help="evaluate on the first N frozen test episodes only (quick checks; such results "
                             "do not match the suite's fingerprint and are refused by the leaderboard)")
    return parser.parse_args(argv)


def _processes(value: str) -> str | int:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: write auto or a number of processes (1 or more)")
    return int(value)


def model_names(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


def reference_mode(args: argparse.Namespace) -> bool:
    """Whether the run evaluates the board's reference weights (no --budget, --train, --eval-only, --set)."""
    return args.budget is None and not (args.train or args.eval_only or args.overrides)
