"""Online evaluation of the per-prefix learners (MAML, iMAML), before and after: every step of a
hundred episodes at once, against the steps the online table reads, ten episodes at a time.

Such a learner adapts afresh on the labelled prefix at every step, so an episode costs the square
of its length. Now the evaluator tells it which steps the online table reads
(``OnlineInputs.scored``: the 1st-5th and 10th appearances) and it adapts a block of ten
episodes at a time (``models.online.fill_prefix_scores``); before, it adapted at every step, all
hundred episodes of an evaluation batch at once. Both are timed side by side in one run on the
suite's first ``--episodes`` frozen test episodes, each after the novelty calibration the
evaluator runs first (which reads every step, so it gains from the blocks alone), and their
per-episode results are compared. The weights are the board's reference weights of the model
on the suite where present (MAML: ``maml-quick``), else untrained.

    python benchmarks/bench_prefix_eval.py [--model maml] [--suite omniglot-5way] [--episodes 100]
        [--threads 2] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import torch

from fewshot_mem.budgets import recipe
from fewshot_mem.errors import FewshotMemError
from fewshot_mem.evaluate import calibration_batches, evaluate_online
from fewshot_mem.leaderboard.weights import build_learner, load_weights
from fewshot_mem.models.learner import Learner
from fewshot_mem.models.registry import create
from fewshot_mem.reference import default_board_root, references
from fewshot_mem.suites import get_suite, load_pools


def every_step_at_once(learner: Learner) -> Learner:
    """The same learner, evaluated as before: told nothing of the steps read, no blocks."""
    kind = type(learner)
    before = type(f"EveryStep{kind.__name__}", (kind,), {
        "evaluation_block": None,
        "seen_scores": lambda self, inputs: kind.seen_scores(self, replace(inputs, scored=None))})
    copy = before.__new__(before)
    copy.__dict__.update(learner.__dict__)  # the very same modules and weights
    return copy


def learner_for(model: str, suite, board=None) -> tuple[Learner, str]:
    """The reference entry's learner where the board has one with weights here, else untrained."""
    board = board or default_board_root()
    reference = references(board, suite, [model])[model]
    if reference is None:
        torch.manual_seed(0)
        return create(model, suite.task(), **recipe(model, suite, "quick").hyperparameters), "untrained"
    path = board / reference.entry["checkpoint"]["path"]
    weights = load_weights(path.read_bytes(), str(path))
    return build_learner(reference.result, suite, weights), f"weights of {reference.name}"


def timed(learner: Learner, suite, pools, sampler, episodes: int) -> tuple[float, float, dict]:
    """Seconds of calibration and of the online table, and its per-episode values."""
    start = time.perf_counter()
    learner.calibrate(calibration_batches(suite, pools["train"]))
    calibrated = time.perf_counter()
    result = evaluate_online(learner, sampler, episodes)
    return calibrated - start, time.perf_counter() - calibrated, result.per_episode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="maml", choices=("maml", "imaml"))
    parser.add_argument("--suite", default="omniglot-5way")
    parser.add_argument("--episodes", type=int, default=100, help="frozen test episodes (an evaluation batch: 100)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        suite = get_suite(args.suite)
        pools = load_pools(suite, args.data_root, progress=False, download=False)
        now, weights = learner_for(args.model, suite)
    except FewshotMemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sampler = suite.test_samplers(pools["test"])["online"]
    print(f"{args.model} on {suite.id}, {weights}: first {args.episodes} frozen test episodes of the online table, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = {}
    for name, learner in (("before: every step, all at once", every_step_at_once(now)),
                          ("now: the steps read, in blocks", now)):
        rows[name] = timed(learner, suite, pools, sampler, args.episodes)
        calibration, table, _ = rows[name]
        print(f"{name:<34} calibration {calibration:7.1f} s   online table {table:7.1f} s", flush=True)
    (calibration_0, table_0, values_0), (calibration_1, table_1, values_1) = rows.values()
    print(f"\nspeed-up: online table {table_0 / table_1:.2f}x, with calibration "
          f"{(calibration_0 + table_0) / (calibration_1 + table_1):.2f}x; calibration alone "
          f"{calibration_0 / calibration_1:.2f}x")
    print(f"per-episode results {'identical' if values_0 == values_1 else 'DIFFERENT'} "
          f"({', '.join(values_0)})")
    return 0 if values_0 == values_1 else 1


if __name__ == "__main__":
    sys.exit(main())
