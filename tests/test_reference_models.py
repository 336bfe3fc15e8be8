"""The speed benchmarks' reference models (benchmarks/reference_models.py) compute the same
function as the library models they are built from: same logits, same loss and same input
gradients for the same weights and batch, in float64."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fewshot_mem.data.episodes import SequenceBatch, encode_labels
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import create

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from reference_models import reference_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(controller_size=7, memory_slots=6, memory_width=3, read_heads=2)
CASES = {
    "mann": dict(SMALL),
    "mann-feedforward": dict(SMALL, controller="feedforward"),
    "ntm": dict(SMALL),
    "ntm-feedforward-shift5": dict(SMALL, read_heads=1, shift_range=5, controller="feedforward"),
    "dnc": dict(SMALL),
    "lstm": dict(controller_size=7),
}


def sequence_batch(episodes: int, ways: int, instances: int, side: int, strings: bool) -> SequenceBatch:
    """Random label-offset episodes with float64 images (so input gradients can be compared)."""
    labels = torch.stack([torch.randperm(ways * instances) // instances for _ in range(episodes)])
    characters = None
    if strings:
        per_slot = torch.randint(0, 5, (episodes, ways, 5))
        characters = per_slot.gather(1, labels[..., None].expand(-1, -1, 5))
    codes = encode_labels(labels, ways, characters)
    previous = torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], dim=1)
    images = torch.rand(episodes, ways * instances, 1, side, side, dtype=torch.float64, requires_grad=True)
    return SequenceBatch(images=images, labels=labels, codes=codes, previous_codes=previous,
                         instance_index=labels, classes=labels, instances=labels, strings=characters)


@pytest.mark.parametrize("encoding", ["one-hot", "string"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_computes_the_library_function(case, encoding):
    torch.manual_seed(0)
    model = create(case.split("-")[0], TaskSpec(3, encoding, (1, 4, 4)), **CASES[case]).double()
    with torch.no_grad():  # larger weights than the initial ones: sharper, less linear addressing
        for parameter in model.parameters():
            parameter.mul_(3)
    reference = reference_for(model)
    batch = sequence_batch(episodes=2, ways=3, instances=4, side=4, strings=encoding == "string")

    expected, got = model.online_logits(batch), reference.online_logits(batch)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)

    expected_loss, = torch.autograd.grad(model.loss(batch), batch.images)
    got_loss, = torch.autograd.grad(reference.loss(batch), batch.images)
    torch.testing.assert_close(got_loss, expected_loss, rtol=1e-9, atol=1e-12)


def test_reference_keeps_its_own_copy_of_the_weights():
    model = create("mann", TaskSpec(3), **SMALL).double()
    reference = reference_for(model)
    batch = sequence_batch(episodes=1, ways=3, instances=2, side=20, strings=False)
    before = reference.online_logits(batch).detach()
    with torch.no_grad():
        model.interface.weight.add_(1.0)
    torch.testing.assert_close(reference.online_logits(batch).detach(), before)
    assert not torch.allclose(model.online_logits(batch).detach(), before)
