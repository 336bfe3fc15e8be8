"""Training speed of the sequence models: the library against straightforward references.

For MANN, NTM, DNC and the LSTM at Santoro et al.'s size (batches of 16 label-offset episodes of
50 steps, 5 classes × 10 instances, 20×20 images, one-hot labels; LSTM 200 units; memory 128×40
with 4 read heads for every memory model), one run:

1. checks that the library model and its reference (``reference_models.py``: a Python loop over
   time steps and heads, one layer per gate and head quantity) compute the same function: the
   same logits for the same weights and batch, in float64;
2. times training steps (forward, backward, gradient clipping, Adam step) of both, interleaved:
   the two alternate, repetition by repetition (and which goes first alternates too), after a
   warm-up, and each rate is the median over repetitions, so the ratio holds even on a machine
   that is busy with other work;
3. counts the FLOPs of one training episode (forward + backward, with
   ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix products: mm, addmm, bmm,
   einsum, convolutions; element-wise work is not counted), and compares the achieved GFLOP/s with
   this machine's peak, measured in the same run as a large float32 matrix product, one sample
   per repetition round (the best of them), so peak and models see the same contention;
4. with ``--breakdown``, splits one library step into forward, backward and optimizer (CPU time)
   and profiles it: the matrix products' share of operator time against the other operations.

    python benchmarks/bench_train.py [--models mann,ntm,dnc,lstm] [--repeats 7] [--steps 2]
        [--batch-size 16] [--threads 2] [--compile] [--compile-scope fused|step|loss] [--data-root DIR]
        [--random-images] [--breakdown] [--before REV]

With ``--before REV`` the library model as of git revision REV (``revision.py``) is timed in the
same alternation, with the same weights, and its logits compared with the checkout's: a change's
speed-up measured side by side in one run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

# This checkout first (not an installed copy), and this folder for reference_models.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
from reference_models import reference_for  # noqa: E402
from revision import counterpart, import_revision  # noqa: E402

from fewshot_mem.cuda_graphs import TrainingStep  # noqa: E402
from fewshot_mem.data.episodes import LabelOffsetSampler, SequenceBatch, encode_labels  # noqa: E402
from fewshot_mem.errors import FewshotMemError  # noqa: E402
from fewshot_mem.models.learner import SequenceLearner, TaskSpec, classification_loss  # noqa: E402
from fewshot_mem.models.registry import create  # noqa: E402

MODELS = ("mann", "ntm", "dnc", "lstm")
WAYS, INSTANCES, IMAGE_SIZE = 5, 10, 20
SANTORO_MEMORY = dict(controller_size=200, memory_slots=128, memory_width=40, read_heads=4)
HYPERPARAMETERS = {"mann": SANTORO_MEMORY, "ntm": SANTORO_MEMORY, "dnc": SANTORO_MEMORY,
                   "lstm": dict(controller_size=200)}
CHECK_EPISODES = 2
CHECK_TOLERANCE = dict(rtol=1e-9, atol=1e-12)
PEAK_SIDE = 1536  # the matrices of the peak measurement: 2·1536³ ≈ 7.2 GFLOP a product
LEARNING_RATE, GRADIENT_CLIP = 1e-3, 10.0  # as the training loop's quick budget


# ---------------------------------------------------------------------------------------------
# Data


def random_batches(count: int, batch_size: int, seed: int = 0) -> list[SequenceBatch]:
    """Label-offset batches of the real shape with random uint8 images."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        order = torch.stack([torch.randperm(WAYS * INSTANCES, generator=generator) for _ in range(batch_size)])
        labels = order // INSTANCES
        codes = encode_labels(labels, WAYS, None)
        previous = torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], dim=1)
        images = torch.randint(0, 256, (batch_size, WAYS * INSTANCES, 1, IMAGE_SIZE, IMAGE_SIZE),
                               dtype=torch.uint8, generator=generator)
        batches.append(SequenceBatch(images=images, labels=labels, codes=codes, previous_codes=previous,
                                     instance_index=labels, classes=labels, instances=labels, strings=None))
    return batches


def sampler_batches(count: int, batch_size: int, data_root) -> list[SequenceBatch]:
    """Batches from the real label-offset sampler on the Vinyals training classes."""
    from fewshot_mem.data.omniglot import load_omniglot

    omniglot = load_omniglot(data_root, progress=False, download=False)
    sampler = LabelOffsetSampler(omniglot.pool("vinyals/train", IMAGE_SIZE), WAYS, INSTANCES)
    return [sampler.batch(np.arange(i * batch_size, (i + 1) * batch_size)) for i in range(count)]


