"""The benchmark CLI: train what needs training, evaluate on the suite's frozen test
episodes, print the tables people cite, and write the results JSON and plot.

    python -m fewshot_mem.bench --suite omniglot-5way [--models mann,lstm] [--budget quick]
        [--seed 0] [--data-root DIR] [--out runs/] [--device cpu|cuda|auto] [--eval-only]
        [--resume] [--wandb] [--list] [--processes auto|N] [--compile-steps]
    python -m fewshot_mem.bench --cite SUITE [--models ...]   # BibTeX for a suite's numbers
    torchrun --nproc_per_node=P -m fewshot_mem.bench ...      # the same, on P processes (README)

The default run (reference weights only) spreads its evaluation over the machine's CPU cores, one
process a core (``--processes auto``): the tables are those of one process, bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .bench_args import model_names, parse_args, reference_mode
from .budgets import parse_overrides, recipe, with_overrides
from .checkpoints import load_checkpoint
from .citation import cite, models_in_results
from .data.episodes import ClassPool
from .device import resolve_device
from .errors import FewshotMemError
from .evaluate import evaluate_episodic, evaluate_on_suite, evaluate_online_tables
from .models.fused_steps import compiler_problem
from .models.learner import Learner
from .models.registry import BUILTIN_MODELS, available_models, create, default_models, resolve
from .reference import Reference, board_entries, default_board_root, evaluate_reference, expected_seconds, references
from .report import (budget_text, duration, plot_instance_accuracy, plot_lag_accuracy, render, training_hardware,
                     training_time)
from .results import CUSTOM_BUDGET, build_result, episodic_key, result_path, run_label, training_log, write_result
from .suites import Suite, all_suites, get_suite, load_pools
from .train import fit, is_complete

INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it
MAX_AUTO_PROCESSES = 8  # --processes auto: evaluation shards barely gain past this, and each rank holds the data


def _validator(suite: Suite, protocol: str, val_pool: ClassPool, episodes: int, device: str):
    """Validation score on the val classes, in the training protocol: mean accuracy (online: over
    instance positions, logged one by one as well, and for string labels the share of characters
    right, as ``character_instance_<p>``)."""
    sampler = suite.validation_sampler(val_pool, protocol)
    if protocol == "online":
        def validate_online(learner: Learner) -> dict[str, float]:
            tables = evaluate_online_tables(learner, sampler, episodes, device=device, characters=True, lag=False)
            estimates = tables["online"].estimates
            characters = tables["online-characters"].estimates if "online-characters" in tables else {}
            return {"score": float(np.mean([e.mean for e in estimates.values()])),
                    **{position: e.mean for position, e in estimates.items()},
                    **{f"character_{position}": e.mean for position, e in characters.items()}}
        return validate_online
    return lambda learner: evaluate_episodic(learner, sampler, episodes, device=device).estimates[
        episodic_key(suite.ways, suite.shots[0])].mean


def model_recipe_of(model: str, suite: Suite, args: argparse.Namespace):
    """The recipe at ``args.budget``, with the ``--set`` overrides."""
    return with_overrides(model, recipe(model, suite, args.budget), args.overrides)


def budget_label(args: argparse.Namespace) -> str:
    """The budget a result records: the one asked for, or "custom" when --set changed its recipe."""
    return CUSTOM_BUDGET if args.overrides else args.budget


def training_label(args: argparse.Namespace) -> str:
    """A training run's folder and results label: "quick-seed0"; with --set, "custom-<digest>-seed0",
    so that two custom recipes never share a run."""
    if not args.overrides:
        return run_label(args.budget, args.seed)
    digest = hashlib.sha256(json.dumps([args.budget, args.overrides], sort_keys=True).encode()).hexdigest()[:8]
    return run_label(f"{CUSTOM_BUDGET}-{digest}", args.seed)


def run_model(model: str, suite: Suite, pools: dict[str, ClassPool], fingerprint: str, args) -> dict:
    model_recipe = model_recipe_of(model, suite, args)
    run_dir = Path(args.out) / suite.id / model.replace(":", "_") / training_label(args)
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
        sampler = suite.training_sampler(pools["train"], model_recipe.protocol, args.seed,
                                         ways=model_recipe.train_ways, queries=model_recipe.train_queries,
                                         augment=model_recipe.augment)
        validate = _validator(suite, model_recipe.protocol, pools["val"],
                              model_recipe.config.validation_episodes, args.device)
        compile_training_steps(learner, model, args.compile_steps)
        start = time.perf_counter()
        summary = fit(learner, sampler.batch, validate, model_recipe.config, run_dir, seed=args.seed,
                      resume=args.resume, progress=not args.quiet, device=args.device, use_wandb=args.wandb,
                      run_config={"suite": suite.id, "model": model, "seed": args.seed})
        train_seconds = time.perf_counter() - start
        compile_training_steps(learner, model, False)
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
    return build_result(
        suite_id=suite.id, fingerprint=fingerprint, model=model, model_class=available_models().get(model, model),
        hyperparameters=model_recipe.hyperparameters, training=model_recipe.config,
        training_protocol=model_recipe.protocol, budget=budget_label(args), seed=args.seed, overrides=args.overrides,
        trained_steps=previous.get("step"), best_step=best.get("step"),
        train_seconds=previous.get("train_seconds", train_seconds if summary else None),
        train_cpu_seconds=previous.get("train_cpu_seconds"), eval_seconds=eval_seconds,
        device=args.device, checkpoint=str(run_dir / "best.pt"), tables=tables, forgetting=forgetting,
        **distributed.from_main(training_log, run_dir / "metrics.jsonl"))


def compile_training_steps(learner: Learner, model: str, enabled: bool) -> None:
    """Turns ``--compile-steps`` on (before training) or off (before evaluation) for learners that
    have compiled steps (the memory models); says so where a model has none."""
    if hasattr(learner, "compile_steps"):
        learner.compile_steps(enabled)
    elif enabled and distributed.is_main():
        print(f"[{model}] --compile-steps: {model} has no compiled steps; it trains as it is")


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
    for suite in all_suites():
        fingerprint = available_fingerprint(suite, data_root) or "(its data is not available here)"
        current = get_suite(suite.name)
        earlier = "" if current is suite else f" (an earlier version: {current.id} is current)"
        print(f"  {suite.id:<28} {suite.title}{earlier}\n  {'':<28} fingerprint {fingerprint}")
    print("models:")
    for name, spec in available_models().items():
        print(f"  {name:<12} {spec}{'' if name in BUILTIN_MODELS else '  (plug-in)'}")


def print_citation(args: argparse.Namespace) -> None:
    """BibTeX for --cite: the models asked for, else those with results under --out, else the built-ins."""
    suite = get_suite(args.cite)
    if args.models:
        models = model_names(args.models)
        for model in models:
            resolve(model)  # a name asked for must be right; one found in old results need not import
    else:
        models = models_in_results(args.out, suite) or default_models()
    print(cite(suite, models, available_fingerprint(suite, args.data_root, download=False)), end="")


def _interrupted(report: bool) -> int:
    if report:
        print("interrupted: training runs continue from their last checkpoint with --resume", file=sys.stderr)
    return INTERRUPTED


def processes_for(args: argparse.Namespace, suite: Suite, models: list[str]) -> int:
    """How many processes to launch: 1 under a launcher already; ``--processes auto`` spreads only a
    default run on CPU whose every model has reference weights (evaluation only: one process's
    tables), over the cores, up to ``MAX_AUTO_PROCESSES``."""
    if distributed.launched():
        return 1
    if args.processes != "auto":
        return args.processes
    if resolve_device(args.device) != "cpu" or not reference_mode(args) or args.test_episodes is not None:
        return 1
    if None in references(args.leaderboard or default_board_root(), suite, models).values():
        return 1
    return min(distributed.available_cores(), MAX_AUTO_PROCESSES)


def _rank_main(argv: list[str], threads: int) -> int:
    """One rank of a run spread by ``--processes`` (the process that launched it reports an interrupt)."""
    torch.set_num_threads(threads)
    return main(argv, report_interrupt=False)


def main(argv: list[str] | None = None, *, report_interrupt: bool = True) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        if args.list:
            list_everything(args.data_root)
            return 0
        if args.cite:
            print_citation(args)
            return 0
        suite = get_suite(args.suite)
        models = checked_models(args)
        processes = processes_for(args, suite, models)
        if processes > 1:
            return _spread_over_processes(argv, args, suite, processes, report_interrupt)
        return run_suite(suite, models, args)
    except (FewshotMemError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(report_interrupt and distributed.is_main())
    finally:
        distributed.cleanup()


def checked_models(args: argparse.Namespace) -> list[str]:
    """The models to run (``--models``, else the defaults), after the checks that fail on bad input
    before any work: each model's name, ``--set`` (parsed into ``args.overrides``), and
    ``--compile-steps`` where torch.compile does not work."""
    args.overrides = parse_overrides(args.overrides)
    models = model_names(args.models) if args.models else default_models()
    for model in models:
        resolve(model)
    if args.compile_steps and (problem := compiler_problem()):
        raise FewshotMemError(f"--compile-steps: torch.compile does not work here ({problem}); "
                              "train without --compile-steps")
    return models


def _spread_over_processes(argv: list[str], args: argparse.Namespace, suite: Suite, processes: int,
                           report_interrupt: bool) -> int:
    """Runs the bench on ``processes`` local ranks, the cores shared out between them."""
    # Here first, so that a download or a first decode happens once and a missing data set is
    # reported once; the ranks then read the cache.
    load_pools(suite, args.data_root, progress=not args.quiet, download=not args.no_download)
    try:
        return distributed.run_on_local_processes(
            _rank_main, (argv, max(1, distributed.available_cores() // processes)), processes)
    except KeyboardInterrupt:
        return _interrupted(report_interrupt)


def run_suite(suite: Suite, models: list[str], args: argparse.Namespace) -> int:
    """Runs the models on the suite in this process (one rank under a launcher): each evaluates its
    reference weights or trains, rank 0 writes the results and prints the report. 1 where reference
    weights did not give their entry's per-episode results, else 0."""
    args.device = distributed.init(resolve_device(args.device))  # under torchrun: join the group, one GPU a rank
    args.quiet = args.quiet or not distributed.is_main()  # rank 0 alone shows progress
    started = time.perf_counter()
    plan = plan_run(suite, models, args)
    pools = load_pools(suite, args.data_root, progress=not args.quiet, download=not args.no_download)
    fingerprint = suite.fingerprint(pools["test"], args.test_episodes)
    results, differing = [], []
    for model in models:
        result, reproduced = _run_one(model, plan[model], suite, pools, fingerprint, args)
        results.append(result)
        differing += [] if reproduced else [plan[model].name]
    if distributed.is_main():
        report(results, suite, fingerprint, args, started, "reference" if any(plan.values()) else None)
        for name in differing:
            print(f"MISMATCH: {name}'s weights did not give the entry's per-episode results "
                  f"(python -m fewshot_mem.leaderboard verify {name} shows where)")
    return 1 if differing else 0


