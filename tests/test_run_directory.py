"""A run directory's files under damage and contention: corrupt or empty checkpoints, a torn
metrics line, checkpoints written by earlier versions, and two trainings in one directory."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot_mem.bench import main as bench
from fewshot_mem.checkpoints import load_checkpoint
from fewshot_mem.data.episodes import LabelOffsetSampler
from fewshot_mem.errors import CheckpointError, DirectoryInUseError, FewshotMemError, RunFileError
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create
from fewshot_mem.metrics_log import read_metrics
from fewshot_mem.train import TrainConfig, fit, is_complete

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


def train(run_dir: Path, episodes: int, resume: bool = False, **settings) -> dict[str, torch.Tensor]:
    """A tiny LSTM run (4 episodes a step); returns its final weights."""
    torch.manual_seed(0)
    sampler = LabelOffsetSampler(synthetic_pool(classes=10, instances=6), ways=3, instances_per_class=2)
    learner = create("lstm", TaskSpec(3, image_shape=SMALL_IMAGE), controller_size=8)
    config = TrainConfig("smoke", episodes=episodes, batch_size=4, validate_every=2, log_every=1, **settings)
    fit(learner, sampler.batch, lambda m: 0.0, config, run_dir, resume=resume, progress=False)
    return learner.state_dict()


def config_of(episodes: int, **settings) -> TrainConfig:
    return TrainConfig("smoke", episodes=episodes, batch_size=4, validate_every=2, log_every=1, **settings)


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), "cannot be read: it is empty (0 bytes)"),
    (truncate, "truncated"),
    (lambda p: p.write_bytes(b"not a checkpoint at all" * 10), "not a PyTorch checkpoint"),
    (lambda p: p.unlink(), "there is no such file"),
    (lambda p: torch.save([1, 2], p), "not a training checkpoint: it holds a list"),
])
def test_a_damaged_checkpoint_is_named_with_the_reason_and_the_way_out(tmp_path, damage, reason):
    """Issue 20.4 and 20.9: torch's RuntimeError (or an empty message, for an empty file) came through."""
    train(tmp_path, 8)
    damage(tmp_path / "best.pt")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "best.pt")
    assert isinstance(error.value, FewshotMemError)  # the bench's exit code 2
    message = str(error.value)
    assert str(tmp_path / "best.pt") in message and reason in message and "Delete it" in message


def test_empty_checkpoint_bytes_say_so():
    """Issue 20.9: an empty checkpoint gave an empty reason (torch's EOFError has no message)."""
    with pytest.raises(CheckpointError, match=r"the checkpoint cannot be read: it is empty \(0 bytes\)"):
        load_checkpoint(io.BytesIO(b""))


def test_a_checkpoint_lacking_what_resuming_needs_is_refused(tmp_path):
    torch.save({"model": {}, "step": 3}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="lacks optimizer, best_step, best_score, config"):
        train(tmp_path, 8, resume=True)


def test_an_unreadable_last_checkpoint_is_an_unfinished_run(tmp_path):
    """Issue 20.4: is_complete raised torch's RuntimeError, so not even a plain rerun recovered."""
    train(tmp_path, 8)
    assert is_complete(tmp_path, config_of(8))
    truncate(tmp_path / "last.pt")
    assert not is_complete(tmp_path, config_of(8))
    with pytest.raises(CheckpointError, match="last.pt cannot be read.*Delete it"):
        train(tmp_path, 8, resume=True)
    train(tmp_path, 8)  # a plain rerun trains afresh
    assert is_complete(tmp_path, config_of(8))


def test_the_bench_answers_damaged_checkpoints_with_exit_code_2_and_the_way_out(omniglot_root, tmp_path, capsys):
    """Issue 20.4, end to end: a truncated last.pt or best.pt gave a RuntimeError traceback (rc 1)."""
    args = ["--suite", "omniglot-5way", "--models", "lstm", "--budget", "smoke", "--data-root", str(omniglot_root),
            "--out", str(tmp_path), "--quiet", "--test-episodes", "10"]
    run_dir = tmp_path / "omniglot-5way@1" / "lstm" / "smoke-seed0"
    assert bench(args) == 0
    truncate(run_dir / "last.pt")
    capsys.readouterr()
    assert bench(args + ["--resume"]) == 2
    error = capsys.readouterr().err
    assert f"{run_dir / 'last.pt'} cannot be read" in error and "Delete it" in error and "Traceback" not in error
    assert bench(args) == 0  # a plain rerun trains the run again
    assert "reusing" not in capsys.readouterr().out
    (run_dir / "best.pt").write_bytes(b"")
    assert bench(args) == 2
    error = capsys.readouterr().err
    assert f"{run_dir / 'best.pt'} cannot be read: it is empty (0 bytes)" in error


