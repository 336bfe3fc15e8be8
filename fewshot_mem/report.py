"""Results as people read them: terminal and Markdown tables, JSON files, and plots."""

from __future__ import annotations

import json
from pathlib import Path

from .evaluate import INSTANCE_POSITIONS, LAG_KEYS
from .paths import write_atomically
from .results import ONLINE_TABLE, format_estimate, instance_key, instance_position

ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def ordinal(n: int) -> str:
    return ORDINALS.get(n, f"{n}th")


def online_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["model"] + [ordinal(p) for p in INSTANCE_POSITIONS]
    rows = []
    for result in results:
        online = result["tables"].get(ONLINE_TABLE)
        if online is None:
            continue
        estimates = online["estimates"]
        rows.append([result["model"]] + [format_estimate(estimates.get(instance_key(p))) for p in INSTANCE_POSITIONS])
    return header, rows


def lag_table(result: dict) -> dict | None:
    """A result's accuracy by lag (``evaluate.evaluate_online_tables``), None where it has none."""
    return result.get("forgetting", {}).get("online-lag")


def lag_label(key: str) -> str:
    return key.removeprefix("lag_")


def lag_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Online accuracy by lag, one row per model with a lag table; the buckets any of them has."""
    tables = [(r["model"], lag_table(r)) for r in results if lag_table(r)]
    keys = [k for k in LAG_KEYS if any(k in t["estimates"] for _, t in tables)]
    rows = [[model] + [format_estimate(t["estimates"].get(k)) for k in keys] for model, t in tables]
    return ["model"] + [lag_label(k) for k in keys], rows


def episodic_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    tables = sorted({name for r in results for name in r["tables"] if name != ONLINE_TABLE})
    rows = [[r["model"]] + [format_estimate(r["tables"][t]["estimates"][t]) if t in r["tables"] else "–" for t in tables]
            for r in results if any(t in r["tables"] for t in tables)]
    return ["model"] + tables, rows


def terminal_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render(results: list[dict], markdown: bool = False) -> str:
    """Both tables of a suite's results, as text or Markdown, accuracies in % ± 95% CI."""
    table = markdown_table if markdown else terminal_table
    parts = []
    suite = results[0]["suite"] if results else "?"
    header, rows = online_rows(results)
    if rows:
        parts.append(f"{suite}: online protocol, accuracy (%) by instance position, ± 95% CI\n\n" + table(header, rows))
    header, rows = lag_rows(results)
    if rows:
        parts.append(f"{suite}: online protocol, accuracy (%) by lag (steps since the class was last shown; "
                     "first appearances left out), ± 95% CI\n\n" + table(header, rows))
    header, rows = episodic_rows(results)
    if rows:
        parts.append(f"{suite}: episodic protocol, query accuracy (%), ± 95% CI\n\n" + table(header, rows))
    return "\n\n".join(parts)


def duration(seconds: float | None) -> str:
    """Seconds as people say them: "42 s", "17 min", "3.1 h"."""
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def training_time(result: dict) -> str:
    """A result's wall-clock training time, and beside it the training processes' CPU time where the
    result records one ("3.6 h (3.4 h CPU)"): the wall clock also counts the time a run stood paused
    or shared its core."""
    wall, cpu = duration(result.get("train_seconds")), result.get("train_cpu_seconds")
    return wall if cpu is None or wall == "–" else f"{wall} ({duration(cpu)} CPU)"


def training_hardware(result: dict) -> str:
    """Where a result's weights were trained, over its training sessions: their GPUs ("4 × NVIDIA
    H200" for four ranks), else the CPU model (or architecture) and the threads of all ranks ("AMD
    EPYC, 1–2 threads" for a run resumed on two processes). A result without sessions (older logs,
    weights trained elsewhere) gives the session that scored it."""
    scored_on = result["hardware"]
    sessions = [_as_logged_now(session, scored_on) for session in result.get("training_sessions") or [scored_on]]
    gpus = sorted({_ranks(session["processes"], session["gpu"]) for session in sessions if session["gpu"]})
    threads = [session["cpu_threads"] * session["processes"] for session in sessions if not session["gpu"]]
    cpu = scored_on.get("cpu_model") or f"{scored_on['processor']} CPU"
    on_cpu = f"{cpu}, {_count(threads)} thread{'s' * (max(threads) != 1)}" if threads else ""
    return " and ".join(filter(None, [", ".join(gpus), on_cpu]))