def training_batches(args) -> tuple[list[SequenceBatch], str]:
    count = 4  # a few distinct batches, cycled; drawn before any timing
    if not args.random_images:
        try:
            return sampler_batches(count, args.batch_size, args.data_root), "Omniglot label-offset sampler"
        except (FewshotMemError, OSError) as error:
            print(f"(no Omniglot: {str(error).splitlines()[0]}; using random images of the same shape)")
    return random_batches(count, args.batch_size), "random uint8 images"


def first_episodes(batch: SequenceBatch, count: int) -> SequenceBatch:
    return SequenceBatch(**{name: None if value is None else value[:count] for name, value in vars(batch).items()})


# ---------------------------------------------------------------------------------------------
# Measurements


def check_same_function(library, batch: SequenceBatch) -> tuple[bool, float]:
    """float64 copies of the library model and of its reference: do the logits agree?"""
    library64 = copy.deepcopy(library).double()
    reference64 = reference_for(library64)
    with torch.no_grad():
        expected, got = library64.online_logits(batch), reference64.online_logits(batch)
    return torch.allclose(got, expected, **CHECK_TOLERANCE), float((got - expected).abs().max())


def training_step(model, loss: Callable[[SequenceBatch], torch.Tensor]) -> TrainingStep:
    """One optimizer step of the training loop: loss, backward, gradient clipping, Adam."""
    return TrainingStep(loss, model.parameters(), torch.optim.Adam(model.parameters(), lr=LEARNING_RATE),
                        clip=GRADIENT_CLIP)


def training_flops(model, loss, batch: SequenceBatch) -> int:
    """Matrix-product FLOPs of one forward and backward pass over ``batch``."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss(batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_sample() -> tuple[float, float]:
    """GFLOP/s of one large float32 matrix product (this machine's practical peak, right now),
    per wall-clock second and per CPU-second."""
    a, b = torch.randn(PEAK_SIDE, PEAK_SIDE), torch.randn(PEAK_SIDE, PEAK_SIDE)
    torch.mm(a, b)
    start, start_cpu = time.perf_counter(), time.process_time()
    torch.mm(a, b)
    flops = 2 * PEAK_SIDE ** 3 / 1e9
    return flops / (time.perf_counter() - start), flops / max(time.process_time() - start_cpu, 1e-9)


def compiled_loss(library, scope: str):
    """torch.compile (inductor, CPU) of one recurrent step (or of ``run`` where a model steps
    through whole sequences itself, as the LSTM does), or of the whole loss."""
    compiled = copy.deepcopy(library)
    if scope == "fused" and hasattr(compiled, "compile_steps"):  # the LSTM has none: its step is compiled
        return compiled.compile_steps(), compiled.loss
    if scope in ("step", "fused"):
        method = "run" if type(compiled).run is not SequenceLearner.run else "step"
        setattr(compiled, method, torch.compile(getattr(compiled, method), backend="inductor"))
        return compiled, compiled.loss
    return compiled, torch.compile(lambda batch: classification_loss(compiled.online_logits(batch), batch.targets),
                                   backend="inductor")


MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def breakdown(model, batch: SequenceBatch, repeats: int = 3) -> str:
    """Where one training step's time goes: CPU milliseconds of forward (recording the graph),
    backward and clipping + Adam (the best of ``repeats``), and from torch.profiler the share of
    the matrix products in the step's operator time, the operator calls per step and the mean
    cost of a call that is not a matrix product (per-operation overhead plus element-wise work)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    parts = {"forward": [], "backward": [], "clip + Adam": []}
    for _ in range(repeats):
        optimizer.zero_grad(set_to_none=True)
        start = time.process_time()
        loss = model.loss(batch)
        middle = time.process_time()
        loss.backward()
        end = time.process_time()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
        optimizer.step()
        for name, seconds in zip(parts, (middle - start, end - middle, time.process_time() - end)):
            parts[name].append(seconds)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch).backward()
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    products = sum(e.self_cpu_time_total for e in events if e.key in MATRIX_PRODUCTS)
    others = sum(e.count for e in events if e.key not in MATRIX_PRODUCTS)
    return (", ".join(f"{name} {1e3 * min(values):.1f} ms" for name, values in parts.items())
            + f"; forward + backward in the profiler: matrix products {100 * products / total:.0f}% of operator time, "
            f"{sum(e.count for e in events):,} operator calls, the {others:,} others "
            f"{(total - products) / max(others, 1):.1f} us each (CPU time)")


