"""Training throughput on one process and on two (DDP over gloo, torchrun), side by side.

MANN and LSTM at Santoro et al.'s size (omniglot-5way: 5 classes x 10 instances,
20x20 images, batches of 16 episodes with augmentation, as the quick budget) train
for a fixed number of steps through ``train.fit``, the bench's own loop, after a
few warm-up steps. Each setting runs in fresh processes, one after the other:

* 1 process with 2 threads (the whole 2-core machine to one process),
* 1 process with 1 thread,
* 2 processes under torchrun, 1 thread each (the same global batch of 16, split 8 + 8),

and the table gives training episodes/s and each two-core setting's rate over one core's (the
scaling). ``--compile-steps`` trains the memory models with compiled steps (``bench
--compile-steps``), compiled during the warm-up.

    python benchmarks/bench_distributed.py [--models mann,lstm] [--steps 100] [--warmup 5] [--compile-steps]
        [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fewshot_mem import distributed
from fewshot_mem.budgets import recipe
from fewshot_mem.models.registry import create
from fewshot_mem.suites import get_suite, load_pools
from fewshot_mem.train import fit

SUITE = "omniglot-5way"
SETTINGS = ((1, 2), (1, 1), (2, 1))  # (processes, threads per process)


def train_rate(model: str, steps: int, warmup: int, run_dir: Path, data_root: str | None,
               compile_steps: bool = False) -> float:
    """Training episodes/s of ``model`` over ``steps`` steps, on however many ranks run this."""
    suite = get_suite(SUITE)
    model_recipe = recipe(model, suite, "quick")
    sampler = suite.online_sampler(load_pools(suite, data_root, progress=False)["train"], seed=suite.train_seed,
                                   augment=model_recipe.augment)
    torch.manual_seed(0)
    learner = create(model, suite.task(), **model_recipe.hyperparameters)
    if compile_steps and hasattr(learner, "compile_steps"):
        learner.compile_steps()
    batch = model_recipe.config.batch_size

    def run(count: int) -> float:
        config = model_recipe.config.scaled(episodes=count * batch, validate_every=10**9, checkpoint_every=10**9)
        distributed.barrier()  # all ranks start the clock together
        start = time.perf_counter()
        fit(learner, sampler.batch, lambda _: 0.0, config, run_dir, progress=False)
        return time.perf_counter() - start

    run(warmup)  # first steps: allocations, DDP's bucket set-up
    return steps * batch / run(steps)


def worker(args: argparse.Namespace) -> None:
    distributed.init("cpu")
    torch.set_num_threads(args.threads)
    rate = train_rate(args.worker, args.steps, args.warmup, Path(args.run_dir), args.data_root, args.compile_steps)
    if distributed.is_main():
        print(json.dumps({"episodes_per_second": rate}))
    distributed.cleanup()


def measure(model: str, processes: int, threads: int, args: argparse.Namespace) -> float:
    """Runs this file as a worker in fresh processes; returns the episodes/s it reports."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    with tempfile.TemporaryDirectory() as run_dir:
        command = [*launcher, __file__, "--worker", model, "--threads", str(threads), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--run-dir", run_dir]
        if args.data_root:
            command += ["--data-root", args.data_root]
        if args.compile_steps:
            command += ["--compile-steps"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        finished = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stdout}{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])["episodes_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mann,lstm")
    parser.add_argument("--steps", type=int, default=100, help="timed steps of 16 episodes")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--compile-steps", action="store_true", help="the memory models' steps compiled")
    parser.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; {args.steps} timed steps "
          f"of 16 episodes after {args.warmup} warm-up steps{'; compiled steps' if args.compile_steps else ''}\n")
    headers = [f"{p} proc x {t} thr" for p, t in SETTINGS] + ["1px2t / 1px1t", "2px1t / 1px1t"]
    print(f"{'model':<6}" + "".join(f"{h:>18}" for h in headers) + "   (episodes/s)")
    for model in args.models.split(","):
        rates = [measure(model, processes, threads, args) for processes, threads in SETTINGS]
        ratios = [rates[0] / rates[1], rates[2] / rates[1]]  # each two-core setting over one core
        print(f"{model:<6}" + "".join(f"{r:>18.1f}" for r in rates) + "".join(f"{r:>17.2f}x" for r in ratios))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
