"""Training and evaluation through the one interface: both protocols for every sequence
model, MANN learning on real Omniglot, atomic checkpoints, kill-and-resume, NaN stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fewshot_mem import distributed
from fewshot_mem.checkpoints import load_checkpoint
from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.evaluate import evaluate_episodic, evaluate_online
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create
from fewshot_mem.results import git_commit, training_log
from fewshot_mem.train import TrainConfig, TrainingClock, TrainingDiverged, fit, is_complete

SMALL = {"mann": dict(controller_size=16, memory_slots=8, memory_width=4, read_heads=2),
         "ntm": dict(controller_size=16, memory_slots=8, memory_width=4, read_heads=2),
         "dnc": dict(controller_size=16, memory_slots=8, memory_width=4, read_heads=2),
         "lstm": dict(controller_size=16)}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("protocol", ["online", "episodic"])
def test_sequence_models_train_and_evaluate_under_both_protocols(name, protocol, tmp_path):
    pool = synthetic_pool(classes=10, instances=6)
    online = LabelOffsetSampler(pool, ways=3, instances_per_class=4)
    episodic = EpisodeSampler(pool, ways=3, shots=1, queries=2)
    sampler = online if protocol == "online" else episodic
    torch.manual_seed(0)
    learner = create(name, TaskSpec(3, image_shape=SMALL_IMAGE), **SMALL[name])
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    config = TrainConfig("smoke", episodes=16, batch_size=4, validate_every=2, validation_episodes=4)
    summary = fit(learner, sampler.batch, lambda m: evaluate_online(m, online, 4).estimates["instance_2"].mean,
                  config, tmp_path, progress=False)
    assert summary.steps == 4
    assert any(not torch.equal(before[k], v) for k, v in learner.state_dict().items())
    online_result = evaluate_online(learner, online, 6, batch_size=4)
    assert set(online_result.estimates) == {"instance_1", "instance_2", "instance_3", "instance_4"}
    assert len(online_result.per_episode["instance_2"]) == 6
    # The evaluator's per-episode accuracies are the learner's hit rates on those episodes' queries
    # (an accuracy in [0, 1], asserted before, held for any mis-scoring; this fails for one).
    episodic_result = evaluate_episodic(learner, episodic, 6, batch_size=4)
    batch = episodic.batch(range(6))
    with torch.no_grad():
        hits = learner.eval().episodic_logits(batch.inputs()).argmax(-1) == batch.query_labels  # (6, N·Q)
    assert episodic_result.per_episode["3-way-1-shot"] == pytest.approx(hits.double().mean(1).tolist())


def test_validation_figures_beyond_the_score_are_logged_for_the_learning_curve(tmp_path):
    pool = synthetic_pool(classes=10, instances=6)
    online = LabelOffsetSampler(pool, ways=3, instances_per_class=4)
    learner = create("lstm", TaskSpec(3, image_shape=SMALL_IMAGE), **SMALL["lstm"])
    calls = iter(range(100))

    def validate(_learner):
        call = next(calls)
        return {"score": float(call), "instance_2": call / 10}

    config = TrainConfig("smoke", episodes=12, batch_size=4, validate_every=1, validation_episodes=4)
    fit(learner, online.batch, validate, config, tmp_path, progress=False)
    curve = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    curve = [r for r in curve if "validation_score" in r]
    assert [(r["episodes"], r["validation_score"], r["validation_instance_2"]) for r in curve] == \
        [(4, 0.0, 0.0), (8, 1.0, 0.1), (12, 2.0, 0.2)]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 3  # the dict's "score" picks the best


def test_string_labels_log_the_share_of_characters_right_beside_all_five(tmp_path):
    online = LabelOffsetSampler(synthetic_pool(classes=10, instances=6), ways=3, instances_per_class=4,
                                encoding="string")
    learner = create("lstm", TaskSpec(3, label_encoding="string", image_shape=SMALL_IMAGE), **SMALL["lstm"])
    config = TrainConfig("smoke", episodes=8, batch_size=4, validate_every=2, validation_episodes=4, log_every=1)
    fit(learner, online.batch, lambda m: 0.0, config, tmp_path, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss" in r]
    assert len(steps) == 2 and all(r["character_accuracy"] >= r["accuracy"] for r in steps)
    assert all(r["character_accuracy"] > 0 for r in steps)  # about 1 in 5 characters right by chance


def test_confidence_intervals_follow_the_per_episode_accuracies():
    pool = synthetic_pool(classes=10, instances=6)
    learner = create("lstm", TaskSpec(3, image_shape=SMALL_IMAGE), controller_size=8)
    result = evaluate_online(learner, LabelOffsetSampler(pool, ways=3, instances_per_class=4), 30, batch_size=7)
    samples = np.array(result.per_episode["instance_1"])
    estimate = result.estimates["instance_1"]
    assert estimate.mean == pytest.approx(samples.mean())
    assert estimate.ci95 == pytest.approx(1.96 * samples.std(ddof=1) / np.sqrt(30))


def test_evaluation_is_identical_on_rerun_and_batch_size_free():
    pool = synthetic_pool(classes=10, instances=6)
    torch.manual_seed(0)
    learner = create("mann", TaskSpec(3, image_shape=SMALL_IMAGE), **SMALL["mann"])
    sampler = EpisodeSampler(pool, ways=3, shots=1, queries=2)
    first = evaluate_episodic(learner, sampler, 20, batch_size=20).per_episode
    again = evaluate_episodic(learner, sampler, 20, batch_size=3).per_episode
    assert first == again


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    pool = synthetic_pool(classes=10, instances=6)
    sampler = LabelOffsetSampler(pool, ways=3, instances_per_class=2)
    learner = create("lstm", TaskSpec(3, image_shape=SMALL_IMAGE), controller_size=8)
    calls = {"n": 0}

    def poisoned(ids):
        calls["n"] += 1
        batch = sampler.batch(ids)
        if calls["n"] == 5:
            batch = type(batch)(**{**vars(batch), "previous_codes": batch.previous_codes * float("nan")})
        return batch

    config = TrainConfig("smoke", episodes=40, batch_size=4, checkpoint_every=2, validate_every=100)
    with pytest.raises(TrainingDiverged, match="at step 5"):
        fit(learner, poisoned, lambda m: 0.0, config, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4
    assert not list(tmp_path.glob(".*.tmp"))


KILLABLE = """
import sys, torch
from pathlib import Path
from fewshot_mem.data.episodes import LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create
from fewshot_mem.results import git_commit, training_log
from fewshot_mem.train import TrainConfig, fit
torch.set_num_threads(1)
torch.manual_seed(0)
pool = synthetic_pool(classes=10, instances=6)
sampler = LabelOffsetSampler(pool, ways=3, instances_per_class=4)
learner = create("mann", TaskSpec(3, image_shape=SMALL_IMAGE), controller_size=16, memory_slots=8, memory_width=4,
                 read_heads=2)
