"""Why MANN learns slowly: one reading of Santoro et al. changed at a time (issue 19).

Every variant starts from the paper-faithful MANN at the `paper` recipe (RMSprop 1e-4, mean loss,
global-norm clipping at 10, LRUA as the paper's equations say) and changes one factor: the
forget-gate bias, a separate add vector, reading M_{t−1}, one least-used slot per head, Adam 1e-3,
a summed loss, per-element clipping. All variants train for the same ``--steps`` optimizer steps
of 16 episodes, on the same training episodes, from the same seed; every ``--validate-every`` steps
each is scored on the same ``--validation-episodes`` validation episodes. Prints, per variant, the
first step at which accuracy at the 2nd instance passes 50% and the last value; writes
``ablation.json`` (curves, settings, device, seconds) and ``ablation.png`` to ``--out``.

On a CUDA device each variant's step is replayed from its own CUDA graph, one variant after
another (``--streams`` puts each on its own stream instead, so that their tiny kernels share the
GPU; on an H200 with torch 2.11 that run hung in the first batch copy after capture, so it is
not the default); on a CPU the steps run eagerly.

    python benchmarks/mann_ablation.py --device cuda --steps 10000 --time-limit 438 --out docs/ablation
    python benchmarks/mann_ablation.py --variants paper,adam-1e-3 --steps 200       # CPU
    python benchmarks/mann_ablation.py --save-pools pools.npz    # the Omniglot pools, to carry
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fewshot_mem.budgets import recipe  # noqa: E402
from fewshot_mem.cuda_graphs import TrainingStep  # noqa: E402
from fewshot_mem.data.episodes import ClassPool, correct_predictions  # noqa: E402
from fewshot_mem.models.learner import predictions  # noqa: E402
from fewshot_mem.models.registry import create  # noqa: E402
from fewshot_mem.report import plot_learning_curves  # noqa: E402
from fewshot_mem.suites import get_suite, load_pools  # noqa: E402
from fewshot_mem.train import TrainConfig, build_optimizer, loss_scale  # noqa: E402

# name: (MANN hyper-parameters, training settings) changed from the paper recipe
VARIANTS: dict[str, tuple[dict, dict]] = {
    "paper": ({}, {}),
    "forget-bias-1": ({"forget_bias": 1.0}, {}),
    "separate-add-vector": ({"add_vector": "separate"}, {}),
    "read-previous-memory": ({"read_memory": "previous"}, {}),
    "least-used-per-head": ({"least_used": "per-head"}, {}),
    "learned-key-strength": ({"key_strength": "learned"}, {}),
    "adam-1e-3": ({}, {"optimizer": "adam", "learning_rate": 1e-3}),
    "summed-loss": ({}, {"loss_reduction": "sum"}),
    "clip-by-value": ({}, {"gradient_clip_mode": "value"}),
}
POSITIONS = (1, 2, 3, 5, 10)
PASS = 0.5


@dataclass
class Variant:
    name: str
    learner: torch.nn.Module
    config: TrainConfig
    step: TrainingStep
    stream: torch.cuda.Stream | None = None
    curve: list[dict] = field(default_factory=list)


def load_or_save_pools(suite, args: argparse.Namespace) -> dict[str, ClassPool]:
    if args.pools:
        saved = np.load(args.pools)
        return {split: ClassPool(str(saved[f"{split}_pool"]), torch.from_numpy(saved[f"{split}_images"]),
                                 tuple(map(str, saved[f"{split}_names"]))) for split in ("train", "val")}
    pools = load_pools(suite, args.data_root, progress=False)
    if args.save_pools:
        np.savez_compressed(args.save_pools, **{f"{split}_{part}": np.asarray(value) for split in ("train", "val")
                                                 for part, value in (("images", pools[split].images.numpy()),
                                                                     ("names", pools[split].class_names),
                                                                     ("pool", pools[split].name))})
        print(f"pools: {args.save_pools}")
    return pools


def build(name: str, suite, base, args: argparse.Namespace, device: torch.device) -> Variant:
    hyperparameters, settings = VARIANTS[name]
    config = base.config.scaled(**settings)
    torch.manual_seed(args.seed)  # every variant starts from the same draw (extra weights come last)
    learner = create("mann", suite.task(), **{**base.hyperparameters, **hyperparameters}).to(device)
    graph = device.type == "cuda"

    def loss(batch):
        return learner.loss(batch) * loss_scale(config, batch)

    step = TrainingStep(loss, learner.parameters(), build_optimizer(learner, config, capturable=graph),
                        clip=config.gradient_clip, clip_mode=config.gradient_clip_mode, graph=graph)
    return Variant(name, learner, config, step, torch.cuda.Stream(device) if graph and args.streams else None)


@torch.no_grad()
def validate(variant: Variant, batches: list) -> dict[str, float]:
    variant.learner.eval()
    hits, counts = np.zeros(len(POSITIONS)), np.zeros(len(POSITIONS))
    for batch in batches:
        correct = correct_predictions(predictions(variant.learner.logits(batch.inputs())), batch.targets)
        correct = correct.float() if correct.dim() == 2 else correct.float().mean(-1)  # (B, T)
        for i, position in enumerate(POSITIONS):
            at = batch.instance_index == position
            hits[i] += float(correct[at].sum())
            counts[i] += float(at.sum())
    variant.learner.train()
    return {f"instance_{p}": hits[i] / max(counts[i], 1) for i, p in enumerate(POSITIONS)}


def train_all(variants: list[Variant], sampler, validation: list, args: argparse.Namespace,
              device: torch.device) -> float:
    started, batch_size = time.perf_counter(), 16

    def sample(step: int):  # on the CPU, in a thread: CUDA calls stay in this thread (graph capture)
        return sampler.batch(np.arange((step - 1) * batch_size, step * batch_size))

    with ThreadPoolExecutor(1) as prefetch:
        upcoming = prefetch.submit(sample, 1)
        for step in range(1, args.steps + 1):
            batch = upcoming.result().to(device)
            if step < args.steps:
                upcoming = prefetch.submit(sample, step + 1)
            for variant in variants:
                if variant.stream is None:
                    variant.step(batch)
                    continue
                variant.stream.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(variant.stream):
                    variant.step(batch)
                if step <= variant.step.warmup + 1:  # warm-up and capture one variant at a time
                    torch.cuda.synchronize(device)
            for variant in variants:
                if variant.stream is not None:
                    torch.cuda.current_stream(device).wait_stream(variant.stream)
            if step % args.validate_every == 0 or step == args.steps:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                for variant in variants:
                    variant.curve.append({"step": step, **validate(variant, validation)})
                seconds = time.perf_counter() - started
                print(f"step {step}/{args.steps} ({seconds:.0f} s): " + ", ".join(
                    f"{v.name} {100 * v.curve[-1]['instance_2']:.1f}" for v in variants), flush=True)
                write(variants, args, device, seconds)
                if args.time_limit and seconds > args.time_limit:
                    print(f"stopped at step {step}: past --time-limit {args.time_limit} s", flush=True)
                    break
    return time.perf_counter() - started


def first_pass(curve: list[dict]) -> int | None:
    return next((point["step"] for point in curve if point["instance_2"] > PASS), None)


def write(variants: list[Variant], args: argparse.Namespace, device: torch.device, seconds: float) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    record = {"suite": args.suite, "steps": args.steps, "batch_size": 16, "seed": args.seed,
              "validation_episodes": args.validation_episodes, "device": hardware, "seconds": round(seconds, 1),
              "command": " ".join(sys.argv),
              "variants": {v.name: {"hyperparameters": VARIANTS[v.name][0], "training": VARIANTS[v.name][1],
                                    "config": asdict(v.config), "curve": v.curve,
                                    "first_step_past_50": first_pass(v.curve),
                                    "last": v.curve[-1] if v.curve else None} for v in variants}}
    (out / "ablation.json").write_text(json.dumps(record, indent=1))
    plot_learning_curves({v.name: [(p["step"] * 16, p["instance_2"]) for p in v.curve] for v in variants if v.curve},
                         "validation accuracy, 2nd instance", f"MANN on {args.suite}: one factor changed at a time "
                         f"(seed {args.seed}, {hardware})", out / "ablation.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="omniglot-5way")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--validation-episodes", type=int, default=500)
    parser.add_argument("--time-limit", type=float, default=None, help="stop after the validation past this (s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streams", action=argparse.BooleanOptionalAction, default=False,
                        help="on CUDA, each variant on its own stream (it hung once: see above)")
    parser.add_argument("--watchdog", type=float, default=None,
                        help="after this many seconds, print every thread's stack and exit")
    parser.add_argument("--pools", default=None, help="an .npz from --save-pools instead of the data set")
    parser.add_argument("--save-pools", default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/mann-ablation")
    args = parser.parse_args(argv)
    if args.watchdog:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    suite, device = get_suite(args.suite), torch.device(args.device)
    pools = load_or_save_pools(suite, args)
    base = recipe("mann", suite, "paper")
    sampler = suite.training_sampler(pools["train"], "online", seed=args.seed, augment=base.augment)
    validating = suite.validation_sampler(pools["val"], "online")
    ids = np.arange(args.validation_episodes)
    validation = [validating.batch(ids[i:i + 250]).to(device) for i in range(0, len(ids), 250)]
    variants = [build(name, suite, base, args, device) for name in names]
    seconds = train_all(variants, sampler, validation, args, device)
    write(variants, args, device, seconds)
    print(f"\n{'variant':24} first step past 50% (2nd instance)   last 2nd-instance accuracy")
    for v in variants:
        last = v.curve[-1] if v.curve else {"step": 0, "instance_2": float("nan")}
        print(f"{v.name:24} {str(first_pass(v.curve) or '-'):>10}   {100 * last['instance_2']:.1f}% at step {last['step']}")
    print(f"\n{len(variants)} variants, {seconds:.0f} s on {device}; {Path(args.out) / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