def _run_one(model: str, reference: Reference | None, suite: Suite, pools: dict[str, ClassPool], fingerprint: str,
             args: argparse.Namespace) -> tuple[dict, bool]:
    """One model's result, written by rank 0, and whether it reproduced its reference entry (True
    for a model trained here)."""
    if reference is None:
        result = run_model(model, suite, pools, fingerprint, args)
        label, verdict, reproduced = training_label(args), "", True
    else:
        result, verification = evaluate_reference(reference, args.leaderboard, data_root=args.data_root,
                                                  device=args.device, progress=not args.quiet)
        label, verdict, reproduced = "reference", _reference_verdict(reference, verification), verification.ok
    if distributed.is_main():  # every rank holds the same result: one writes it
        path = write_result(result, result_path(args.out, suite.id, model, label))
        print(f"[{model}] results: {path}{verdict}")
    return result, reproduced


def plan_run(suite: Suite, models: list[str], args: argparse.Namespace) -> dict[str, Reference | None]:
    """Which models are evaluated from reference weights and which are trained (at ``args.budget``,
    set here), printed with the run's expected duration as the run's first lines."""
    evaluates_references = reference_mode(args)
    args.budget = args.budget or "quick"
    args.leaderboard = args.leaderboard or default_board_root()
    if evaluates_references and args.test_episodes is not None:
        raise FewshotMemError("--test-episodes applies to training runs (--budget or --train): reference "
                              "weights are evaluated on every frozen test episode, as their entries were")
    plan = references(args.leaderboard, suite, models) if evaluates_references else dict.fromkeys(models)
    if distributed.is_main():
        expected = expected_seconds(plan, board_entries(args.leaderboard, suite), args.budget,
                                    distributed.world_size())
        print(f"{suite.id}: expected duration "
              f"{'unknown (no board entry tells)' if expected is None else 'about ' + duration(expected)}; "
              f"{sum(r is not None for r in plan.values())} of {len(plan)} models from reference weights"
              + (f"; on {distributed.world_size()} processes" if distributed.world_size() > 1 else ""))
        for model, reference in plan.items():
            print(f"  {model}: {_plan_line(model, reference, suite, args, evaluates_references)}")
    return plan


