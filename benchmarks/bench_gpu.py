"""Training and evaluation of the sequence models on a GPU, against one CPU core, in one run.

At Santoro et al.'s size (batches of 16 label-offset episodes of 50 steps, 20x20 images; LSTM
200; memory 128x40 with 4 heads), with random weights and random images (no data set needed),
for each of MANN, NTM, DNC and the LSTM:

* training episodes/s (forward, backward, gradient clipping, Adam): CPU with 1 thread (a few
  steps), CUDA eager, and CUDA replayed from a CUDA graph (``fewshot_mem.cuda_graphs``); plus
  the largest parameter difference between graphed and eager training from the same weights;
* evaluation episodes/s (online protocol, no gradients, 1,000 episodes in batches of 100): CPU
  (fewer episodes), CUDA eager and CUDA graphed.

Each model runs in its own process with its own time limit, and every measurement in its own
``try``: a failure is printed and recorded, and the run goes on. Prints a Markdown table with the
card's name and writes ``bench_gpu.json`` to ``--out``.

    timeout 300 python benchmarks/bench_gpu.py --out results/gpu     # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --smoke              # the control flow, anywhere
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import torch  # noqa: E402

from bench_train import HYPERPARAMETERS, IMAGE_SIZE, WAYS, random_batches  # noqa: E402
from fewshot_mem.cuda_graphs import GraphedInference, TrainingStep  # noqa: E402
from fewshot_mem.models.learner import TaskSpec  # noqa: E402
from fewshot_mem.models.registry import create  # noqa: E402

MODELS = ("mann", "ntm", "dnc", "lstm")
BATCH, EVAL_BATCH = 16, 100
LEARNING_RATE, CLIP = 1e-3, 10.0
RECORD = "@@ "  # a worker's result lines start with this, then JSON


def say(*parts) -> None:
    print(*parts, flush=True)


def record(**fields) -> None:
    say(RECORD + json.dumps(fields))


def rate(step, batches, steps: int, seconds: float, episodes: int, sync) -> float:
    """Episodes per second over at least one and at most ``steps`` calls, stopping after ``seconds``."""
    sync()
    start, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - start < seconds):
        step(batches[done % len(batches)])
        done += 1
    sync()
    return done * episodes / (time.perf_counter() - start)


def build(name: str, device: str):
    torch.manual_seed(0)
    return create(name, TaskSpec(WAYS, "one-hot", (1, IMAGE_SIZE, IMAGE_SIZE)), **HYPERPARAMETERS[name]).to(device)


def training_step(model, graph: bool) -> TrainingStep:
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, capturable=graph)
    return TrainingStep(model.loss, model.parameters(), optimizer, clip=CLIP, graph=graph)


def part(model: str, name: str, measure) -> None:
    """Runs one measurement; records its value, or its error, and goes on."""
    start = time.perf_counter()
    try:
        value = measure()
        record(model=model, part=name, value=value, seconds=round(time.perf_counter() - start, 1))
        say(f"[{model}] {name}: {value}  ({time.perf_counter() - start:.1f} s)")
    except Exception as error:  # noqa: BLE001 - report and continue with the next measurement
        traceback.print_exc()
        sys.stdout.flush()
        record(model=model, part=name, error=f"{type(error).__name__}: {str(error)[:300]}")


def worker(name: str, args) -> None:
    """Every measurement of one model, in this process."""
    torch.set_num_threads(1)
    device = args.device  # with --device cpu the device parts run on the CPU (the graphed ones fail: recorded)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    train_steps, seconds = (2, 1.0) if args.smoke else (30, 6.0)
    evaluated = 2 * BATCH if args.smoke else 1000
    train = random_batches(4, BATCH)
    evaluation = random_batches(1, EVAL_BATCH if not args.smoke else BATCH, seed=1) * (evaluated // EVAL_BATCH or 1)
    per_eval = evaluation[0].images.shape[0]

    def cpu_training():
        step = training_step(build(name, "cpu"), graph=False)
        step(train[0])  # warm-up
        return rate(step, train, 1 if args.smoke else 3, 1e9, BATCH, lambda: None)

    def cpu_evaluation():
        model = build(name, "cpu").eval()
        with torch.no_grad():
            return rate(model.online_logits, evaluation, 1, 1e9, per_eval, lambda: None)

    part(name, "cpu_train", cpu_training)
    part(name, "cpu_eval", cpu_evaluation)
    device_train = [b.to(device) for b in train]
    device_eval = [b.to(device) for b in evaluation]

    def device_training(graph: bool):
        def measure():
            step = training_step(build(name, device), graph)
            for batch in device_train:  # warm-up (and, graphed, capture)
                step(batch)
            return rate(step, device_train, train_steps, seconds, BATCH, sync)
        return measure

    def graphed_against_eager():
        """Largest |parameter difference| after 6 steps from the same weights on the same batches."""
        graphed, eager = build(name, device), build(name, device)
        steps = training_step(graphed, graph=True), training_step(eager, graph=False)
        for batch in device_train + device_train[:2]:
            for step in steps:
                step(batch)
        return max(float((a - b).abs().max()) for a, b in zip(graphed.parameters(), eager.parameters()))

    def device_evaluation(graph: bool):
        def measure():
            model = build(name, device).eval()
            with torch.no_grad():
                forward = GraphedInference(model.online_logits, device_eval[0], device) if graph else model.online_logits
                forward(device_eval[0])
                return rate(forward, device_eval, len(device_eval), 1e9, per_eval, sync)
        return measure

    part(name, "device_train_eager", device_training(graph=False))
    part(name, "device_train_graphed", device_training(graph=True))
    part(name, "graphed_vs_eager_max_difference", graphed_against_eager)
    part(name, "device_eval_eager", device_evaluation(graph=False))
    part(name, "device_eval_graphed", device_evaluation(graph=True))


def run_worker(name: str, args, limit: float) -> dict:
    """One model's measurements in a child process, killed after ``limit`` seconds."""
    command = [sys.executable, __file__, "--worker", name, "--device", args.device] + (["--smoke"] if args.smoke else [])
    say(f"\n== {name} (at most {limit:.0f} s)")
    results: dict = {}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    timer = threading.Timer(limit, child.kill)
    timer.start()
    try:
        for line in child.stdout:
            if line.startswith(RECORD):
                entry = json.loads(line[len(RECORD):])
                results[entry.pop("part")] = entry
            else:
                print(f"   {line}", end="", flush=True)
        child.wait()
    finally:
        timer.cancel()
    if child.returncode:
        results["exit"] = {"error": f"worker exited with {child.returncode}"
                           + (" (killed at the time limit)" if child.returncode < 0 else "")}
        say(f"[{name}] {results['exit']['error']}")
    return results


