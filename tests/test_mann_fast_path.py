"""MANN.run, the fast path through a sequence, computes the same function and the same
gradients as the definition: SequenceLearner.run, one ``step`` per time step (float64)."""

from __future__ import annotations

import pytest
import torch

from fewshot_mem.models.learner import SequenceLearner, State, TaskSpec
from fewshot_mem.models.mann import MANN

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(controller_size=7, memory_slots=6, memory_width=3, read_heads=2)
BATCH, STEPS, WAYS = 3, 9, 4
TOLERANCE = dict(rtol=1e-10, atol=1e-12)


def learner_and_inputs(controller: str) -> tuple[MANN, torch.Tensor, torch.Tensor]:
    """A float64 MANN with random (non-default) weights, (B, T, F) features and (B, T, D) codes."""
    torch.manual_seed(0)
    learner = MANN(TaskSpec(ways=WAYS, image_shape=(1, 3, 3)), controller=controller, **SMALL).double()
    with torch.no_grad():
        for parameter in learner.parameters():
            parameter.normal_(0, 0.5)  # biases included, so a bias lost on the way would show
    features = torch.randn(BATCH, STEPS, 9, dtype=torch.float64)
    codes = torch.nn.functional.one_hot(torch.randint(WAYS, (BATCH, STEPS)), WAYS).double()
    return learner, features, codes


def loss_of(scores: torch.Tensor, state: State) -> torch.Tensor:
    """A loss that reaches every output and every floating part of the last state."""
    weights = torch.linspace(-1, 2, scores.numel(), dtype=scores.dtype).view_as(scores)
    return (weights * scores).sum() + sum((s ** 2).sum() for s in state if s.is_floating_point())


def gradients(learner: MANN, run, features: torch.Tensor, codes: torch.Tensor
              ) -> tuple[torch.Tensor, State, list[torch.Tensor], torch.Tensor]:
    learner.zero_grad(set_to_none=True)
    features = features.clone().requires_grad_()
    scores, state = run(learner, features, codes, learner.initial_state(BATCH, features))
    loss_of(scores, state).backward()
    return scores.detach(), tuple(s.detach() for s in state), [p.grad for p in learner.parameters()], features.grad


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_fast_path_matches_the_step_loop_with_gradients(controller):
    learner, features, codes = learner_and_inputs(controller)
    assert type(learner).run is not SequenceLearner.run
    fast = gradients(learner, MANN.run, features, codes)
    slow = gradients(learner, SequenceLearner.run, features, codes)
    torch.testing.assert_close(fast[0], slow[0], **TOLERANCE)
    for got, expected in zip(fast[1], slow[1], strict=True):
        torch.testing.assert_close(got, expected, **TOLERANCE)
    names = [name for name, _ in learner.named_parameters()]
    for name, got, expected in zip(names, fast[2], slow[2], strict=True):
        assert got is not None and expected is not None, name
        torch.testing.assert_close(got, expected, **TOLERANCE, msg=lambda m, name=name: f"{name}: {m}")
    torch.testing.assert_close(fast[3], slow[3], **TOLERANCE)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_fast_path_matches_without_gradients(controller):
    learner, features, codes = learner_and_inputs(controller)
    with torch.no_grad():
        fast = MANN.run(learner, features, codes, learner.initial_state(BATCH, features))
        slow = SequenceLearner.run(learner, features, codes, learner.initial_state(BATCH, features))
    assert not fast[0].requires_grad
    torch.testing.assert_close(fast[0], slow[0], **TOLERANCE)
    for got, expected in zip(fast[1], slow[1], strict=True):
        torch.testing.assert_close(got, expected, **TOLERANCE)


def test_fast_path_with_frozen_weights_and_a_differentiable_start():
    """Weights that need no gradient take the plain path; gradients still reach the inputs and
    the initial state."""
    learner, features, codes = learner_and_inputs("lstm")
    learner.requires_grad_(False)
    learner.interface.requires_grad_(True)  # one probed weight, one plain
    results = []
    for run in (MANN.run, SequenceLearner.run):
        learner.zero_grad(set_to_none=True)
        start = tuple(s.clone().requires_grad_() for s in learner.initial_state(BATCH, features))
        scores, state = run(learner, features, codes, start)
        loss_of(scores, state).backward()
        results.append([learner.interface.weight.grad, learner.interface.bias.grad, *(s.grad for s in start)])
    for got, expected in zip(*results, strict=True):
        torch.testing.assert_close(got, expected, **TOLERANCE)
