"""The rule for every ``SequenceLearner`` that overrides ``run``: the override computes the
same function and the same gradients as its definition, ``SequenceLearner.run`` (one
``step`` per time step), in float64. A check in the spirit of ``contract.py``:

    check_run_matches_steps(learner)   # raises AssertionError naming what differs
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from .learner import SequenceLearner, State

TOLERANCE = dict(rtol=1e-10, atol=1e-12)
BATCH, STEPS = 3, 9

Run = Callable[[SequenceLearner, torch.Tensor, torch.Tensor, State], tuple[torch.Tensor, State]]


def overrides_run(learner: SequenceLearner) -> bool:
    return type(learner).run is not SequenceLearner.run


def _inputs(learner: SequenceLearner, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded random images (B, T, F) and random one-hot or string codes of y_{t-1} (B, T, D)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (BATCH, STEPS, *learner.task.image_shape), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        features = learner.encode(images).to(learner.dtype)
    codes = (torch.rand(BATCH, STEPS, learner.task.code_size, generator=generator) < 0.3).to(learner.dtype)
    return features, codes


def _loss(scores: torch.Tensor, state: State) -> torch.Tensor:
    """A loss that reaches every output and every floating part of the last state."""
    weights = torch.linspace(-1, 2, scores.numel(), dtype=scores.dtype).view_as(scores)
    return (weights * scores).sum() + sum((s ** 2).sum() for s in state if s.is_floating_point())


def _outcome(learner: SequenceLearner, run: Run, features: torch.Tensor, codes: torch.Tensor,
             grad: bool) -> list[tuple[str, torch.Tensor | None]]:
    """Named results of one run: scores, final state, and with ``grad`` the gradients of every
    trainable parameter, of the features and of the (floating) initial state."""
    learner.zero_grad(set_to_none=True)
    features = features.clone().requires_grad_(grad)
    start = tuple(s.clone().requires_grad_(grad and s.is_floating_point())
                  for s in learner.initial_state(features.shape[0], features))
    with torch.set_grad_enabled(grad):
        scores, state = run(learner, features, codes, start)
    results = [("scores", scores.detach())] + [(f"final state[{i}]", s.detach()) for i, s in enumerate(state)]
    if not grad:
        assert not scores.requires_grad, "scores record a graph under no_grad"
        return results
    _loss(scores, state).backward()
    results += [(f"grad {name}", p.grad) for name, p in learner.named_parameters() if p.requires_grad]
    results += [("grad features", features.grad)]
    return results + [(f"grad initial state[{i}]", s.grad) for i, s in enumerate(start) if s.requires_grad]


def _compare(learner: SequenceLearner, features: torch.Tensor, codes: torch.Tensor, grad: bool, case: str) -> None:
    fast = _outcome(learner, type(learner).run, features, codes, grad)
    slow = _outcome(learner, SequenceLearner.run, features, codes, grad)
    for (name, got), (_, expected) in zip(fast, slow, strict=True):
        if expected is None:
            assert got is None or not got.any(), f"{case}: {name} is non-zero; the step loop gives none"
            continue
        assert got is not None, f"{case}: {name} is missing from the fast run"
        torch.testing.assert_close(got, expected, **TOLERANCE, msg=lambda m, n=name: f"{case}: {n}: {m}")


def check_run_matches_steps(learner: SequenceLearner, seed: int = 0) -> None:
    """Asserts that ``type(learner).run`` equals the step loop in float64 (on a copy with
    random weights, biases included): scores, final state and every gradient; under no_grad;
    and with every other parameter frozen. Nothing to check if ``run`` is not overridden."""
    if not overrides_run(learner):
        return
    learner = copy.deepcopy(learner).double()
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in learner.parameters():
            parameter.normal_(0, 0.5)  # non-default weights and biases, so a bias lost on the way shows
    features, codes = _inputs(learner, seed)
    _compare(learner, features, codes, grad=True, case="training")
    _compare(learner, features, codes, grad=False, case="no_grad")
    for index, parameter in enumerate(learner.parameters()):
        parameter.requires_grad_(index % 2 == 1)  # frozen weights take the plain path, beside probed ones
    _compare(learner, features, codes, grad=True, case="every other parameter frozen")