def environment(device: str) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor()
            or platform.machine(), "device": device, "float32_matmul_precision": torch.get_float32_matmul_precision()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device == "cuda":
        try:
            info.update(card=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
        except Exception as error:  # noqa: BLE001
            info["card"] = f"unknown ({error})"
    return info


def cell(results: dict, key: str, digits: int = 0) -> str:
    entry = results.get(key, {})
    if "value" in entry:
        return f"{entry['value']:,.{digits}f}" if digits >= 0 else f"{entry['value']:.1e}"
    return "failed" if "error" in entry else "-"


def ratio(results: dict, top: str, bottom: str) -> str:
    try:
        return f"{results[top]['value'] / results[bottom]['value']:.1f}x"
    except (KeyError, ZeroDivisionError):
        return "-"


def table(all_results: dict, info: dict) -> str:
    d = info["device"].upper()
    lines = [f"Card: {info.get('card', 'none')} (CUDA {info.get('cuda', '-')}), torch {info['torch']}; CPU: "
             f"{info['cpu']}, 1 thread. Episodes/s at batch {BATCH} x 50 steps (training) and {EVAL_BATCH} "
             "(evaluation), random weights and images.", "",
             f"| model | train CPU | train {d} eager | train {d} graphed | graphed/eager | graphed/CPU "
             f"| graphed-eager max diff | eval CPU | eval {d} eager | eval {d} graphed | eval graphed/CPU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in all_results.items():
        lines.append(f"| {name} | {cell(r, 'cpu_train', 1)} | {cell(r, 'device_train_eager')} | "
                     f"{cell(r, 'device_train_graphed')} | {ratio(r, 'device_train_graphed', 'device_train_eager')} | "
                     f"{ratio(r, 'device_train_graphed', 'cpu_train')} | {cell(r, 'graphed_vs_eager_max_difference', -1)} | "
                     f"{cell(r, 'cpu_eval')} | {cell(r, 'device_eval_eager')} | {cell(r, 'device_eval_graphed')} | "
                     f"{ratio(r, 'device_eval_graphed', 'cpu_eval')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default=".", help="folder for bench_gpu.json")
    parser.add_argument("--budget", type=float, default=270, help="seconds for all models together")
    parser.add_argument("--smoke", action="store_true", help="a step or two of everything: checks the script")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto":
        from fewshot_mem.device import resolve_device
        args.device = resolve_device("auto")
    if args.worker:
        worker(args.worker, args)
        return 0
    models = [m for m in args.models.split(",") if m]
    info = environment(args.device)
    say(f"bench_gpu: {json.dumps(info)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, all_results = time.perf_counter(), {}
    for index, name in enumerate(models):
        left = args.budget - (time.perf_counter() - start)
        all_results[name] = run_worker(name, args, max(10.0, left / (len(models) - index)))
        text = table(all_results, info)  # written after every model, so a run cut short still leaves its figures
        (out / "bench_gpu.json").write_text(json.dumps({"environment": info, "results": all_results}, indent=1))
        (out / "bench_gpu.md").write_text(text + "\n")
    say("\n" + text)
    say(f"\nwrote {out / 'bench_gpu.json'} and {out / 'bench_gpu.md'} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
