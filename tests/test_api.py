"""The Python API: fewshot_mem.evaluate, the adapters for plain nn.Modules, the training-episode
streams, and the README's "Use it from Python" example run end to end (train, evaluate, save,
submit to a board, verify)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import fewshot_mem
from fewshot_mem.bench import main as bench_main
from fewshot_mem.budgets import recipe
from fewshot_mem.evaluate import CALIBRATION_EPISODES, evaluate_on_suite
from fewshot_mem.models.contract import check_learner
from fewshot_mem.models.learner import Learner
from fewshot_mem.suites import get_suite, load_pools

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


class TinyEmbedding(nn.Module):
    """images (M, c, H, W) float -> (M, 8)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                    nn.Linear(16, 8))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class NearestSupport(nn.Module):
    """One episode's queries scored by the negative distance to the nearest support image of each class."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = TinyEmbedding()

    def forward(self, support_images, support_labels, query_images):  # (S, c, H, W), (S,), (Q, c, H, W)
        distances = torch.cdist(self.embedding(query_images), self.embedding(support_images))  # (Q, S)
        ways = int(support_labels.max()) + 1
        return torch.stack([-distances[:, support_labels == c].min(1).values for c in range(ways)], 1)  # (Q, N)


class GRUStep(nn.Module):
    """A GRU over flattened pixels and the previous label's code: (B, c, H, W), (B, N), (B, 16) -> (B, N)."""

    def __init__(self, ways: int = 5, pixels: int = 400) -> None:
        super().__init__()
        self.cell, self.readout = nn.GRUCell(pixels + ways, 16), nn.Linear(16, ways)

    def forward(self, image, previous_code, state):
        state = self.cell(torch.cat([image.flatten(1), previous_code], 1), state)
        return self.readout(state), state


@pytest.mark.parametrize("adapter, hyperparameters", [
    ("fewshot_mem.models.adapters:Prototypes", {"network": "test_api:TinyEmbedding"}),
    ("fewshot_mem.models.adapters:EpisodicFunction", {"network": "test_api:NearestSupport"}),
    ("fewshot_mem.models.adapters:RecurrentStep", {"network": "test_api:GRUStep",
                                                     "network_kwargs": {"ways": 3}}),
])
def test_adapters_pass_the_contract_for_the_protocols_they_answer(adapter, hyperparameters):
    """Rebuilt from their recorded hyperparameters as verify does, and handed garbled answers."""
    check_learner(adapter, hyperparameters)


def test_adapters_record_what_rebuilds_them():
    model = fewshot_mem.Prototypes(network=TinyEmbedding(channels=1), network_kwargs={"channels": 1})
    assert model.hyperparameters == {"network": "test_api:TinyEmbedding", "network_kwargs": {"channels": 1}}
    rebuilt = fewshot_mem.create("fewshot_mem.models.adapters:Prototypes", get_suite("omniglot-5way").task(),
                                 **model.hyperparameters)
    rebuilt.load_state_dict(model.state_dict())


def test_a_table_the_model_cannot_answer_is_a_clear_error(omniglot_root):
    model = fewshot_mem.EpisodicFunction(network=NearestSupport())
    with pytest.raises(fewshot_mem.UnsupportedProtocolError, match="episodic protocol only, not the online one"):
        fewshot_mem.evaluate(model, "omniglot-5way", data_root=omniglot_root, episodes=2)


class CalibrationSpy(Learner):
    """Answers 0 everywhere; notes the batches ``calibrate`` is handed."""

    def __init__(self, task) -> None:
        super().__init__(task)
        self.weight = nn.Parameter(torch.zeros(()))
        self.calibrated_on: list = []

    def calibrate(self, calibration_batches) -> None:
        self.calibrated_on.append(calibration_batches)

    def online_logits(self, inputs):
        return torch.zeros(*inputs.images.shape[:2], *self.task.output_shape) + self.weight

    def episodic_logits(self, inputs):
        return torch.zeros(*inputs.query_images.shape[:2], inputs.ways) + self.weight


@pytest.mark.parametrize("suite_name, calibrated", [("omniglot-5way", True), ("omniglot-5way-1shot", False)])
def test_every_learner_is_calibrated_through_the_hook(omniglot_root, suite_name, calibrated):
    """evaluate_on_suite calls Learner.calibrate (not an isinstance test) on the suite's training-class
    online episodes, where the suite has an online table."""
    suite = get_suite(suite_name)
    pools = load_pools(suite, omniglot_root, progress=False)
    spy = CalibrationSpy(suite.task())
    evaluate_on_suite(spy, suite, pools, episodes=2)
    assert len(spy.calibrated_on) == int(calibrated)
    if calibrated:
        (batch,) = spy.calibrated_on[0]
        assert batch.images.shape[0] == CALIBRATION_EPISODES
        train_classes = set(pools["train"].class_names)
        assert {pools["train"].class_names[c] for c in batch.classes.flatten().tolist()} <= train_classes