def _plan_line(model: str, reference: Reference | None, suite: Suite, args: argparse.Namespace,
               evaluates_references: bool) -> str:
    """What the run does with one model: the reference entry it evaluates (budget, training time,
    hardware), or the budget it trains at."""
    if reference is not None:
        result = reference.result
        return (f"reference weights {reference.name} ({budget_text(result)}, trained "
                f"{training_time(result)} on {training_hardware(result)})")
    config = model_recipe_of(model, suite, args).config
    planned = budget_text({"budget": config.budget, "training": asdict(config)})
    if args.eval_only:
        return f"evaluates the best checkpoint of its {args.budget} run ({planned}); trains nothing"
    return (("no reference weights on this board: " if evaluates_references else "")
            + f"trains at the {args.budget} budget ({planned})"
            + (f" with --set {args.overrides}" if args.overrides else ""))


def _reference_verdict(reference: Reference, verification) -> str:
    """"equal to the entry" where every per-episode value is bit-identical; else how far off."""
    if verification.ok and verification.differing_episodes == 0:
        return f" (re-evaluated: equal to the entry {reference.name}, {verification.summary()})"
    verdict = "within verify's tolerance of" if verification.ok else "DIFFERS from"
    return f" (re-evaluated: {verdict} the entry {reference.name}: {verification.summary()})"


def report(results: list[dict], suite: Suite, fingerprint: str, args: argparse.Namespace, started: float,
           label: str | None = None) -> None:
    """Prints the tables and writes the plot."""
    print()
    print(render(results))
    name = label or training_label(args)
    plots = [plot_instance_accuracy(results, Path(args.out) / suite.id / f"instance-accuracy-{name}.png"),
             plot_lag_accuracy(results, Path(args.out) / suite.id / f"lag-accuracy-{name}.png")]
    print(f"\nsuite {suite.id}, fingerprint {fingerprint}")
    for plot in filter(None, plots):
        print(f"plot: {plot}")
    print(f"wall-clock: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
