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
from fewshot_mem.budgets import model_keywords, recipe
from fewshot_mem.citation import BIBTEX, cite
from fewshot_mem.models.learner import SequenceLearner, TaskSpec
from fewshot_mem.models.registry import (BUILTIN_MODELS, UnknownModelError, available_models, builtins_of, create,
                                         default_models, model_label, resolve)
from fewshot_mem.recipes import Recipe, TrainConfig
from fewshot_mem.suites import get_suite

SEQUENCE_MODELS = builtins_of(SequenceLearner)


def tiny(name: str) -> dict:
    """The learner's class's test_hyperparameters: the size the tests build it at."""
    return resolve(name).test_hyperparameters


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_registered_learner_honours_the_contract(name):
    """Every built-in and every installed plug-in. One that cannot be imported fails here (it used
    to be dropped from the list silently, so a broken learn2learn took MAML and ProtoNet out of the
    contract run unseen): with "maml" pointed at a missing module this test fails with
    UnknownModelError."""
    check_learner(name)  # built with its class's test_hyperparameters


def test_every_built_in_model_is_checked_at_a_tiny_size_it_accepts():
    """The contract builds each learner with its class's test_hyperparameters: they must be its
    constructor's keywords (a misspelt one fails here, not deep inside a check), and the sequence
    models' must be small (a default-sized MANN would make the contract run take minutes)."""
    assert set(BUILTIN_MODELS) <= set(available_models())
    for name in BUILTIN_MODELS:
        assert set(tiny(name)) <= model_keywords(name), name
    for name in SEQUENCE_MODELS:
        assert tiny(name)["controller_size"] < 10, name


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_gradients_through_a_full_step_match_finite_differences(name):
    """Every parameter's gradient (controller, interface projections, readout), not the first
    two: an error in the backward of a later layer (say a read head's key) fails it, as a
    gradient detached on the way to the readout does."""
    torch.manual_seed(0)
    learner = create(name, TaskSpec(ways=2, image_shape=(1, 2, 2)), **tiny(name)).double()
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
    check_learner(name, {**tiny(name), "controller": "feedforward"})


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UnknownModelError, match="mann.*ntm|available"):
        resolve("transformer")
    with pytest.raises(UnknownModelError, match="not a fewshot_mem Learner"):
        resolve("torch.nn:Linear")


def test_string_encoding_gives_five_five_way_outputs():
    learner = create("mann", TaskSpec(ways=15, label_encoding="string", image_shape=SMALL_IMAGE), **tiny("mann"))
    assert learner.task.output_shape == (5, 5)
    assert learner.readout.out_features == 25


# --- a model's facts, on its class ------------------------------------------------------------

def test_the_default_bench_is_the_built_ins_marked_for_it_in_registry_order():
    assert default_models() == ["mann", "ntm", "dnc", "lstm", "maml", "protonet"]


def test_every_built_in_has_a_label_and_cites_papers_the_bibliography_holds():
    for name in BUILTIN_MODELS:
        learner = resolve(name)
        assert learner.label and model_label(name) == learner.label, name
        assert learner.references and set(learner.references) <= set(BIBTEX), name
    assert model_label("not_installed.module:Learner") == "not_installed.module:Learner"


class Echo(lstm.LSTMLearner):
    """A "new built-in model": one class stating its facts (the registration is the test's)."""

    label = "Echo net"
    references = ("hochreiter1997",)
    test_hyperparameters = dict(controller_size=3)
    in_default_bench = True

    @classmethod
    def recipe(cls, suite, budget: str) -> Recipe:
        return Recipe("online", TrainConfig.of_steps(budget, steps=3, batch_size=2))


def test_a_new_built_in_is_one_class_and_one_registration_line(monkeypatch):
    """What DEVELOPERS.md promises: with its line in BUILTIN_MODELS, a class's facts reach the
    default bench, the recipes, the labels, the citations and the contract, and nothing else
    needs editing."""
    monkeypatch.setitem(BUILTIN_MODELS, "echo", f"{__name__}:Echo")
    suite = get_suite("omniglot-5way")
    assert default_models()[-1] == "echo" and "echo" in builtins_of(SequenceLearner)
    assert recipe("echo", suite, "quick").config.steps == 3
    assert model_label("echo") == "Echo net"
    assert BIBTEX["hochreiter1997"] in cite(suite, ["echo"])
    check_learner("echo")  # at its test_hyperparameters


def test_the_dnc_links_mask_is_not_part_of_its_weights():
    """The DNC hands its fused access a stored 1 − I (memory.dnc.update_link); it is a buffer that
    moves with the model but stays out of the state dict, so checkpoints saved before it existed
    load strictly and new ones are unchanged."""
    model = dnc.DNC(TaskSpec(5, "one-hot", SMALL_IMAGE), **dnc.DNC.test_hyperparameters)
    n = dnc.DNC.test_hyperparameters["memory_slots"]
    assert torch.equal(model.off_diagonal, 1 - torch.eye(n))
    assert "off_diagonal" not in model.state_dict()
    assert model.double().off_diagonal.dtype == torch.float64
