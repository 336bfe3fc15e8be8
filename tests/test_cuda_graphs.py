"""TrainingStep: one optimizer step, eager or replayed from a CUDA graph; the graphed steps
must train exactly as the eager ones (checked where a GPU is present)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from fewshot_mem.cuda_graphs import GraphedInference, TrainingStep
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_train import random_batches  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2)


def model_and_batches(device: str = "cpu"):
    torch.manual_seed(0)
    model = create("mann", TaskSpec(5, "one-hot", (1, 20, 20)), **TINY).to(device)
    return model, random_batches(3, batch_size=2)


def test_an_eager_training_step_is_the_training_loop_step():
    model, batches = model_and_batches()
    twin = copy.deepcopy(model)
    step = TrainingStep(model.loss, model.parameters(), torch.optim.Adam(model.parameters(), lr=0.01), clip=0.1)
    optimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    for batch in batches:
        loss = step(batch)
        optimizer.zero_grad()
        expected = twin.loss(batch)
        expected.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.1)
        optimizer.step()
        torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=0)
    for got, expected in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_graph_is_refused_where_it_cannot_work():
    model, _ = model_and_batches()
    with pytest.raises(ValueError, match="CUDA device"):
        TrainingStep(model.loss, model.parameters(), torch.optim.Adam(model.parameters()), graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graphed_training_and_inference_match_eager_on_cuda():
    model, batches = model_and_batches("cuda")
    twin = copy.deepcopy(model)
    graphed = TrainingStep(model.loss, model.parameters(),
                           torch.optim.Adam(model.parameters(), lr=0.01, capturable=True), clip=0.1, graph=True,
                           warmup=1)
    eager = TrainingStep(twin.loss, twin.parameters(), torch.optim.Adam(twin.parameters(), lr=0.01, capturable=True),
                         clip=0.1)
    for batch in batches * 2:  # warm-up, capture, replays
        torch.testing.assert_close(graphed(batch), eager(batch.to("cuda")))
    for got, expected in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(got, expected)
    with torch.no_grad():
        inference = GraphedInference(model.online_logits, batches[0], "cuda")
        torch.testing.assert_close(inference(batches[1]), model.online_logits(batches[1].to("cuda")))
