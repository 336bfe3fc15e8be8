"""The bench CLI end to end at the smoke budget, and its answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fewshot_mem.bench import main
from fewshot_mem.budgets import recipe
from fewshot_mem.suites import SUITES, get_suite, UnknownSuiteError
from fewshot_mem.train import TrainConfig


def test_smoke_run_trains_evaluates_reports_and_reuses(omniglot_root, tmp_path, capsys):
    args = ["--suite", "omniglot-5way", "--models", "lstm,protonet", "--budget", "smoke", "--data-root",
            str(omniglot_root), "--out", str(tmp_path), "--quiet", "--test-episodes", "20"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "online protocol" in first and "episodic protocol" in first and "5-way-1-shot" in first
    assert "accuracy (%) by lag" in first and "lag-accuracy-smoke-seed0.png" in first
    results = sorted((tmp_path / "omniglot-5way@1" / "results").glob("*.json"))
    assert [p.name for p in results] == ["lstm-smoke-seed0.json", "protonet-smoke-seed0.json"]
    lstm = json.loads(results[0].read_text())
    assert lstm["suite"] == "omniglot-5way@1" and lstm["budget"] == "smoke"
    assert len(lstm["tables"]["online"]["per_episode"]["instance_2"]) == 20
    assert set(lstm["tables"]) == {"online", "5-way-1-shot", "5-way-5-shot"}  # the lag sits beside them
    assert len(lstm["forgetting"]["online-lag"]["per_episode"]["lag_1"]) == 20
    assert list((tmp_path / "omniglot-5way@1").glob("*.png"))
    assert main(args) == 0  # second run: checkpoints reused, identical numbers
    second = capsys.readouterr().out
    assert "reusing the finished run" in second
    assert json.loads(results[0].read_text())["tables"] == lstm["tables"]
    assert first.split("\n\n", 1)[1].split("suite ")[0] == second.split("\n\n", 1)[1].split("suite ")[0]


@pytest.mark.parametrize("argument, complaint", [
    (["--suite", "omniglot-7way"], "available: omniglot-5way@1"),
    (["--models", "transformer"], "unknown model 'transformer'"),
    (["--suite", "miniimagenet-5way-1shot"], "mini"),
    (["--models", "protonet", "--set", "learning_rat=0.1"], "learning_rat: not a training setting"),
    (["--models", "protonet", "--set", "steps"], "write key=value"),
])
def test_bad_input_exits_non_zero_with_a_message(argument, complaint, tmp_path, capsys, omniglot_root):
    assert main(argument + ["--out", str(tmp_path), "--data-root", str(omniglot_root), "--quiet"]) == 2
    assert complaint in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_set_overrides_the_recipe_and_records_a_custom_budget(omniglot_root, tmp_path, capsys):
    """--set changes training settings and model hyper-parameters; the result says so (budget
    "custom", the overrides), in a run folder of its own, and papers' command reproduces it."""
    from fewshot_mem.papers import command

    assert main(["--suite", "omniglot-5way-1shot", "--models", "protonet", "--budget", "smoke", "--set",
                 "learning_rate=0.01", "--set", "steps=3", "--set", "hidden_size=8", "--data-root",
                 str(omniglot_root), "--out", str(tmp_path), "--quiet", "--test-episodes", "5"]) == 0
    (path,) = (tmp_path / "omniglot-5way-1shot@2" / "results").glob("*.json")
    result = json.loads(path.read_text())
    assert path.name.startswith("protonet-custom-") and path.name.endswith("-seed0.json")
    assert result["budget"] == "custom" and result["overrides"] == {"learning_rate": 0.01, "steps": 3,
                                                                    "hidden_size": 8}
    assert result["training"]["learning_rate"] == 0.01 and result["trained_steps"] == 3
    assert result["hyperparameters"]["hidden_size"] == 8 and result["training"]["budget"] == "smoke"
    assert "--budget smoke --set learning_rate=0.01 --set steps=3 --set hidden_size=8" in command(result)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_missing_data_says_how_to_get_it(tmp_path, capsys, processes):
    """Also on several processes: the run checks the data before it launches any (one message)."""
    empty = tmp_path / "empty"
    assert main(["--models", "lstm", "--data-root", str(empty), "--out", str(tmp_path / "out"), "--quiet",
                 "--no-download", "--processes", processes]) == 2
    assert capsys.readouterr().err.count("images_background.zip") >= 1
    assert not (tmp_path / "out").exists()


def test_suites_have_versions_and_resolve_by_id():
    for suite in SUITES.values():
        assert get_suite(suite.id) is suite and get_suite(suite.name) is suite
    with pytest.raises(UnknownSuiteError):
        get_suite("omniglot-5way@99")


