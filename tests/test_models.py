"""The learner contract over every registered model, gradient checks through a full
step of each memory model, and the structural rule that steps never loop in Python."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
import torch
from torch.autograd import gradcheck

from fewshot_mem import memory
from fewshot_mem.models import dnc, lstm, mann, ntm
from fewshot_mem.models.contract import SMALL_IMAGE, check_learner
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.registry import BUILTIN_MODELS, UnknownModelError, available_models, create, resolve

SEQUENCE_MODELS = ("mann", "ntm", "dnc", "lstm")
TINY = {"mann": dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2),
        "ntm": dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2),
        "dnc": dict(controller_size=6, memory_slots=5, memory_width=3, read_heads=2),
        "lstm": dict(controller_size=6),
        "protonet": dict(hidden_size=8),
        "maml": dict(hidden_size=8),
        "knn-pixels": {},
        "knn-features": dict(hidden_size=8, neighbours=2),
        "meta-lstm": resolve("meta-lstm").test_hyperparameters}


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_registered_learner_honours_the_contract(name):
    """Every built-in and every installed plug-in. One that cannot be imported fails here (it used
    to be dropped from the list silently, so a broken learn2learn took MAML and ProtoNet out of the
    contract run unseen): with "maml" pointed at a missing module this test fails with
    UnknownModelError."""
    check_learner(name, TINY.get(name))


def test_every_built_in_model_is_checked():
    assert set(BUILTIN_MODELS) <= set(available_models()) and set(BUILTIN_MODELS) == set(TINY)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_gradients_through_a_full_step_match_finite_differences(name):
    """Every parameter's gradient (controller, interface projections, readout), not the first
    two: an error in the backward of a later layer (say a read head's key) fails it, as a
    gradient detached on the way to the readout does."""
    torch.manual_seed(0)
    learner = create(name, TaskSpec(ways=2, image_shape=(1, 2, 2)), **TINY[name]).double()
    features = torch.randn(2, 4, dtype=torch.float64)
    code = torch.nn.functional.one_hot(torch.tensor([0, 1]), 2).double()
    state = learner.initial_state(2, features)
    for _ in range(2):  # a state that has been written to, not the blank start
        _, state = learner.step(features, code, state)
    state = tuple(s.detach() for s in state)
    floating = [i for i, s in enumerate(state) if s.is_floating_point()]
    weights = list(learner.parameters())

    def one_step(features, *inputs):
        return learner.step(features, code, state)[0]

    assert gradcheck(one_step, (features.clone().requires_grad_(), *weights), eps=1e-6, atol=1e-4)
    assert floating  # the state is differentiable data, not Python objects


STEP_FUNCTIONS = [mann.MANN.step, ntm.NTM.step, dnc.DNC.step, lstm.LSTMLearner.run,
                  *[f for module in (memory.addressing, memory.lru, memory.dnc)
                    for _, f in inspect.getmembers(module, inspect.isfunction) if f.__module__ == module.__name__]]


LOOPS = (ast.For, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@pytest.mark.parametrize("function", STEP_FUNCTIONS, ids=lambda f: f.__qualname__)
def test_steps_and_addressing_never_loop_in_python(function):
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    loops = [node for node in ast.walk(tree) if isinstance(node, LOOPS)]
    assert not loops, f"{function.__qualname__} loops in Python (line {loops[0].lineno})"


@pytest.mark.parametrize("name", ["mann", "ntm"])
def test_feedforward_controllers_honour_the_contract_too(name):
    check_learner(name, {**TINY[name], "controller": "feedforward"})


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UnknownModelError, match="mann.*ntm|available"):
        resolve("transformer")
    with pytest.raises(UnknownModelError, match="not a fewshot_mem Learner"):
        resolve("torch.nn:Linear")


def test_string_encoding_gives_five_five_way_outputs():
    learner = create("mann", TaskSpec(ways=15, label_encoding="string", image_shape=SMALL_IMAGE), **TINY["mann"])
    assert learner.task.output_shape == (5, 5)
    assert learner.readout.out_features == 25
