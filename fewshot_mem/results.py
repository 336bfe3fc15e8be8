"""The results record: what one model scored on one suite, as the bench, ``fewshot_mem.evaluate``
and the leaderboard read and write it (``fewshot-mem-result/1`` JSON).

This module owns the record's format string, its table keys ("online" with ``instance_{p}``
estimates; ``{N}-way-{K}-shot``), how an estimate is printed ("mean ± CI" in %), the builder,
where a run's results go (``<out>/<suite id>/results/<model>-<label>.json``), writing and
reading them, and the learning curve taken from a run's log. Fields may be added to the
record, never renamed: boards hold results written by every earlier version.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from . import __version__, distributed
from .metrics_log import read_metrics
from .paths import write_atomically
from .recipes import TrainConfig

RESULT_FORMAT = "fewshot-mem-result/1"
ONLINE_TABLE = "online"
CUSTOM_BUDGET = "custom"  # the budget label of a recipe changed with --set, or trained outside the bench


def instance_key(position: int) -> str:
    """The online estimate at the ``position``-th appearance of a class: "instance_2"."""
    return f"instance_{position}"


def instance_position(key: str) -> int:
    """The position an online estimate's key names: "instance_2" -> 2."""
    return int(key.split("_")[1])


def episodic_key(ways: int, shots: int) -> str:
    """The episodic table (and its one estimate) of N-way K-shot episodes: "5-way-1-shot"."""
    return f"{ways}-way-{shots}-shot"


def format_estimate(estimate: Mapping[str, float] | Any | None) -> str:
    """An accuracy estimate as the tables print it, in %: "93.1 ± 0.4" (mean ± 95% CI half-width);
    "–" for none. Takes a record's ``{"mean", "ci95"}`` or anything with those attributes."""
    if estimate is None:
        return "–"
    mean, ci95 = (estimate["mean"], estimate["ci95"]) if isinstance(estimate, Mapping) else \
        (estimate.mean, estimate.ci95)
    return f"{100 * mean:.1f} ± {100 * ci95:.1f}"


def results_dir(out: str | Path, suite_id: str) -> Path:
    """Where the bench writes a suite's results JSONs under its ``--out`` folder."""
    return Path(out) / suite_id / "results"


def result_path(out: str | Path, suite_id: str, model: str, label: str) -> Path:
    """One run's results JSON: ``<out>/<suite>/results/<model>-<label>.json`` (':' of a plug-in spec -> '_')."""
    return results_dir(out, suite_id) / f"{model.replace(':', '_')}-{label}.json"


def run_label(budget: str, seed: int) -> str:
    """The label of a bench training run, in its folder and results file names: "quick-seed0"."""
    return f"{budget}-seed{seed}"


EXPORTED_COMMIT = Path(__file__).resolve().parent / "COMMIT"  # filled in by `git archive` (export-subst)


def git_commit() -> str:
    """The commit of the code running: from git in a checkout, else from the ``COMMIT`` file that
    `git archive` fills in (an exported tree, such as a snapshot a long run trains from), else "unknown"."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        exported = EXPORTED_COMMIT.read_text().strip()
    except OSError:
        return "unknown"
    return exported if re.fullmatch(r"[0-9a-f]{40}", exported) else "unknown"


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
    """Where a result is computed: platform, CPU, threads, torch, device (and GPU), processes."""
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device, "processes": distributed.world_size()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def training_session(device: str) -> dict:
    """What a training run's log keeps of each session (start or resume), for the results record's
    ``training_sessions``: the commit of its code, its processes and their threads, and its GPU."""
    where = hardware(device)
    session = {"git_commit": git_commit(), "processes": where["processes"], "cpu_threads": where["cpu_threads"]}
    return session | ({"gpu": where["gpu"]} if "gpu" in where else {})


def build_result(*, suite_id: str, fingerprint: str, model: str, model_class: str, hyperparameters: dict,
                 tables: dict[str, dict], budget: str, seed: int, device: str, eval_seconds: float,
                 training: TrainConfig | None = None, training_protocol: str | None = None,
                 trained_steps: int | None = None, best_step: int | None = None,
                 train_seconds: float | None = None, checkpoint: str | None = None,
                 learning_curve: list[dict] | None = None, overrides: dict | None = None,
                 forgetting: dict | None = None, compiled_from_step: int | None = None,
                 training_sessions: list[dict] | None = None, train_cpu_seconds: float | None = None) -> dict:
    """The results record of ``model`` on a suite. ``training`` is the bench's recipe
    (None for a model trained elsewhere); ``overrides`` the ``--set`` changes to its recipe;
    ``forgetting`` the accuracy-by-lag table ("online-lag"), kept beside the suite's tables;
    ``compiled_from_step`` the first logged step trained with compiled steps (``--compile-steps``);
    ``training_sessions`` the commit each training session ran (``git_commit`` is the evaluating code's);
    ``train_cpu_seconds`` the training processes' CPU time, summed over sessions and ranks (None where a
    run began before it was kept)."""
    result = {
        "format": RESULT_FORMAT, "fewshot_mem_version": __version__, "suite": suite_id,
        "fingerprint": fingerprint, "model": model, "model_class": model_class,
        "hyperparameters": hyperparameters, "training": training and asdict(training),
        "training_protocol": training_protocol, "budget": budget, "seed": seed,
        "training_steps": training and training.steps, "training_episodes": training and training.episodes,
        "git_commit": git_commit(), "trained_steps": trained_steps, "best_step": best_step,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "hardware": hardware(device),
        "checkpoint": checkpoint, "learning_curve": learning_curve or [], "tables": tables,
    }
    if forgetting is not None:
        result["forgetting"] = forgetting
    if overrides:
        result["overrides"] = overrides
    if compiled_from_step is not None:
        result["training_compiled_from_step"] = compiled_from_step
    if train_cpu_seconds is not None:
        result["train_cpu_seconds"] = train_cpu_seconds
    if training_sessions:
        result["training_sessions"] = training_sessions
    return result


def trained_episodes(result: dict) -> int:
    """Training episodes a result's weights saw in the bench (0 for a model trained elsewhere:
    ``fewshot_mem.evaluate`` records no training)."""
    training = result.get("training")
    return (result.get("trained_steps") or 0) * training["batch_size"] if training else 0


def write_result(result: dict, path: str | Path) -> Path:
    """Writes a results record as JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    write_atomically(json.dumps(result, indent=1).encode(), path)
    return path


def read_result(path: str | Path) -> dict:
    """A results record from its JSON file."""
    return json.loads(Path(path).read_text())


def learning_curve(metrics: Path) -> list[dict]:
    """The validation records of a run's log: score (and per-instance accuracy) against episodes."""
    return training_log(metrics)["learning_curve"]


def training_log(metrics: Path) -> dict:
    """What a results record keeps of a run's log, read once: ``learning_curve`` (the validation
    records); ``compiled_from_step``, the first step trained with compiled steps
    (``--compile-steps``) or None, since a run resumed with and without it says so from that step
    on; and ``training_sessions``, the step each session started from and its code's commit
    (empty for logs written before sessions were logged)."""
    records = read_metrics(metrics)
    return {"learning_curve": [r for r in records if "validation_score" in r],
            "compiled_from_step": next((r["step"] for r in records if r.get("compiled_steps")), None),
            "training_sessions": [{"from_step": r["step"], **r["session"]} for r in records if "session" in r]}