LEGACY_KEYS = ("model", "optimizer", "step", "best_step", "best_score", "config", "train_seconds")


def test_a_last_checkpoint_in_the_earlier_format_resumes_to_the_same_weights(tmp_path):
    """A last.pt as train.fit wrote it before the shared writer (a plain torch.save of these seven
    keys to a file name): the long runs under way when this changed must resume with this code."""
    straight = train(tmp_path / "straight", 16)
    train(tmp_path / "interrupted", 8)  # steps 1 and 2 of the same run
    state = torch.load(tmp_path / "interrupted" / "last.pt", weights_only=True)
    assert state["step"] == 2
    torch.save({key: state[key] for key in LEGACY_KEYS}, tmp_path / "interrupted" / "last.pt")
    resumed = train(tmp_path / "interrupted", 16, resume=True)
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key


# ------------------------------------------------------------------ the metrics log


def test_a_torn_last_metrics_line_is_skipped_on_resume(tmp_path):
    """Issue 20.5: a line cut off by a killed writer stopped --resume with "Expecting ',' delimiter"."""
    train(tmp_path, 8, checkpoint_every=1)
    with open(tmp_path / "metrics.jsonl", "a") as log:
        log.write('{"step": 3, "episodes": 12, "loss": 1.0')  # killed mid-line
    records = read_metrics(tmp_path / "metrics.jsonl")  # the session's own record, then steps 1 and 2
    assert [record["step"] for record in records if "session" not in record] == [1, 2, 2]
    train(tmp_path, 16, resume=True, checkpoint_every=1)
    steps = [record["step"] for record in read_metrics(tmp_path / "metrics.jsonl") if "loss" in record]
    assert steps == [1, 2, 3, 4]


def test_a_damaged_metrics_line_names_the_file_and_line(tmp_path):
    train(tmp_path, 8, checkpoint_every=1)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = '{"step": 2, "loss": 1.0 "accuracy": 0.5}\n'
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    with pytest.raises(RunFileError, match=re.escape(f"{tmp_path / 'metrics.jsonl'}, line 2, is not a metrics record")):
        train(tmp_path, 16, resume=True)


# ------------------------------------------------------------------ one training per run directory


BLOCKED_TRAINING = """
import sys, torch
from pathlib import Path
from fewshot_mem.data.episodes import LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create
from fewshot_mem.train import TrainConfig, fit
torch.set_num_threads(1)
torch.manual_seed(0)
sampler = LabelOffsetSampler(synthetic_pool(classes=10, instances=6), ways=3, instances_per_class=2)
learner = create("lstm", TaskSpec(3, image_shape=SMALL_IMAGE), controller_size=8)

def sample(ids):
    if ids[0] == 8:  # step 3: tell the test, and wait for it
        sys.stdout.write("training\\n")
        sys.stdout.flush()
        sys.stdin.readline()
    return sampler.batch(ids)

config = TrainConfig("smoke", episodes=24, batch_size=4, validate_every=2, log_every=1)
fit(learner, sample, lambda m: 0.0, config, Path(sys.argv[1]), progress=False)
"""


def test_a_second_training_in_the_same_run_directory_is_refused(tmp_path):
    """Issue 20.8: two benches in one run directory wrote one metrics.jsonl together (a step twice)."""
    first = subprocess.Popen([sys.executable, "-c", BLOCKED_TRAINING, str(tmp_path)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert first.stdout.readline() == "training\n"
        with pytest.raises(DirectoryInUseError) as error:
            train(tmp_path, 24)
        assert str(tmp_path) in str(error.value) and f"pid {first.pid}, training" in str(error.value)
        with pytest.raises(DirectoryInUseError):
            train(tmp_path, 24, resume=True)
    finally:
        _, errors = first.communicate("go on\n", timeout=120)
    assert first.returncode == 0, errors
    steps = [record["step"] for record in read_metrics(tmp_path / "metrics.jsonl") if "loss" in record]
    assert steps == list(range(1, 7))
    train(tmp_path, 24, resume=True)  # the lock went with its process


def test_a_tree_exported_with_git_archive_names_its_commit(tmp_path):
    """Long runs train from a `git archive` snapshot, which has no .git: the results must still
    name the code's commit (the COMMIT file, filled in by export-subst), not "unknown"."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", "fewshot_mem"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    printed = subprocess.run([sys.executable, "-c", "from fewshot_mem.results import git_commit; print(git_commit())"],
                             cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == head.stdout.strip()