def test_the_api_scores_a_model_as_the_bench_does(omniglot_root, tmp_path):
    """The bench's results JSON and fewshot_mem.evaluate of the same weights: equal per-episode
    accuracies in every table (online, with the novelty calibration, and episodic)."""
    out = tmp_path / "runs"
    assert bench_main(["--suite", "omniglot-5way", "--models", "protonet", "--budget", "smoke", "--data-root",
                       str(omniglot_root), "--out", str(out), "--quiet", "--test-episodes", "20"]) == 0
    bench = json.loads((out / "omniglot-5way@1" / "results" / "protonet-smoke-seed0.json").read_text())
    suite = get_suite("omniglot-5way")
    hyperparameters = recipe("protonet", suite, "smoke").hyperparameters
    model = fewshot_mem.create("protonet", suite.task(), **hyperparameters)
    model.load_state_dict(torch.load(bench["checkpoint"], weights_only=True)["model"])
    results = fewshot_mem.evaluate(model, suite, data_root=omniglot_root, episodes=20,
                                   hyperparameters=hyperparameters)
    assert set(results.tables) == set(bench["tables"]) == {"online", "5-way-1-shot", "5-way-5-shot"}
    for name, table in results.tables.items():
        assert table.per_episode == bench["tables"][name]["per_episode"]
    assert results.fingerprint == bench["fingerprint"] and results.record["model"] == "protonet"
    assert str(results).splitlines()[0].startswith("omniglot-5way@1: online protocol")


def test_evaluate_leaves_the_model_as_it_was(omniglot_root):
    """The novelty calibration fits ν for scoring only: weights and train mode are restored."""
    model = fewshot_mem.Prototypes(network=TinyEmbedding())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fewshot_mem.evaluate(model, "omniglot-5way", data_root=omniglot_root, episodes=2)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("protocol", ["episodic", "online"])
def test_training_episodes_are_the_same_with_any_number_of_workers(omniglot_root, protocol):
    suite = get_suite("omniglot-5way")
    stream = suite.train_episodes(4, seed=3, protocol=protocol, batches=5, data_root=omniglot_root)
    assert isinstance(stream, torch.utils.data.IterableDataset) and len(stream) == 5
    alone = list(stream)
    with_workers = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert len(alone) == len(with_workers) == 5
    for ours, theirs in zip(alone, with_workers):
        for name, value in vars(ours).items():
            assert value is None or torch.equal(value, getattr(theirs, name)), name
    assert not torch.equal(alone[0].classes, alone[1].classes)  # each batch its own episodes
    validation = list(suite.validation_episodes(4, 2, protocol=protocol, data_root=omniglot_root))
    assert len(validation) == 2 and not torch.equal(validation[0].classes, alone[0].classes)


def _readme_blocks() -> tuple[str, list[str]]:
    section = (REPO / "README.md").read_text().split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return python, [line.split("  #")[0].strip() for line in shell.splitlines() if line.strip()]


def test_the_readme_example_is_the_example_script():
    assert _readme_blocks()[0] == (REPO / "examples" / "use_from_python.py").read_text()


def test_the_readme_example_trains_evaluates_saves_submits_and_verifies(omniglot_root, tmp_path):
    """End to end, exactly as the README shows it: a plain nn.Module embedding trained for a few steps
    in user code, scored with fewshot_mem.evaluate, saved, submitted to a new board, verified."""
    python, commands = _readme_blocks()
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "use_from_python.py").write_text(python)
    environment = {**os.environ, "FEWSHOT_MEM_DATA": str(omniglot_root), "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # The console scripts point at the installed package; the modules they run are this tree's.
    console = {"python": [sys.executable], "fewshot-mem-leaderboard": [sys.executable, "-m", "fewshot_mem.leaderboard"]}
    for command in commands:
        program, *arguments = shlex.split(command)
        done = subprocess.run(console[program] + arguments, cwd=tmp_path, env=environment, capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "5-way-1-shot" in done.stdout and "verified" in done.stdout
    entry = json.loads((tmp_path / "my-board" / "entries" / "omniglot-5way-1shot@2" / "my-embedding.json").read_text())
    assert entry["result"]["budget"] == "custom"
    assert entry["result"]["hyperparameters"]["network"] == "examples.use_from_python:Embedding"


def test_a_result_trained_outside_the_bench_reads_wherever_results_are_read():
    """fewshot_mem.evaluate records no training recipe; the board's readers (reference choice, the
    papers' rows, the plan's budget text) must take such a result without a KeyError."""
    from fewshot_mem.papers import _budget_cell, command
    from fewshot_mem.reference import Reference
    from fewshot_mem.report import budget_text
    from fewshot_mem.results import build_result

    result = build_result(suite_id="omniglot-5way-1shot@2", fingerprint="0" * 64, model="protonet",
                          model_class="fewshot_mem.models.protonet:ProtoNetLearner", hyperparameters={}, tables={},
                          budget="custom", seed=0, device="cpu", eval_seconds=1.0)
    assert Reference(Path("entry.json"), {"entry": "e", "result": result}).trained_episodes == 0
    assert budget_text(result) == "custom: trained outside the bench"
    assert "outside the bench" in command(result) and _budget_cell(result) == "–"