def before_step(library, name: str, package: str, compiled: bool = False) -> tuple[Callable, str]:
    """A training step of ``library``'s model (registered as ``name``) as in ``package`` (another
    revision), with the same weights (``compiled``: its per-step pieces compiled), and whether the
    two compute the same logits (bit for bit, float32)."""
    task_spec = counterpart(TaskSpec, package)(WAYS, "one-hot", (1, IMAGE_SIZE, IMAGE_SIZE))
    model = counterpart(library, package)(task_spec, **HYPERPARAMETERS[name])
    model.load_state_dict(library.state_dict())
    if compiled:
        model.compile_steps()
    batch_type = counterpart(SequenceBatch, package)

    def loss(batch: SequenceBatch) -> torch.Tensor:
        return model.loss(batch_type(**vars(batch)))

    probe = random_batches(1, 2)[0]
    with torch.no_grad():
        got, expected = model.logits(batch_type(**vars(probe)).inputs()), library.logits(probe.inputs())
    same = "bit-identical" if torch.equal(got, expected) else f"max |difference| {float((got - expected).abs().max()):.1e}"
    return training_step(model, loss), same


def interleaved_rates(steps: dict[str, Callable], batches: list[SequenceBatch], repeats: int,
                      steps_per_repeat: int, peaks: list[tuple[float, float]]
                      ) -> tuple[dict[str, tuple[float, float]], dict[str, list[float]]]:
    """Median episodes per second of each training step function, run in alternating order:
    (per wall-clock second, per second of this process's CPU time), and each repetition's rate per
    CPU-second (for paired ratios). On a machine busy with other work the second is the steadier
    one: it does not count time spent waiting for a core (with several threads it counts every
    thread's time, spin-waiting included)."""
    names = list(steps)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    cursor = 0
    episodes = steps_per_repeat * batches[0].images.shape[0]
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps_per_repeat):
                steps[name](batches[cursor % len(batches)])
                cursor += 1
            wall[name].append(episodes / (time.perf_counter() - start))
            cpu[name].append(episodes / max(time.process_time() - start_cpu, 1e-9))
        peaks.append(peak_sample())
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in names}, cpu


def paired_ratios(samples: dict[str, list[float]], mine: str, theirs: str) -> str:
    """The ratio of ``mine`` to ``theirs`` within each repetition (measured back to back, so slow
    drifts of the machine cancel): "median (min-max over N)"; the spread is this run's noise."""
    ratios = sorted(new / old for new, old in zip(samples[mine], samples[theirs]))
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f} over {len(ratios)})"


