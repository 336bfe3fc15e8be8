"""Scaling out with torch.distributed: two CPU processes (gloo), launched by torchrun.

* the shards of a training batch are the single-process batch, weighted to its mean;
* DDP training on 2 ranks (in float64, so that summing in another order changes only the
  last digits) computes the single-process gradient of the whole batch and, after 4 steps,
  the single-process weights (LSTM with a batch that 2 does not divide, MAML through
  learn2learn clones, ProtoNet's one-episode batches); it resumes to the very weights of an
  uninterrupted run, and saves the learner's own state dict;
* sharded evaluation gives the per-episode values of one process, exactly;
* the bench under torchrun: rank 0 alone writes, and its tables equal ``--eval-only``'s.

This file is also the torchrun worker (``python -m torch.distributed.run ... this file OUT``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from fewshot_mem import distributed
from fewshot_mem.bench import main
from fewshot_mem.checkpoints import load_checkpoint
from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.evaluate import evaluate_episodic, evaluate_online
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import Learner, TaskSpec
from fewshot_mem.models.registry import create
from fewshot_mem.train import TrainConfig, fit

REPO = Path(__file__).resolve().parent.parent
# name: (hyper-parameters, training protocol, batch size): 5 episodes split 3 + 2; MAML's meta-batch
# split 1 + 1; ProtoNet's single episode computed by both ranks.
SCENARIOS = {"lstm": (dict(controller_size=16), "online", 5),
             "maml": (dict(hidden_size=8), "episodic", 2),
             "protonet": (dict(hidden_size=8), "episodic", 1)}
EVALUATION_EPISODES = 7  # not a multiple of 2 ranks: shares of 3 and 4 episodes


def torchrun(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Two CPU processes of ``arguments`` under torchrun (a free port from --standalone)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *arguments]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished


def samplers(pool, protocol: str):
    online = LabelOffsetSampler(pool, ways=3, instances_per_class=3, seed=1)
    return online if protocol == "online" else EpisodeSampler(pool, ways=3, shots=1, queries=2, seed=1)


def build(name: str) -> Learner:
    """The small learner in float64: over a few steps float32 rounding in another summation order
    grows (Adam divides near-zero gradients by their own size), float64's stays far below 1e-8."""
    torch.manual_seed(0)
    return create(name, TaskSpec(3, image_shape=SMALL_IMAGE), **SCENARIOS[name][0]).double()


def config(name: str, steps: int) -> TrainConfig:
    batch = SCENARIOS[name][2]
    return TrainConfig("smoke", episodes=steps * batch, batch_size=batch, checkpoint_every=2, validate_every=2,
                       log_every=1)


@contextmanager
def first_step_gradients(learner: Learner):
    """The gradients the optimizer's first step applies (after DDP's averaging), by parameter name."""
    names = {id(p): n for n, p in learner.named_parameters()}
    recorded: dict[str, list] = {}

    def record(optimizer, args, kwargs):
        if not recorded:
            recorded.update({names[id(p)]: p.grad.tolist() for group in optimizer.param_groups
                             for p in group["params"] if p.grad is not None})

    handle = register_optimizer_step_pre_hook(record)
    try:
        yield recorded
    finally:
        handle.remove()


def evaluation(learner: Learner, pool) -> dict[str, list[float]]:
    online = evaluate_online(learner, samplers(pool, "online"), EVALUATION_EPISODES, batch_size=2)
    episodic = evaluate_episodic(learner, samplers(pool, "episodic"), EVALUATION_EPISODES, batch_size=2)
    return {**online.per_episode, **episodic.per_episode}


def train(name: str, run_dir: Path, steps: int, resume: bool = False) -> dict:
    """Trains a small learner as the bench would; returns its first-step gradients."""
    pool = synthetic_pool(classes=10, instances=6)
    learner = build(name)
    validation = samplers(pool, SCENARIOS[name][1])
    validate = (lambda m: float(np.mean(evaluation(m, pool)["instance_2"]))) if name == "lstm" else (
        lambda m: evaluate_episodic(m, validation, 5).estimates["3-way-1-shot"].mean)
    with first_step_gradients(learner) as gradients:
        fit(learner, samplers(pool, SCENARIOS[name][1]).batch, validate, config(name, steps), run_dir,
            resume=resume, progress=False)
    return gradients


def worker(out: Path) -> None:
    """Per model: 4 steps straight, 2 steps then a resume to 4, and a sharded evaluation."""
    distributed.init("cpu")
    torch.set_num_threads(1)
    report = {"world_size": distributed.world_size()}
    for name in SCENARIOS:
        gradients = train(name, out / name / "straight", 4)
        train(name, out / name / "resumed", 2)
        train(name, out / name / "resumed", 4, resume=True)
        learner = build(name)
        learner.load_state_dict(distributed.from_main(load_checkpoint, out / name / "straight" / "last.pt")["model"])
        report[name] = {"gradients": gradients, "evaluation": evaluation(learner, synthetic_pool(10, 6))}
    if distributed.is_main():
        (out / "report.json").write_text(json.dumps(report))
    distributed.cleanup()