def test_table_2_follows_the_papers_episode_length_and_keeps_its_first_version():
    """omniglot-15way-strings@2 has the paper's 100-step episodes (its name alone gives it); @1,
    15 x 10 = 150 steps, still resolves by its id, since entries were measured on it."""
    current, first = get_suite("omniglot-15way-strings"), get_suite("omniglot-15way-strings@1")
    assert current.id == "omniglot-15way-strings@2" and current.episode_length == 100
    assert (first.version, first.episode_length, first.ways * first.instances_per_class) == (1, None, 150)
    assert "episode_length" not in first.definition() and current.definition()["episode_length"] == 100
    assert first.definition() == {k: v for k, v in current.definition().items() if k != "episode_length"} | {
        "version": 1, "title": first.title, "instances_per_class": 10}


def test_budgets_are_counted_in_steps_and_long_is_gone():
    config = TrainConfig.of_steps("x", steps=7, batch_size=3)
    assert (config.steps, config.episodes) == (7, 21)
    with pytest.raises(ValueError, match="unknown budget"):
        recipe("mann", get_suite("omniglot-5way"), "long")


def test_the_maml_and_protonet_suites_are_episodic_only():
    for name in ("omniglot-5way-1shot", "omniglot-5way-5shot", "omniglot-20way-1shot", "omniglot-20way-5shot"):
        suite = get_suite(name)
        assert suite.protocols == ("episodic",) and suite.version == 2
        with pytest.raises(UnknownSuiteError):
            get_suite(f"{name}@1")