config = TrainConfig("smoke", episodes=int(sys.argv[2]), batch_size=4, checkpoint_every=5, validate_every=1000,
                     log_every=1)  # logs that run ahead of the checkpoint
fit(learner, sampler.batch, lambda m: 0.0, config, Path(sys.argv[1]), resume=sys.argv[3] == "resume",
    progress=False)
"""


def run_training(run_dir: Path, episodes: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", KILLABLE, str(run_dir), str(episodes), mode],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    episodes = 1600  # long enough to be killed mid-way
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    process = run_training(interrupted, episodes, "fresh")
    deadline = time.time() + 120
    while time.time() < deadline and not (interrupted / "last.pt").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(interrupted / "last.pt")["step"]
    assert 0 < killed_at < episodes // 4, "the run was not killed mid-way"
    assert run_training(interrupted, episodes, "resume").wait() == 0
    assert run_training(straight, episodes, "fresh").wait() == 0
    resumed, reference = load_checkpoint(interrupted / "last.pt"), load_checkpoint(straight / "last.pt")
    assert resumed["step"] == reference["step"] == episodes // 4
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    lines = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == episodes // 4
    steps = [line["step"] for line in lines if "loss" in line]  # training records (validation ones share steps)
    assert steps == sorted(set(steps)), "the resumed run logged steps the killed one had logged"
    # Each session logs the step it started from and the commit of its code, for the results record.
    sessions = training_log(interrupted / "metrics.jsonl")["training_sessions"]
    assert [(s["from_step"], s["git_commit"], s["processes"]) for s in sessions] == \
        [(0, git_commit(), 1), (killed_at, git_commit(), 1)]


@pytest.mark.slow
def test_mann_learns_on_real_omniglot_above_chance(omniglot, tmp_path):
    """A short run: MANN's 2nd-instance accuracy rises clearly above an untrained MANN's."""
    train = LabelOffsetSampler(omniglot.pool("vinyals/train", 20), 5, 10, seed=0)
    test = LabelOffsetSampler(omniglot.pool("vinyals/test", 20), 5, 10, seed=1)
    torch.manual_seed(0)
    learner = create("mann", TaskSpec(5))
    untrained = evaluate_online(learner, test, 300).estimates["instance_2"]
    config = TrainConfig("smoke", episodes=4800, batch_size=16, learning_rate=1e-3, validate_every=10_000)
    fit(learner, train.batch, lambda m: 0.0, config, tmp_path, progress=False)
    trained = evaluate_online(learner, test, 300).estimates["instance_2"]
    assert trained.mean - trained.ci95 > untrained.mean + untrained.ci95, (untrained, trained)
    assert is_complete(tmp_path, config)


def test_cpu_time_adds_up_over_sessions_and_is_unknown_for_a_run_begun_without_it(tmp_path):
    """``last.pt`` keeps the training processes' CPU time beside the wall clock, summed over
    sessions; a run whose checkpoint predates it gets None, never a part passed off as the whole."""
    sampler = LabelOffsetSampler(synthetic_pool(classes=10, instances=6), ways=3, instances_per_class=4)
    torch.manual_seed(0)
    learner = create("mann", TaskSpec(3, image_shape=SMALL_IMAGE), **SMALL["mann"])

    def train(episodes: int) -> dict:
        config = TrainConfig("smoke", episodes=episodes, batch_size=4, validate_every=1000, validation_episodes=4)
        fit(learner, sampler.batch, lambda m: 0.0, config, tmp_path, resume=True, progress=False)
        return load_checkpoint(tmp_path / "last.pt")

    first = train(8)
    assert first["train_cpu_seconds"] > 0
    second = train(16)
    assert second["step"] > first["step"] and second["train_cpu_seconds"] > first["train_cpu_seconds"]
    del second["train_cpu_seconds"]  # as a run begun before CPU time was kept wrote it
    torch.save(second, tmp_path / "last.pt")
    assert train(24)["train_cpu_seconds"] is None


def test_cpu_time_is_summed_over_ranks_and_sessions(monkeypatch):
    """Under torchrun each rank spends its own CPU time: the clock adds every rank's (through
    ``distributed.all_sum``) to the earlier sessions', so two processes are not counted as one."""
    now = [100.0]
    monkeypatch.setattr(time, "process_time", lambda: now[0])
    ranks = 2
    monkeypatch.setattr(distributed, "all_sum", lambda tensor: tensor * ranks)  # two ranks, equally busy
    clock = TrainingClock.resumed_from({"train_seconds": 50.0, "train_cpu_seconds": 40.0})
    now[0] += 3.0
    assert clock.cpu_seconds() == 40.0 + ranks * 3.0
    assert clock.wall_seconds() >= 50.0
    assert TrainingClock.resumed_from({"train_seconds": 50.0}).cpu_seconds() is None
    assert TrainingClock.resumed_from(None).wall_seconds() < 50.0