def print_table(rows, args, peak: tuple[float, float]) -> None:
    compiled = [f"{'compiled':>10}{'vs ref':>8}"] if args.compile else []
    group = 29 + (18 if args.compile else 0)
    print(f"\n{'':<7}{'episodes/s (wall clock)':^{group}}{'episodes per CPU-second':^{group + 2}}")
    print(f"{'model':<7}{'library':>10}{'reference':>11}{'ratio':>8}{''.join(compiled)}"
          f"{'library':>12}{'reference':>11}{'ratio':>8}{''.join(compiled)}"
          f"{'MFLOP/ep':>10}{'GFLOP/s':>9}{'% peak':>8}{'GFLOP/CPU-s':>13}{'% peak':>8}"
          + (f"{'compiled % peak':>17}" if args.compile else ""))
    for name, rates, flops, _ in rows:
        cells = []
        for clock in (0, 1):
            library, reference = rates["library"][clock], rates["reference"][clock]
            cells.append(f"{library:>{10 if clock == 0 else 12},.1f}{reference:>11,.1f}{library / reference:>7.1f}x")
            if args.compile:
                done = rates.get("compiled")
                cells.append(f"{done[clock]:>10,.1f}{done[clock] / reference:>7.1f}x" if done else f"{'failed':>10}{'-':>8}")
        # FLOPs of the model's arithmetic: the reference's count (the same function, written with plain
        # layers FlopCounterMode sees; the library's fused oneDNN LSTM is invisible to it).
        per_episode = max(flops["library"], flops["reference"]) / args.batch_size
        wall, cpu = (per_episode * rates["library"][clock] / 1e9 for clock in (0, 1))
        done = rates.get("compiled")
        compiled_share = (f"{100 * per_episode * done[1] / 1e9 / peak[1]:>16.1f}%" if done else f"{'-':>17}") \
            if args.compile else ""
        print(f"{name:<7}{''.join(cells)}{per_episode / 1e6:>10,.1f}{wall:>9,.2f}{100 * wall / peak[0]:>7.1f}%"
              f"{cpu:>13,.2f}{100 * cpu / peak[1]:>7.1f}%{compiled_share}")
    print("\nMFLOP/ep: matrix-product FLOPs of one training episode, forward + backward (FlopCounterMode: mm, addmm, "
          "bmm, einsum; element-wise work is not counted), the larger of the library's and the reference's count "
          "(FlopCounterMode does not see the fused oneDNN LSTM). GFLOP/s and % of peak: the library model; "
          "compiled % peak: the compiled model's, per CPU-second.")


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per implementation (median)")
    parser.add_argument("--steps", type=int, default=2, help="training steps per repetition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes per step (Santoro et al.: 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (inductor, CPU) "
                        "of the library model; falls back to eager, saying so, if compiling fails")
    parser.add_argument("--compile-scope", choices=("fused", "step", "loss"), default="step",
                        help="compile the hand-derived step pieces of MANN/NTM/DNC (fused: compile_steps()), one "
                        "recurrent step (reused at every time step; the LSTM's whole run) or the whole loss "
                        "(the 50 steps unrolled: long compile times)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--random-images", action="store_true", help="random uint8 images instead of Omniglot")
    parser.add_argument("--breakdown", action="store_true", help="also time forward, backward and optimizer of one "
                        "library step, and profile it (matrix products against the other operations)")
    parser.add_argument("--before", metavar="REV", help="also time the library model as of git revision REV, "
                        "side by side (e.g. HEAD~1: what the working tree's change gains)")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    before = import_revision(args.before) if args.before else None

    batches, source = training_batches(args)
    print(f"training steps at batch {args.batch_size} x {WAYS * INSTANCES} steps, {IMAGE_SIZE}x{IMAGE_SIZE} images "
          f"({source}); torch {torch.__version__}, {torch.get_num_threads()} threads; Adam + clipping; "
          f"median of {args.repeats} interleaved repetitions of {args.steps} steps after {args.warmup} warm-up")
    rows, failures, peaks = [], [], []
    for name in models:
        torch.manual_seed(0)
        library = create(name, TaskSpec(WAYS, "one-hot", (1, IMAGE_SIZE, IMAGE_SIZE)), **HYPERPARAMETERS[name])
        same, difference = check_same_function(library, first_episodes(batches[0], CHECK_EPISODES))
        print(f"[{name}] check: library and reference logits agree in float64 ({CHECK_EPISODES} episodes x "
              f"{WAYS * INSTANCES} steps): {'yes' if same else 'NO'}, max |difference| {difference:.1e}")
        if not same:
            failures.append(name)
        reference = reference_for(library)
        steps = {"library": training_step(library, library.loss),
                 "reference": training_step(reference, reference.loss)}
        flops = {"library": training_flops(library, library.loss, batches[0]),
                 "reference": training_flops(reference, reference.loss, batches[0])}
        compile_note = ""
        if args.compile:
            try:
                compiled, loss = compiled_loss(library, args.compile_scope)
                step = training_step(compiled, loss)
                start = time.perf_counter()
                step(batches[0])  # compiles (forward and backward)
                compile_note = f"compiled ({args.compile_scope}) in {time.perf_counter() - start:.0f} s"
                steps["compiled"] = step
            except Exception as error:  # noqa: BLE001 - any compiler failure falls back to eager
                compile_note = f"torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
            print(f"[{name}] {compile_note}")
        if before:
            steps["before"], same = before_step(library, name, before)
            print(f"[{name}] {args.before} ({before}): logits against the checkout's, float32: {same}")
            if "compiled" in steps and args.compile_scope == "fused" and hasattr(library, "compile_steps"):
                steps["before compiled"], _ = before_step(library, name, before, compiled=True)
                steps["before compiled"](batches[0])  # compiles
        for _ in range(args.warmup):
            for step in steps.values():
                step(batches[0])
        rates, samples = interleaved_rates(steps, batches, args.repeats, args.steps, peaks)
        rows.append((name, rates, flops, samples))
        if args.breakdown:
            print(f"[{name}] breakdown: {breakdown(library, batches[0])}")
        print(f"[{name}] " + ", ".join(f"{k} {w:,.1f} episodes/s ({c:,.1f} per CPU-second)"
                                       for k, (w, c) in rates.items()))

    peaks = peaks or [peak_sample()]
    peak = (max(p[0] for p in peaks), max(p[1] for p in peaks))
    print(f"\npeak: {peak[0]:,.1f} GFLOP/s wall clock, {peak[1]:,.1f} per CPU-second (float32 {PEAK_SIDE}x{PEAK_SIDE} "
          f"matrix product, {args.threads} threads, the best of {len(peaks)} samples taken between the repetitions "
          "of this run)")
    print_table(rows, args, peak)
    if before:
        for mine, theirs in (("library", "before"), ("compiled", "before compiled")):
            pairs = [(name, rates[theirs][1], rates[mine][1], paired_ratios(samples, mine, theirs))
                     for name, rates, _, samples in rows if theirs in rates]
            if pairs:
                print(f"\n{mine} against {args.before}, episodes per CPU-second (medians; then the ratio within each "
                      "repetition, median and range): " + "; ".join(
                          f"{name} {old:,.1f} -> {new:,.1f} ({new / old:.2f}x; paired {paired})"
                          for name, old, new, paired in pairs))
    if failures:
        print(f"\nMISMATCH: the reference does not compute the library function for {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
