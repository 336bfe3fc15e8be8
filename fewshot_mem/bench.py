"""The benchmark CLI: train what needs training, evaluate on the suite's frozen test
episodes, print the tables people cite, and write the results JSON and plot.

    python -m fewshot_mem.bench --suite omniglot-5way [--models mann,lstm] [--budget quick]
        [--seed 0] [--data-root DIR] [--out runs/] [--device cpu|cuda] [--eval-only]
        [--resume] [--wandb] [--list]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .budgets import recipe
from .data.episodes import ClassPool
from .errors import FewshotMemError
from .evaluate import evaluate_episodic, evaluate_online
from .models.learner import Learner
from .models.online import NoveltyScoring
from .models.registry import BUILTIN_MODELS, available_models, create, resolve
from .report import plot_instance_accuracy, render, write_json
from .suites import SUITES, Suite, get_suite, load_pools
from .train import fit, is_complete, load_checkpoint

DEFAULT_MODELS = ("mann", "ntm", "dnc", "lstm", "maml", "protonet")
CALIBRATION_EPISODES = 64


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(device: str) -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _training_sampler(suite: Suite, model_recipe, train_pool: ClassPool, seed: int):
    if model_recipe.protocol == "online":
        return suite.online_sampler(train_pool, seed=suite.train_seed + seed, augment=model_recipe.augment)
    return suite.episodic_sampler(train_pool, suite.shots[0], seed=suite.train_seed + seed,
                                  ways=model_recipe.train_ways, queries=model_recipe.train_queries)


def _validator(suite: Suite, protocol: str, val_pool: ClassPool, episodes: int, device: str):
    """Validation score on the val classes, in the training protocol: mean accuracy."""
    if protocol == "online":
        sampler = suite.online_sampler(val_pool, seed=suite.validation_seed)
        return lambda learner: float(np.mean([e.mean for e in evaluate_online(
            learner, sampler, episodes, device=device).estimates.values()]))
    sampler = suite.episodic_sampler(val_pool, suite.shots[0], seed=suite.validation_seed)
    return lambda learner: evaluate_episodic(learner, sampler, episodes, device=device).estimates[
        f"{suite.ways}-way-{suite.shots[0]}-shot"].mean


def run_model(model: str, suite: Suite, pools: dict[str, ClassPool], fingerprint: str, args) -> dict:
    model_recipe = recipe(model, suite, args.budget)
    run_dir = Path(args.out) / suite.id / model.replace(":", "_") / f"{args.budget}-seed{args.seed}"
    torch.manual_seed(args.seed)
    learner: Learner = create(model, suite.task(), **model_recipe.hyperparameters)
    train_seconds, summary = 0.0, None
    if args.eval_only:
        if not (run_dir / "best.pt").exists():
            raise FewshotMemError(f"--eval-only: no checkpoint for {model} in {run_dir}; train it first")
    elif is_complete(run_dir, model_recipe.config) and not args.resume:
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
    best = load_checkpoint(run_dir / "best.pt")
    learner.load_state_dict(best["model"])
    learner.to(args.device)
    if isinstance(learner, NoveltyScoring) and "online" in suite.protocols:
        calibration = suite.online_sampler(pools["train"], seed=suite.validation_seed + 1)
        learner.calibrate_novelty([calibration.batch(np.arange(CALIBRATION_EPISODES)).to(args.device)])
    start = time.perf_counter()
    tables = {}
    for table, sampler in suite.test_samplers(pools["test"]).items():
        evaluate = evaluate_online if table == "online" else evaluate_episodic
        tables[table] = evaluate(learner, sampler, args.test_episodes or suite.test_episodes, device=args.device,
                                 progress=not args.quiet).to_json()
    eval_seconds = time.perf_counter() - start
    previous = load_checkpoint(run_dir / "last.pt") if (run_dir / "last.pt").exists() else {}
    return {
        "format": "fewshot-mem-result/1", "fewshot_mem_version": __version__, "suite": suite.id,
        "fingerprint": fingerprint, "model": model, "model_class": available_models().get(model, model),
        "hyperparameters": model_recipe.hyperparameters, "training": asdict(model_recipe.config),
        "training_protocol": model_recipe.protocol, "budget": args.budget, "seed": args.seed,
        "git_commit": git_commit(), "trained_steps": previous.get("step"), "best_step": best.get("step"),
        "train_seconds": train_seconds if summary else None, "eval_seconds": eval_seconds,
        "hardware": hardware(args.device), "checkpoint": str(run_dir / "best.pt"), "tables": tables,
    }


def list_everything(data_root) -> None:
    print("suites:")
    for suite in SUITES.values():
        try:
            fingerprint = suite.fingerprint(load_pools(suite, data_root, progress=False)["test"])
        except FewshotMemError:
            fingerprint = "(its data is not available here)"
        print(f"  {suite.id:<28} {suite.title}\n  {'':<28} fingerprint {fingerprint}")
    print("models:")
    for name, spec in available_models().items():
        print(f"  {name:<12} {spec}{'' if name in BUILTIN_MODELS else '  (plug-in)'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="omniglot-5way", help="a suite name or name@version (see --list)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated registered names or package.module:Class plug-ins")
    parser.add_argument("--budget", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="default: $FEWSHOT_MEM_DATA or data/")
    parser.add_argument("--out", default="runs", help="checkpoints and results go here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--eval-only", action="store_true", help="evaluate existing checkpoints, train nothing")
    parser.add_argument("--resume", action="store_true", help="continue interrupted training runs")
    parser.add_argument("--wandb", action="store_true", help="also log to wandb (offline unless configured)")
    parser.add_argument("--list", action="store_true", help="list suites (with fingerprints) and models")
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
        suite = get_suite(args.suite)
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        for model in models:
            resolve(model)  # fail on a bad name before any work
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise FewshotMemError("--device cuda was asked for, but PyTorch sees no CUDA device")
        started = time.perf_counter()
        pools = load_pools(suite, args.data_root, progress=not args.quiet, download=not args.no_download)
        fingerprint = suite.fingerprint(pools["test"], args.test_episodes)
        results = []
        for model in models:
            result = run_model(model, suite, pools, fingerprint, args)
            path = write_json(result, Path(args.out) / suite.id / "results" / f"{model.replace(':', '_')}"
                                      f"-{args.budget}-seed{args.seed}.json")
            print(f"[{model}] results: {path}")
            results.append(result)
        print()
        print(render(results))
        plot = plot_instance_accuracy(results, Path(args.out) / suite.id / f"instance-accuracy-{args.budget}"
                                                                          f"-seed{args.seed}.png")
        print(f"\nsuite {suite.id}, fingerprint {fingerprint}")
        if plot:
            print(f"plot: {plot}")
        print(f"wall-clock: {time.perf_counter() - started:.0f} s")
        return 0
    except (FewshotMemError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
