"""Every script under benchmarks/ imports: a script is run by hand, rarely, so a name it imports
that moved or went away would otherwise only show when someone needs its figures."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_each_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts import their siblings (bench_gpu: bench_train)
    module = runpy.run_path(str(script), run_name="benchmark_import_check")  # not __main__: nothing runs
    assert callable(module.get("main")) or "__main__" not in script.read_text(), f"{script.name}: no main()"
    for name in [name for name in sys.modules if name.startswith("bench_")]:
        sys.modules.pop(name)  # what a script imported from its siblings stays its own


def test_accuracy_by_step_counts_every_prediction_at_the_position_once(omniglot_root, monkeypatch):
    """The bins of benchmarks/accuracy_by_step.py hold every 2nd-instance prediction of the episodes
    once (5 a Table 1 episode), and pooled over the bins they give the evaluator's accuracy at the
    2nd instance for the same weights and episodes (fixed counts: pooled = mean over episodes)."""
    import torch

    from fewshot_mem.evaluate import evaluate_online
    from fewshot_mem.models.registry import create
    from fewshot_mem.suites import cached_pools, get_suite

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from accuracy_by_step import accuracy_by_step

    torch.manual_seed(0)
    suite = get_suite("omniglot-5way@1")
    learner = create("lstm", suite.task(), controller_size=16).eval()
    sampler = suite.validation_sampler(cached_pools(suite, omniglot_root)["val"], "online")
    rows = accuracy_by_step(learner, sampler, episodes=12, position=2, width=7, batch_size=5)
    assert [(first, last) for first, last, _, _ in rows][:2] == [(1, 7), (8, 14)] and rows[-1][1] == 50
    assert sum(shown for _, _, shown, _ in rows) == 12 * 5
    expected = evaluate_online(learner, sampler, 12, batch_size=5).estimates["instance_2"].mean
    assert sum(right for *_, right in rows) / 60 == pytest.approx(expected)


def test_the_largest_read_weight_is_mann_s_own_read_weights_at_each_step(omniglot_root, monkeypatch):
    """``--read-weights``: per bin, the mean over heads and episodes of max_i w^r_t(i), as MANN's
    state after each step holds it; between 1/N (a uniform read) and 1."""
    import torch

    from fewshot_mem.models.registry import create
    from fewshot_mem.suites import cached_pools, get_suite

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from accuracy_by_step import largest_read_weight_by_step

    torch.manual_seed(0)
    suite = get_suite("omniglot-5way@1")
    learner = create("mann", suite.task(), controller_size=8, memory_slots=6, memory_width=3, read_heads=2).eval()
    sampler = suite.validation_sampler(cached_pools(suite, omniglot_root)["val"], "online")
    bins = largest_read_weight_by_step(learner, sampler, episodes=3, width=25)
    batch = sampler.batch(range(3))
    with torch.no_grad():
        features = learner.encode(batch.images).float()
        state, largest = learner.initial_state(3, features), []
        for t in range(50):
            _, state = learner.step(features[:, t], batch.previous_codes[:, t].float(), state)
            largest.append(learner.read_weights(state).amax(-1).mean().item())
    assert bins == pytest.approx([sum(largest[:25]) / 25, sum(largest[25:]) / 25])
    assert all(1 / 6 <= value <= 1 for value in bins)


def test_plot_runs_prints_each_runs_validation_at_the_same_steps_and_draws_them(tmp_path, monkeypatch, capsys):
    """benchmarks/plot_runs.py: one column a run, a row per multiple of --every that some run
    validated at ("–" where that run did not), the values of --statistic in %, and the plot;
    a folder without metrics.jsonl is bad input (exit 2)."""
    import json

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from plot_runs import main

    for name, records in (("a", [(500, 0.1), (1000, 0.25)]), ("b", [(1000, 0.5), (2000, 0.625)])):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"step": step, "episodes": 16 * step, "validation_score": 0.0,
                             "validation_instance_2": value}) for step, value in records]
        lines.insert(1, json.dumps({"step": 700, "episodes": 11200, "loss": 1.0}))  # a training record
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    plot = tmp_path / "curves.png"
    assert main([f"first={tmp_path / 'a'}", f"second={tmp_path / 'b'}", "--out", str(plot), "--every", "1000"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["step", "first", "second"]
    assert rows[1:3] == [["1,000", "25.0", "50.0"], ["2,000", "–", "62.5"]]
    assert plot.is_file() and plot.stat().st_size > 0
    assert main([f"third={tmp_path}", "--out", str(plot)]) == 2


def test_a_revision_imports_beside_the_checkout_and_computes_the_same_function(monkeypatch):
    """benchmarks/revision.py: HEAD's package, unpacked under its own name, is a separate package
    (its classes are not the checkout's), and bench_train's --before step built from it with the
    checkout's weights gives the checkout's logits bit for bit (HEAD has the same models)."""
    import torch

    from fewshot_mem.models.mann import MANN
    from fewshot_mem.models.registry import create

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_train import HYPERPARAMETERS, IMAGE_SIZE, WAYS, TaskSpec, before_step
    from revision import counterpart, import_revision

    package = import_revision("HEAD")
    assert package.startswith("fewshot_mem_") and package in sys.modules
    theirs = counterpart(MANN, package)
    assert theirs.__name__ == "MANN" and theirs is not MANN and theirs.__module__ == f"{package}.models.mann"
    torch.manual_seed(0)
    library = create("mann", TaskSpec(WAYS, "one-hot", (1, IMAGE_SIZE, IMAGE_SIZE)), **HYPERPARAMETERS["mann"])
    _, same = before_step(library, "mann", package)
    unchanged = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "fewshot_mem"], cwd=BENCHMARKS.parent).returncode
    assert same == "bit-identical" or unchanged != 0  # a working tree's change to the package may change the bits


def test_paired_ratios_pair_each_repetition(monkeypatch):
    """bench_train's --before ratio within each repetition: new over old rep by rep, never the
    ratio of two medians (a slow drift of the machine cancels within a repetition)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_train import paired_ratios

    samples = {"compiled": [2.0, 8.0, 3.0], "before compiled": [1.0, 8.0, 1.0]}  # ratios 2, 1, 3
    assert paired_ratios(samples, "compiled", "before compiled") == "2.00x (1.00-3.00 over 3)"
