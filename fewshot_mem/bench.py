"""The benchmark CLI: train what needs training, evaluate on the suite's frozen test
episodes, print the tables people cite, and write the results JSON and plot.

    python -m fewshot_mem.bench --suite omniglot-5way [--models mann,lstm] [--budget quick]
        [--seed 0] [--data-root DIR] [--out runs/] [--device cpu|cuda|auto] [--eval-only]
        [--resume] [--wandb] [--list]
    python -m fewshot_mem.bench --cite SUITE [--models ...]   # BibTeX for a suite's numbers
    torchrun --nproc_per_node=P -m fewshot_mem.bench ...      # the same, on P processes (README)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import __version__, distributed
from .budgets import recipe
from .citation import cite, models_in_results
from .data.episodes import ClassPool
from .device import resolve_device
from .errors import FewshotMemError
from .evaluate import evaluate_episodic, evaluate_online, evaluate_online_tables
from .models.learner import Learner
from .models.online import NoveltyScoring
from .models.registry import BUILTIN_MODELS, available_models, create, resolve
from .reference import Reference, board_entries, default_board_root, evaluate_reference, expected_seconds, references
from .report import (budget_text, duration, hardware_text, plot_instance_accuracy, plot_lag_accuracy, render,
                     write_json)
from .suites import SUITES, Suite, get_suite, load_pools
from .train import BUDGETS, fit, is_complete, load_checkpoint, read_metrics

DEFAULT_MODELS = ("mann", "ntm", "dnc", "lstm", "maml", "protonet")
CALIBRATION_EPISODES = 64


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it ("AMD EPYC 7B13"), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str) -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device, "processes": distributed.world_size()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _training_sampler(suite: Suite, model_recipe, train_pool: ClassPool, seed: int):
    if model_recipe.protocol == "online":
        return suite.online_sampler(train_pool, seed=suite.train_seed + seed, augment=model_recipe.augment)
    return suite.episodic_sampler(train_pool, suite.shots[0], seed=suite.train_seed + seed,
                                  ways=model_recipe.train_ways, queries=model_recipe.train_queries)


def _validator(suite: Suite, protocol: str, val_pool: ClassPool, episodes: int, device: str):
    """Validation score on the val classes, in the training protocol: mean accuracy (online: over
    instance positions, logged one by one as well)."""
    if protocol == "online":
        sampler = suite.online_sampler(val_pool, seed=suite.validation_seed)

        def validate_online(learner: Learner) -> dict[str, float]:
            estimates = evaluate_online(learner, sampler, episodes, device=device).estimates
            return {"score": float(np.mean([e.mean for e in estimates.values()])),
                    **{position: e.mean for position, e in estimates.items()}}
        return validate_online
    sampler = suite.episodic_sampler(val_pool, suite.shots[0], seed=suite.validation_seed)
    return lambda learner: evaluate_episodic(learner, sampler, episodes, device=device).estimates[
        f"{suite.ways}-way-{suite.shots[0]}-shot"].mean


def evaluate_on_suite(learner: Learner, suite: Suite, pools: dict[str, ClassPool], episodes: int | None = None,
                      device: str = "cpu", progress: bool = False, lag: bool = False) -> dict[str, dict]:
    """Every table of ``suite`` for a trained learner, as the results JSON stores them.

    The one evaluation path of the bench and of ``leaderboard verify``, so a re-evaluated
    checkpoint is scored exactly as it was when submitted: learners with a novelty score ν
    are calibrated first (on training-class episodes, deterministically from the
    checkpoint's weights), then scored on the first ``episodes`` (default: all) frozen test
    episodes of each table. ``lag``: the online table's pass also gives accuracy by lag, returned
    as "online-lag" (kept out of the suite's tables by the bench: see ``run_model``).
    """
    learner.to(device)
    if isinstance(learner, NoveltyScoring) and "online" in suite.protocols:
        calibration = suite.online_sampler(pools["train"], seed=suite.validation_seed + 1)
        learner.calibrate_novelty([calibration.batch(np.arange(CALIBRATION_EPISODES)).to(device)])
    tables = {}
    for table, sampler in suite.test_samplers(pools["test"]).items():
        if table == "online" and lag:
            tables.update({name: found.to_json() for name, found in evaluate_online_tables(
                learner, sampler, episodes or suite.test_episodes, device=device, progress=progress).items()})
            continue
        evaluate = evaluate_online if table == "online" else evaluate_episodic
        tables[table] = evaluate(learner, sampler, episodes or suite.test_episodes, device=device,
                                 progress=progress).to_json()
    return tables


def run_model(model: str, suite: Suite, pools: dict[str, ClassPool], fingerprint: str, args) -> dict:
    model_recipe = recipe(model, suite, args.budget)
    run_dir = Path(args.out) / suite.id / model.replace(":", "_") / f"{args.budget}-seed{args.seed}"
    torch.manual_seed(args.seed)
    learner: Learner = create(model, suite.task(), **model_recipe.hyperparameters)
    train_seconds, summary = 0.0, None
    # Rank 0 reads the run directory and tells the other ranks (distributed.from_main).
    if args.eval_only:
        if not distributed.from_main((run_dir / "best.pt").exists):
            raise FewshotMemError(f"--eval-only: no checkpoint for {model} in {run_dir}; train it first")
    elif distributed.from_main(is_complete, run_dir, model_recipe.config) and not args.resume:
        if distributed.is_main():
            print(f"[{model}] reusing the finished run in {run_dir}")
    else:
        sampler = _training_sampler(suite, model_recipe, pools["train"], args.seed)
        validate = _validator(suite, model_recipe.protocol, pools["val"],
                              model_recipe.config.validation_episodes, args.device)
        start = time.perf_counter()
        summary = fit(learner, sampler.batch, validate, model_recipe.config, run_dir, seed=args.seed,
                      resume=args.resume, progress=not args.quiet, device=args.device, use_wandb=args.wandb,
                      run_config={"suite": suite.id, "model": model, "seed": args.seed})
        train_seconds = time.perf_counter() - start
    best = distributed.from_main(load_checkpoint, run_dir / "best.pt")
    learner.load_state_dict(best["model"])
    start = time.perf_counter()
    tables = evaluate_on_suite(learner, suite, pools, args.test_episodes, device=args.device,
                               progress=not args.quiet, lag=True)
    # Forgetting lives beside the suite's tables, not among them: the leaderboard's entries hold
    # exactly the suite's tables, and older entries have no lag to compare with.
    forgetting = {"online-lag": tables.pop("online-lag")} if "online-lag" in tables else {}
    eval_seconds = time.perf_counter() - start
    previous = distributed.from_main(_load_if_present, run_dir / "last.pt")
    return {
        "format": "fewshot-mem-result/1", "fewshot_mem_version": __version__, "suite": suite.id,
        "fingerprint": fingerprint, "model": model, "model_class": available_models().get(model, model),
        "hyperparameters": model_recipe.hyperparameters, "training": asdict(model_recipe.config),
        "training_protocol": model_recipe.protocol, "budget": args.budget, "seed": args.seed,
        "training_steps": model_recipe.config.steps, "training_episodes": model_recipe.config.episodes,
        "git_commit": git_commit(), "trained_steps": previous.get("step"), "best_step": best.get("step"),
        "train_seconds": previous.get("train_seconds", train_seconds if summary else None),
        "eval_seconds": eval_seconds, "hardware": hardware(args.device), "checkpoint": str(run_dir / "best.pt"),
        "learning_curve": distributed.from_main(learning_curve, run_dir / "metrics.jsonl"), "tables": tables,
        "forgetting": forgetting,
    }


def learning_curve(metrics: Path) -> list[dict]:
    """The validation records of a run's log: score (and per-instance accuracy) against episodes."""
    return [r for r in read_metrics(metrics) if "validation_score" in r]


def _load_if_present(path: Path) -> dict:
    return load_checkpoint(path) if path.exists() else {}


def available_fingerprint(suite: Suite, data_root, download: bool = True) -> str | None:
    """The suite's fingerprint, or None where its data is not available here."""
    try:
        return suite.fingerprint(load_pools(suite, data_root, progress=False, download=download)["test"])
    except FewshotMemError:
        return None


def list_everything(data_root) -> None:
    print("suites:")
    for suite in SUITES.values():
        fingerprint = available_fingerprint(suite, data_root) or "(its data is not available here)"
        print(f"  {suite.id:<28} {suite.title}\n  {'':<28} fingerprint {fingerprint}")
    print("models:")
    for name, spec in available_models().items():
        print(f"  {name:<12} {spec}{'' if name in BUILTIN_MODELS else '  (plug-in)'}")


def model_names(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


def print_citation(args: argparse.Namespace) -> None:
    """BibTeX for --cite: the models asked for, else those with results under --out, else the built-ins."""
    suite = get_suite(args.cite)
    if args.models:
        models = model_names(args.models)
        for model in models:
            resolve(model)  # a name asked for must be right; one found in old results need not import
    else:
        models = models_in_results(args.out, suite) or list(DEFAULT_MODELS)
    print(cite(suite, models, available_fingerprint(suite, args.data_root, download=False)), end="")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="omniglot-5way", help="a suite name or name@version (see --list)")
    parser.add_argument("--models", default=None,
                        help="comma-separated registered names or package.module:Class plug-ins "
                             f"(default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--budget", default=None, choices=BUDGETS,
                        help="train at this budget instead of evaluating the reference weights. smoke: seconds; "
                             "quick: minutes; paper: the papers' schedules, in their optimizer steps (the sequence "
                             "models: 100,000 steps of 16 episodes; hours)")
    parser.add_argument("--train", action="store_true",
                        help="train (at --budget, default quick) even where reference weights exist")
    parser.add_argument("--leaderboard", type=Path, default=None,
                        help="the board whose reference weights the default run evaluates "
                             "(default: the repository's leaderboard/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser.add_argument("--out", default="runs", help="checkpoints and results go here")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N, or auto (CUDA when present, else CPU); the reference numbers "
                             "were measured on CPU, where evaluation is bit-identical")
    parser.add_argument("--eval-only", action="store_true", help="evaluate existing checkpoints, train nothing")
    parser.add_argument("--resume", action="store_true", help="continue interrupted training runs")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            list_everything(args.data_root)
            return 0
        if args.cite:
            print_citation(args)
            return 0
        suite = get_suite(args.suite)
        models = model_names(args.models or ",".join(DEFAULT_MODELS))
        for model in models:
            resolve(model)  # fail on a bad name before any work
        args.device = distributed.init(resolve_device(args.device))  # under torchrun: join the group, one GPU a rank
        args.quiet = args.quiet or not distributed.is_main()  # rank 0 alone shows progress
        started = time.perf_counter()
        plan = plan_run(suite, models, args)
        pools = load_pools(suite, args.data_root, progress=not args.quiet, download=not args.no_download)
        fingerprint = suite.fingerprint(pools["test"], args.test_episodes)
        results, differing = [], []
        for model in models:
            if plan[model] is not None:
                result, equal = evaluate_reference(plan[model], args.leaderboard, data_root=args.data_root,
                                                   device=args.device, progress=not args.quiet)
                differing += [] if equal else [plan[model].name]
                label = "reference"
            else:
                result, label = run_model(model, suite, pools, fingerprint, args), f"{args.budget}-seed{args.seed}"
            if distributed.is_main():  # every rank holds the same result: one writes it
                path = write_json(result, Path(args.out) / suite.id / "results" / f"{model.replace(':', '_')}"
                                          f"-{label}.json")
                print(f"[{model}] results: {path}" + (_reference_verdict(plan[model], equal) if plan[model] else ""))
            results.append(result)
        if distributed.is_main():
            report(results, suite, fingerprint, args, started, "reference" if any(plan.values()) else None)
            for name in differing:
                print(f"MISMATCH: {name}'s weights did not give the entry's per-episode results "
                      f"(python -m fewshot_mem.leaderboard verify {name} shows where)")
        return 1 if differing else 0
    except (FewshotMemError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()


def plan_run(suite: Suite, models: list[str], args: argparse.Namespace) -> dict[str, Reference | None]:
    """Which models are evaluated from reference weights and which are trained (at ``args.budget``,
    set here), printed with the run's expected duration as the run's first lines."""
    reference_mode = args.budget is None and not (args.train or args.eval_only)
    args.budget = args.budget or "quick"
    args.leaderboard = args.leaderboard or default_board_root()
    if reference_mode and args.test_episodes is not None:
        raise FewshotMemError("--test-episodes applies to training runs (--budget or --train): reference "
                              "weights are evaluated on every frozen test episode, as their entries were")
    plan = references(args.leaderboard, suite, models) if reference_mode else dict.fromkeys(models)
    if distributed.is_main():
        expected = expected_seconds(plan, board_entries(args.leaderboard, suite), args.budget)
        print(f"{suite.id}: expected duration "
              f"{'unknown (no board entry tells)' if expected is None else 'about ' + duration(expected)}; "
              f"{sum(r is not None for r in plan.values())} of {len(plan)} models from reference weights")
        for model, reference in plan.items():
            print(f"  {model}: " + (f"reference weights {reference.name} ({budget_text(reference.result)}, "
                                    f"trained {duration(reference.result.get('train_seconds'))} on "
                                    f"{hardware_text(reference.result['hardware'])})" if reference else
                                    ("no reference weights on this board: " if reference_mode else "") +
                                    f"trains at the {args.budget} budget "
                                    f"({budget_text(_planned(recipe(model, suite, args.budget)))})"))
    return plan


def _planned(model_recipe) -> dict:
    return {"budget": model_recipe.config.budget, "training": asdict(model_recipe.config)}


def _reference_verdict(reference: Reference, equal: bool) -> str:
    return (f" (re-evaluated: equal to the entry {reference.name})" if equal else
            f" (re-evaluated: DIFFERS from the entry {reference.name})")


def report(results: list[dict], suite: Suite, fingerprint: str, args: argparse.Namespace, started: float,
           label: str | None = None) -> None:
    """Prints the tables and writes the plot."""
    print()
    print(render(results))
    name = label or f"{args.budget}-seed{args.seed}"
    plots = [plot_instance_accuracy(results, Path(args.out) / suite.id / f"instance-accuracy-{name}.png"),
             plot_lag_accuracy(results, Path(args.out) / suite.id / f"lag-accuracy-{name}.png")]
    print(f"\nsuite {suite.id}, fingerprint {fingerprint}")
    for plot in filter(None, plots):
        print(f"plot: {plot}")
    print(f"wall-clock: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