def test_the_default_run_evaluates_reference_weights_and_checks_them_against_their_entry(
        omniglot_root, tmp_path, capsys):
    """Without --budget the bench trains nothing where the board has weights: it re-evaluates them
    through verify, says which entry and budget each row comes from, and exits 1 when the weights
    no longer give the entry's per-episode results (tampered weights make it fail)."""
    from fewshot_mem.leaderboard import main as leaderboard_main

    common = ["--suite", "omniglot-5way", "--data-root", str(omniglot_root), "--quiet"]
    assert main([*common, "--models", "lstm", "--budget", "smoke", "--out", str(tmp_path / "train")]) == 0
    board = tmp_path / "board"
    (result,) = (tmp_path / "train" / "omniglot-5way@1" / "results").glob("lstm-*.json")
    assert leaderboard_main(["submit", str(result), "--name", "lstm-smoke", "--submitter", "tests",
                             "--root", str(board), "--data-root", str(omniglot_root)]) == 0
    capsys.readouterr()

    out = tmp_path / "reference"
    assert main([*common, "--models", "lstm", "--leaderboard", str(board), "--out", str(tmp_path / "explicit"),
                 "--budget", "smoke"]) == 0  # an explicit budget trains, whatever the board has
    assert "0 of 1 models from reference weights" in capsys.readouterr().out
    assert main([*common, "--models", "lstm", "--out", str(tmp_path / "train"), "--budget", "smoke",
                 "--eval-only"]) == 0
    assert "lstm: evaluates the best checkpoint of its smoke run" in capsys.readouterr().out  # not "trains"

    assert main([*common, "--models", "lstm", "--leaderboard", str(board), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    first = printed.splitlines()[0]
    assert first.startswith("omniglot-5way@1: expected duration about") and "1 of 1 models" in first
    assert "reference weights omniglot-5way@1/lstm-smoke (smoke: 4 steps × 8 = 32 episodes" in printed
    assert "equal to the entry omniglot-5way@1/lstm-smoke" in printed
    entry = json.loads((board / "entries" / "omniglot-5way@1" / "lstm-smoke.json").read_text())
    measured = json.loads((out / "omniglot-5way@1" / "results" / "lstm-reference.json").read_text())
    assert measured["tables"] == entry["result"]["tables"]
    assert not (out / "omniglot-5way@1" / "lstm").exists()  # nothing was trained
    spread = tmp_path / "spread"  # the same run on two processes: the same tables, bit for bit
    spread_run = [*common, "--models", "lstm", "--leaderboard", str(board), "--out", str(spread), "--processes", "2"]
    assert main(spread_run) == 0
    spread_result = json.loads((spread / "omniglot-5way@1" / "results" / "lstm-reference.json").read_text())
    assert spread_result["tables"] == entry["result"]["tables"] and spread_result["evaluated_on"]["processes"] == 2

    weights = board / entry["checkpoint"]["path"]
    state = torch.load(weights, weights_only=True)
    state = {name: value + 0.5 if value.is_floating_point() else value for name, value in state.items()}
    torch.save(state, weights)
    assert main([*common, "--models", "lstm", "--leaderboard", str(board), "--out", str(out)]) == 1
    assert main(spread_run) == 1


def test_processes_auto_spreads_only_a_default_run_on_cpu(omniglot_root, tmp_path, monkeypatch):
    """--processes auto: one process a core for a run that only evaluates reference weights on CPU;
    one process when anything trains, a model has no reference weights, or a launcher started us."""
    import fewshot_mem.bench as bench

    monkeypatch.setattr(bench.distributed, "available_cores", lambda: 4)
    monkeypatch.setattr(bench, "references", lambda board, suite, models: {m: ("entry" if m == "lstm" else None)
                                                                          for m in models})
    suite = get_suite("omniglot-5way")

    def processes(*arguments: str, models=("lstm",)) -> int:
        return bench.processes_for(bench.parse_args(["--processes", "auto", *arguments]), suite, list(models))

    assert processes() == 4
    assert processes("--budget", "smoke") == processes("--eval-only") == processes("--train") == 1
    assert processes(models=("lstm", "mann")) == 1
    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "localhost"), monkeypatch.setenv("MASTER_PORT", "1")
    assert processes() == 1


def test_the_default_run_refuses_test_episodes_without_training(omniglot_root, tmp_path, capsys):
    assert main(["--suite", "omniglot-5way", "--models", "lstm", "--data-root", str(omniglot_root),
                 "--leaderboard", str(tmp_path), "--test-episodes", "5", "--quiet"]) == 2
    assert "--test-episodes applies to training runs" in capsys.readouterr().err


def test_the_expected_duration_takes_a_references_last_verification_time_over_its_bench_run():
    """A verification records how long re-evaluating took with the code as it is now; an entry's
    own bench run may be older and slower (MAML's online table before it skipped unread steps)."""
    from fewshot_mem.reference import Reference, expected_seconds

    plan = {"maml": Reference(Path("maml.json"), {"result": {"eval_seconds": 3000.0},
                                                  "verification": {"seconds": 500.0}}),
            "lstm": Reference(Path("lstm.json"), {"result": {"eval_seconds": 3.0}, "verification": None})}
    assert expected_seconds(plan, [], "quick") == 503.0
    assert expected_seconds(plan, [], "quick", processes=2) == 251.5  # each process scores half the episodes


def test_compile_steps_trains_compiled_evaluates_eager_and_says_so(omniglot_root, tmp_path, monkeypatch):
    """--compile-steps: the memory models train with compiled steps (here the compiler is the
    identity, so the weights must equal an eager run's), evaluate eager, and the log and the
    result record from which step training was compiled."""
    import fewshot_mem.bench as bench
    from fewshot_mem.models import fused_steps, memory_learner

    monkeypatch.setattr(fused_steps, "compiled", lambda function: function)
    monkeypatch.setattr(memory_learner, "compiled", lambda function: function)
    seen_while_evaluating = []
    evaluate_on_suite = bench.evaluate_on_suite

    def spy(learner, *args, **kwargs):
        seen_while_evaluating.append(learner.compiled_steps)
        return evaluate_on_suite(learner, *args, **kwargs)

    monkeypatch.setattr(bench, "evaluate_on_suite", spy)
    common = ["--suite", "omniglot-5way", "--models", "mann", "--budget", "smoke", "--data-root", str(omniglot_root),
              "--quiet", "--test-episodes", "10"]
    assert main([*common, "--out", str(tmp_path / "eager")]) == 0
    assert main([*common, "--out", str(tmp_path / "compiled"), "--compile-steps"]) == 0
    assert seen_while_evaluating == [False, False]
    eager, compiled = (json.loads((tmp_path / run / "omniglot-5way@1" / "results" / "mann-smoke-seed0.json")
                                  .read_text()) for run in ("eager", "compiled"))
    assert compiled["tables"] == eager["tables"]
    assert "training_compiled_from_step" not in eager
    log = tmp_path / "compiled" / "omniglot-5way@1" / "mann" / "smoke-seed0" / "metrics.jsonl"
    trained = [json.loads(line) for line in log.read_text().splitlines() if "loss" in line]
    assert trained and all(record["compiled_steps"] for record in trained)
    assert compiled["training_compiled_from_step"] == trained[0]["step"]
    assert compiled["training_sessions"] == [{"from_step": 0, "git_commit": compiled["git_commit"], "processes": 1,
                                              "cpu_threads": torch.get_num_threads()}]


def test_an_interrupt_exits_130_and_says_how_to_continue(omniglot_root, tmp_path, monkeypatch, capsys):
    import fewshot_mem.bench as bench

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "fit", interrupted)
    assert main(["--models", "lstm", "--budget", "smoke", "--data-root", str(omniglot_root), "--out", str(tmp_path),
                 "--quiet"]) == bench.INTERRUPTED == 130
    assert "--resume" in capsys.readouterr().err


def test_compile_steps_without_a_working_compiler_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import fewshot_mem.bench as bench

    monkeypatch.setattr(bench, "compiler_problem", lambda: "InvalidCxxCompiler: no working C++ compiler found")
    assert main(["--models", "mann", "--budget", "smoke", "--out", str(tmp_path / "out"), "--compile-steps"]) == 2
    assert "no working C++ compiler" in capsys.readouterr().err and not (tmp_path / "out").exists()
