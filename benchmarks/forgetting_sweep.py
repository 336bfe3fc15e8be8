"""MANN's usage decay γ swept on the forgetting suite: how what it keeps depends on γ.

For each γ, MANN (Santoro's Omniglot size, 128 slots) is trained with the bench's quick recipe
cut to ``--steps`` optimizer steps of ``--batch-size`` episodes (the same training episodes for
every γ), its best validation weights are evaluated on the first ``--test-episodes`` frozen test
episodes, and the accuracy by instance position and by lag (steps since the class was last shown)
is printed, one row per γ, with a plot of the lag curves. A short budget is a first look only:
the models are far from trained (see the README's Forgetting section for what was run).

    python benchmarks/forgetting_sweep.py [--model mann] [--gammas 0.5,0.9,0.95,0.99] [--steps 100]
        [--batch-size 16] [--validate-every STEPS] [--test-episodes 200] [--suite omniglot-25way-forgetting]
        [--memory-slots N] [--out runs/forgetting-sweep] [--data-root DIR] [--seed 0] [--resume]

``--model mann-add`` sweeps the MANN that learns several times faster (a separate add vector,
see the README's ablation); ``--memory-slots`` makes the memory too small for a shorter suite's
episode (16 slots for omniglot-5way's 50 presentations); ``--resume`` continues each γ's run
from its ``last.pt``.

(Once the bench takes ``--set usage_decay=G``, each row is also a bench run.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fewshot_mem.bench import _validator
from fewshot_mem.evaluate import evaluate_on_suite
from fewshot_mem.budgets import recipe
from fewshot_mem.checkpoints import load_checkpoint
from fewshot_mem.models.registry import create
from fewshot_mem.report import plot_lag_accuracy, render
from fewshot_mem.suites import get_suite, load_pools
from fewshot_mem.train import TrainConfig, fit


def sweep_row(gamma: float, suite, pools, args: argparse.Namespace) -> dict:
    """Trains and evaluates MANN at usage decay ``gamma``; a result as the report reads it."""
    quick = recipe(args.model, suite, "quick")
    config = TrainConfig.of_steps("sweep", steps=args.steps, batch_size=args.batch_size,
                                  learning_rate=quick.config.learning_rate,
                                  validate_every=args.validate_every or args.steps,
                                  validation_episodes=args.validation_episodes)
    torch.manual_seed(args.seed)
    memory = {"memory_slots": args.memory_slots} if args.memory_slots else {}
    learner = create(args.model, suite.task(), **{**quick.hyperparameters, **memory, "usage_decay": gamma})
    slots = f"-{args.memory_slots}slots" if args.memory_slots else ""
    run_dir = Path(args.out) / suite.id / f"{args.model}{slots}-gamma{gamma}-{args.steps}x{args.batch_size}-seed{args.seed}"
    started = time.perf_counter()
    sampler = suite.training_sampler(pools["train"], quick.protocol, args.seed, augment=quick.augment)
    fit(learner, sampler.batch,
        _validator(suite, "online", pools["val"], config.validation_episodes, "cpu"), config, run_dir,
        seed=args.seed, resume=args.resume, progress=False)
    learner.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    tables = evaluate_on_suite(learner, suite, pools, args.test_episodes, lag=True)
    print(f"γ = {gamma}: trained and evaluated in {time.perf_counter() - started:.0f} s", flush=True)
    return {"model": f"{args.model}{slots} γ={gamma}", "suite": suite.id,
            "tables": {"online": tables["online"]}, "forgetting": {"online-lag": tables["online-lag"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mann", choices=("mann", "mann-add"))
    parser.add_argument("--suite", default="omniglot-25way-forgetting")
    parser.add_argument("--gammas", default="0.5,0.9,0.95,0.99", help="comma-separated usage decays γ")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per γ")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--validate-every", type=int, default=None, help="steps (default: once, at the end)")
    parser.add_argument("--memory-slots", type=int, default=None, help="memory slots (default: the recipe's, 128)")
    parser.add_argument("--resume", action="store_true", help="continue each γ from its last.pt")
    parser.add_argument("--validation-episodes", type=int, default=32)
    parser.add_argument("--test-episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/forgetting-sweep")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    suite = get_suite(args.suite)
    pools = load_pools(suite, args.data_root, progress=False)
    results = [sweep_row(float(g), suite, pools, args) for g in args.gammas.split(",")]
    slots = f", {args.memory_slots} memory slots" if args.memory_slots else ""
    print(f"\n{args.model} on {suite.id}{slots}, {args.steps} steps x {args.batch_size} episodes per γ, "
          f"first {args.test_episodes} test episodes\n")
    print(render(results))
    plot = plot_lag_accuracy(results, Path(args.out) / suite.id / f"lag-accuracy-{args.model}{slots.replace(', ', '-').replace(' memory ', '')}-gamma-sweep-{args.steps}steps.png")
    print(f"\nplot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