def _as_logged_now(session: dict, scored_on: dict) -> dict:
    """A session record with its processes, threads and GPU; one logged before sessions said their
    threads and GPU counts the scoring session's."""
    if "cpu_threads" not in session:
        session = {**session, "cpu_threads": scored_on["cpu_threads"], "gpu": scored_on.get("gpu")}
    return {"processes": 1, "gpu": None, **session}


def _ranks(processes: int, gpu: str) -> str:
    return gpu if processes == 1 else f"{processes} × {gpu}"


def _count(numbers: list[int]) -> str:
    """The one number ("2"), or the range where they differ ("1–2")."""
    fewest, most = min(numbers), max(numbers)
    return f"{fewest}" if fewest == most else f"{fewest}–{most}"


def budget_text(result: dict) -> str:
    """A result's training budget in optimizer steps and episodes, and how much of it ran:
    "paper: 100,000 steps × 16 = 1,600,000 episodes" ("62,500 of 100,000 steps × 16 ..." when cut short)."""
    training = result.get("training")
    if not training:
        return f"{result['budget']}: trained outside the bench"
    batch = training["batch_size"]
    planned = -(-training["episodes"] // batch)
    trained = result.get("trained_steps") or planned
    steps = f"{trained:,} of {planned:,}" if trained < planned else f"{planned:,}"
    return f"{result['budget']}: {steps} steps × {batch} = {trained * batch:,} episodes"


def write_json(result: dict, path: Path) -> Path:
    write_atomically(json.dumps(result, indent=1).encode(), path)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    write_atomically(lambda handle: figure.savefig(handle, format=path.suffix.lstrip(".") or "png"), path)
    figure.clf()
    return path


def plot_learning_curves(curves: dict[str, list[tuple[int, float]]], ylabel: str, title: str,
                         path: Path) -> Path | None:
    """Validation accuracy against training episodes (log scale), one line per run; None if no curves."""
    if not curves:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 4.2 + 0.17 * len(curves)), dpi=120)  # room for the legend below
    for label, points in curves.items():
        episodes, accuracy = zip(*points)
        axes.plot(episodes, [100 * a for a in accuracy], marker="." if len(points) > 1 else "o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("training episodes")
    axes.set_ylabel(f"{ylabel} (%)")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3, which="both")
    axes.set_title(title, fontsize=9)
    # Below the axes, where it covers no curve whatever their shape.
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_instance_accuracy(results: list[dict], path: Path) -> Path | None:
    """Accuracy against instance position, one line per model, with 95% CI bands."""
    curves = []
    for result in results:
        online = result["tables"].get(ONLINE_TABLE)
        if online:
            positions = sorted(instance_position(k) for k in online["estimates"])
            curves.append((result["model"], positions, [online["estimates"][instance_key(p)] for p in positions]))
    return _plot_accuracy(curves, "instance (n-th appearance of the class in the episode)",
                          sorted({p for _, ps, _ in curves for p in ps}), results, path)


def plot_lag_accuracy(results: list[dict], path: Path) -> Path | None:
    """Accuracy against lag bucket (steps since the class was last shown), one line per model."""
    keys = [k for k in LAG_KEYS if any(k in (lag_table(r) or {}).get("estimates", {}) for r in results)]
    curves = []
    for result in results:
        table = lag_table(result)
        if table:
            shown = [i for i, k in enumerate(keys) if k in table["estimates"]]
            curves.append((result["model"], shown, [table["estimates"][keys[i]] for i in shown]))
    return _plot_accuracy(curves, "lag (steps since the class was last shown)", list(range(len(keys))), results,
                          path, [lag_label(k) for k in keys])


def _plot_accuracy(curves: list[tuple[str, list[int], list[dict]]], xlabel: str, ticks: list[int],
                   results: list[dict], path: Path, tick_labels: list[str] | None = None) -> Path | None:
    """(model, x positions, estimates) curves with 95% CI bands, as the online protocol's plots draw them."""
    if not curves:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for model, xs, estimates in curves:
        means = [e["mean"] * 100 for e in estimates]
        cis = [e["ci95"] * 100 for e in estimates]
        axes.plot(xs, means, marker="o", label=model)
        axes.fill_between(xs, [m - c for m, c in zip(means, cis)], [m + c for m, c in zip(means, cis)], alpha=0.2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("accuracy (%)")
    axes.set_xticks(ticks, tick_labels)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.set_title(f"{results[0]['suite']}: online protocol")
    axes.legend(loc="center right")
    path = _save(figure, path)
    plt.close(figure)
    return path
