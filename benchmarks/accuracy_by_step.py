"""Where in an episode a trained sequence model is right: its accuracy at one instance position
(the 2nd by default), split by the time step at which that instance falls.

A memory too small for the episode shows here: once the episode has shown more images than the
memory has slots, a least-used write overwrites what an earlier class stored, so the classes met
late in a long episode are recognised less often. The same weights are scored on the validation
episodes of each suite named (the validation classes, not the test episodes), in bins of
``--width`` steps, with a 95% interval per bin (normal approximation over predictions); with
``--read-weights``, a MANN's largest read weight per bin too (how sharply it reads its memory).

    python benchmarks/accuracy_by_step.py CHECKPOINT --model mann-add \
        --suites omniglot-15way-strings@1,omniglot-15way-strings@2 [--position 2] [--width 25] \
        [--episodes 500] [--budget paper] [--set KEY=VALUE] [--read-weights] [--data-root DIR]

CHECKPOINT is a run's ``best.pt`` or ``last.pt`` (``runs/<suite>/<model>/<budget>-seed0/``) or a
board entry's weights (``leaderboard/checkpoints/<suite>/<entry>.pt``); the model is built with
that budget's hyper-parameters for the first suite, changed by ``--set`` as the run's were. Bad input
exits 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from fewshot_mem.budgets import parse_overrides, recipe, with_overrides
from fewshot_mem.checkpoints import load_checkpoint
from fewshot_mem.data.episodes import LabelOffsetSampler, correct_predictions
from fewshot_mem.errors import FewshotMemError
from fewshot_mem.evaluate import Z_95
from fewshot_mem.models.learner import Learner, batch_targets, predictions
from fewshot_mem.models.mann import MANN
from fewshot_mem.models.registry import create
from fewshot_mem.suites import cached_pools, get_suite


def accuracy_by_step(learner: Learner, sampler: LabelOffsetSampler, episodes: int, position: int,
                     width: int, batch_size: int = 100) -> list[tuple[int, int, int, int]]:
    """(first step, last step, predictions, right) per bin of ``width`` steps (1-based steps), over
    the predictions at the ``position``-th appearance of a class in episodes 0..episodes-1."""
    bins = math.ceil(sampler.steps / width)
    shown, right = np.zeros(bins, dtype=np.int64), np.zeros(bins, dtype=np.int64)
    step_bin = np.arange(sampler.steps) // width  # (T,)
    for start in range(0, episodes, batch_size):
        batch = sampler.batch(np.arange(start, min(start + batch_size, episodes)))
        with torch.no_grad():
            guessed = predictions(learner.logits(batch.inputs()))
        correct = correct_predictions(guessed, batch_targets(batch)).numpy()  # (B, T)
        at = (batch.instance_index == position).numpy()  # (B, T)
        np.add.at(shown, np.broadcast_to(step_bin, at.shape)[at], 1)
        np.add.at(right, np.broadcast_to(step_bin, at.shape)[at & correct], 1)
    return [(b * width + 1, min((b + 1) * width, sampler.steps), int(shown[b]), int(right[b])) for b in range(bins)]


def largest_read_weight_by_step(learner: MANN, sampler: LabelOffsetSampler, episodes: int, width: int,
                                batch_size: int = 100) -> list[float]:
    """MANN's sharpness of reading: the largest read weight max_i w^r_t(i), averaged over heads and
    episodes, per bin of ``width`` steps (1/N for a uniform read over N slots, 1 for one slot)."""
    totals = np.zeros(sampler.steps)
    for start in range(0, episodes, batch_size):
        batch = sampler.batch(np.arange(start, min(start + batch_size, episodes)))
        features = learner.encode(batch.images).to(learner.dtype)
        state = learner.initial_state(features.shape[0], features)
        with torch.no_grad():
            for t in range(sampler.steps):
                _, state = learner.step(features[:, t], batch.previous_codes[:, t].to(features.dtype), state)
                totals[t] += learner.read_weights(state).amax(-1).mean(-1).sum().item()  # over heads, then episodes
    per_step = totals / episodes
    return [float(per_step[first:first + width].mean()) for first in range(0, sampler.steps, width)]


def print_table(rows: list[tuple[int, int, int, int]], sharpness: list[float] | None = None) -> None:
    print(f"{'steps':>9}  {'predictions':>11}  {'accuracy (%)':>14}" + ("  largest read weight" if sharpness else ""))
    for row, (first, last, shown, right) in enumerate(rows):
        sharp = f"  {sharpness[row]:>19.3f}" if sharpness else ""
        if not shown:
            print(f"{first:>4}-{last:<4}  {0:>11}  {'–':>14}{sharp}")
            continue
        share = right / shown
        interval = Z_95 * math.sqrt(share * (1 - share) / shown)
        print(f"{first:>4}-{last:<4}  {shown:>11,}  {100 * share:>6.1f} ± {100 * interval:<5.1f}{sharp}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--model", required=True, help="the registered model the run trained")
    parser.add_argument("--suites", required=True, help="comma-separated suite ids, scored in turn")
    parser.add_argument("--position", type=int, default=2, help="which appearance of a class (default: 2nd)")
    parser.add_argument("--width", type=int, default=25, help="steps per bin")
    parser.add_argument("--episodes", type=int, default=500, help="validation episodes per suite")
    parser.add_argument("--budget", default="paper", help="whose hyper-parameters build the model")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter the run changed with the bench's --set (repeatable)")
    parser.add_argument("--read-weights", action="store_true",
                        help="MANN models: also the largest read weight per bin (how sharply it reads)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        suites = [get_suite(name.strip()) for name in args.suites.split(",") if name.strip()]
        state = load_checkpoint(args.checkpoint, recovery="Name a run's best.pt or last.pt, or a board entry's weights.")
        chosen = with_overrides(args.model, recipe(args.model, suites[0], args.budget), parse_overrides(args.set))
        learner = create(args.model, suites[0].task(), **chosen.hyperparameters)
        # a run's checkpoint holds the weights under "model"; a board entry's file is the weights
        learner.load_state_dict(state["model"] if isinstance(state.get("model"), dict) else state)
    except (FewshotMemError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.read_weights and not isinstance(learner, MANN):
        print(f"error: --read-weights reads MANN's read weights; {args.model} is no MANN", file=sys.stderr)
        return 2
    learner.eval()
    print(f"{args.model} from {args.checkpoint} (step {state.get('step', '?')}); accuracy at instance "
          f"{args.position} by the step it falls on, {args.episodes} validation episodes a suite, ± 95% CI")
    for suite in suites:
        sampler = suite.validation_sampler(cached_pools(suite, args.data_root)["val"], "online")
        print(f"\n{suite.id} ({sampler.steps} steps an episode)")
        sharpness = largest_read_weight_by_step(learner, sampler, args.episodes, args.width) \
            if args.read_weights else None
        print_table(accuracy_by_step(learner, sampler, args.episodes, args.position, args.width), sharpness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