def test_shards_of_a_batch_are_the_batch_weighted_to_its_mean(monkeypatch):
    losses = np.random.default_rng(0).random(16)  # per-episode losses
    for world in (2, 3):
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        for size in (1, 2, 5, 8):
            ids = np.arange(size) + 40
            shares = []
            for me in range(world):
                monkeypatch.setattr(distributed, "rank", lambda: me)
                shares.append(distributed.shard_batch(ids))
            if size >= world:
                assert sorted(np.concatenate([own for own, _ in shares])) == list(ids)
            # DDP's mean over ranks of each rank's weighted mean loss: the whole batch's mean loss.
            ddp_mean = np.mean([weight * losses[own - 40].mean() for own, weight in shares])
            assert ddp_mean == pytest.approx(losses[ids - 40].mean())


def test_evaluation_shares_are_contiguous_and_cover_every_episode(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    shares = []
    for me in range(3):
        monkeypatch.setattr(distributed, "rank", lambda: me)
        shares.append(distributed.shard_range(10))
    assert [len(s) for s in shares] == [3, 3, 4]
    assert np.concatenate(shares).tolist() == list(range(10))


def test_in_one_process_nothing_changes(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.init("cuda") == "cuda" and not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    ids = np.arange(8)
    own, weight = distributed.shard_batch(ids)
    assert own.tolist() == ids.tolist() and weight == 1.0
    module = torch.nn.Linear(2, 2)
    assert distributed.data_parallel(module, "cpu") is module
    assert distributed.gather([1, 2]) == [1, 2] and distributed.from_main(max, 3, 4) == 4


def test_two_processes_train_like_one_resume_exactly_and_evaluate_identically(tmp_path):
    torchrun(__file__, str(tmp_path))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2
    pool = synthetic_pool(classes=10, instances=6)
    for name in SCENARIOS:
        single = train(name, tmp_path / "single" / name, 4)
        distributed_gradients = report[name]["gradients"]
        assert single.keys() == distributed_gradients.keys()
        # Float sums in another order: compare on the scale of the largest gradient (a conv bias
        # before batch norm has a gradient of zero up to rounding).
        scale = max(np.abs(value).max() for value in single.values())
        for key, value in single.items():
            np.testing.assert_allclose(distributed_gradients[key], value, rtol=1e-9, atol=1e-12 * scale,
                                       err_msg=f"{name}: {key}")
        straight = load_checkpoint(tmp_path / name / "straight" / "last.pt")
        # After 4 steps, the weights of one process. Fails if the ranks' shares were weighted
        # wrongly or a later step's batch were sharded differently (e.g. shard_batch's weight 1):
        # that moves weights by about a learning rate times a gradient, ≫ 1e-9. A conv bias before
        # batch norm drifts by rounding alone (its gradient is zero up to rounding), to ~1e-10.
        one_process = load_checkpoint(tmp_path / "single" / name / "last.pt")["model"]
        for key, value in one_process.items():
            torch.testing.assert_close(straight["model"][key], value, rtol=1e-9, atol=1e-9,
                                       msg=f"{name}: {key} after 4 steps")
        resumed = load_checkpoint(tmp_path / name / "resumed" / "last.pt")
        assert straight["step"] == resumed["step"] == 4
        assert not any(key.startswith("module.") for key in straight["model"]), "DDP's wrapper was saved"
        for key, value in straight["model"].items():
            assert torch.equal(resumed["model"][key], value), (name, key)
        learner = build(name)
        learner.load_state_dict(straight["model"])
        assert evaluation(learner, pool) == report[name]["evaluation"], name


def test_bench_under_torchrun_writes_once_and_matches_a_single_process_evaluation(omniglot_root, tmp_path,
                                                                                   capsys):
    arguments = ["--suite", "omniglot-5way", "--models", "lstm,protonet", "--budget", "smoke", "--data-root",
                 str(omniglot_root), "--out", str(tmp_path), "--quiet", "--test-episodes", "7"]
    launched = torchrun("-m", "fewshot_mem.bench", *arguments)
    assert launched.stdout.count("episodic protocol") == 1  # rank 0 alone prints the tables
    suite_dir = tmp_path / "omniglot-5way@1"
    results = sorted((suite_dir / "results").glob("*.json"))
    assert [p.name for p in results] == ["lstm-smoke-seed0.json", "protonet-smoke-seed0.json"]
    assert sorted(p.relative_to(suite_dir).as_posix() for p in suite_dir.rglob("metrics.jsonl")) == [
        "lstm/smoke-seed0/metrics.jsonl", "protonet/smoke-seed0/metrics.jsonl"]
    for metrics in suite_dir.rglob("metrics.jsonl"):
        lines = metrics.read_text().splitlines()
        assert len(lines) == len(set(lines)) and lines, metrics
        logged_steps = [json.loads(line)["step"] for line in lines if "loss" in json.loads(line)]
        assert logged_steps == sorted(set(logged_steps)), metrics
    sharded = {p.name: json.loads(p.read_text()) for p in results}
    assert all(result["hardware"]["processes"] == 2 for result in sharded.values())
    assert main([*arguments, "--eval-only"]) == 0
    capsys.readouterr()
    for path in results:
        single = json.loads(path.read_text())
        assert single["hardware"]["processes"] == 1
        for table, values in single["tables"].items():
            assert sharded[path.name]["tables"][table]["per_episode"] == values["per_episode"], (path.name, table)
            assert sharded[path.name]["tables"][table]["estimates"] == values["estimates"], (path.name, table)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
