"""Training recipes: every built-in model's recipe on every suite at every budget is the one
budgets.py stated before the recipes moved onto the learner classes (issue 23.5), and the
papers' settings hold where the papers state them."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from fewshot_mem.budgets import recipe
from fewshot_mem.models.learner import Learner, SequenceLearner
from fewshot_mem.models.registry import BUILTIN_MODELS, builtins_of
from fewshot_mem.recipes import BUDGETS, Recipe, TrainConfig, generic_recipe
from fewshot_mem.suites import all_suites, get_suite

SNAPSHOT = Path(__file__).with_name("recipes_snapshot.json")
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
OMNIGLOT_5, OMNIGLOT_20 = get_suite("omniglot-5way-1shot"), get_suite("omniglot-20way-5shot")
MINI_1, MINI_5 = get_suite("miniimagenet-5way-1shot"), get_suite("miniimagenet-5way-5shot")


def compact(chosen: Recipe) -> dict:
    """A recipe as the snapshot holds it: TrainConfig fields at their defaults and empty recipe
    fields left out (so a new TrainConfig field with a default leaves the snapshot valid)."""
    record = asdict(chosen)
    record["config"] = {key: value for key, value in record["config"].items()
                        if key in ("budget", "episodes") or value != DEFAULTS[key]}
    return {key: value for key, value in record.items() if value not in (None, {}, False) or key == "protocol"}


def snapshot() -> dict[str, dict]:
    """Every built-in model x suite x budget -> its compact recipe. To record an intended change
    of a recipe: python -c "import sys; sys.path.insert(0, 'tests'); import test_budgets as t; t.write_snapshot()"."""
    return {f"{model} {suite.id} {budget}": compact(recipe(model, suite, budget))
            for model in BUILTIN_MODELS for suite in all_suites() for budget in BUDGETS}


def write_snapshot() -> None:
    SNAPSHOT.write_text("{\n" + ",\n".join(f"{json.dumps(key)}: {json.dumps(value, sort_keys=True)}"
                                           for key, value in snapshot().items()) + "\n}\n")


def test_every_built_in_recipe_is_unchanged():
    """The snapshot was written by budgets.py's per-family functions (commit 1ac9b10), before the
    recipes moved onto the classes: changing any number of any class's recipe fails here. Models
    and suites added since are not in it (they have no earlier recipe to keep)."""
    expected = json.loads(SNAPSHOT.read_text())
    now = snapshot()
    compared = [key for key in expected if key in now]
    assert len(compared) == len(expected), "a model or suite of the snapshot is gone"
    assert {key: now[key] for key in compared} == expected


def test_the_paper_budget_of_every_sequence_model_is_santoros_100000_steps_of_16():
    """Santoro et al.'s 100,000 "episodes" are optimizer steps on batches of 16 sequences, RMSprop 1e-4;
    every SequenceLearner shares it, and trains online."""
    assert builtins_of(SequenceLearner) == ["mann", "mann-add", "mann-add-key-strength", "ntm", "dnc", "lstm"]
    for model in builtins_of(SequenceLearner):
        for suite in (get_suite("omniglot-5way"), get_suite("omniglot-15way-strings"), MINI_1):
            chosen = recipe(model, suite, "paper")
            assert (chosen.config.steps, chosen.config.batch_size, chosen.config.episodes) == (100_000, 16, 1_600_000)
            assert (chosen.config.optimizer, chosen.config.learning_rate) == ("rmsprop", 1e-4)
            assert chosen.protocol == "online" and chosen.augment


def test_ntm_is_santoros_mann_with_ntm_addressing_on_omniglot_and_conv4_on_mini_imagenet():
    assert recipe("ntm", get_suite("omniglot-5way"), "quick").hyperparameters == dict(
        controller_size=200, memory_slots=128, memory_width=40, read_heads=4)
    assert recipe("ntm", MINI_1, "quick").hyperparameters == dict(image_encoder="conv4")
    assert recipe("mann", get_suite("omniglot-5way"), "quick").hyperparameters == {}


@pytest.mark.parametrize("suite, steps, lr, test_steps, batch, filters", [
    (OMNIGLOT_5, 1, 0.4, 3, 32, None),  # Finn et al.: Omniglot 5-way
    (OMNIGLOT_20, 5, 0.1, 5, 16, None),  # Omniglot 20-way
    (MINI_1, 5, 0.01, 10, 4, 32),  # mini-ImageNet 1-shot
    (MINI_5, 5, 0.01, 10, 2, 32),  # mini-ImageNet 5-shot
], ids=["omniglot-5way", "omniglot-20way", "mini-1shot", "mini-5shot"])
def test_maml_follows_finn_et_al(suite, steps, lr, test_steps, batch, filters):
    chosen = recipe("maml", suite, "paper")
    settings = chosen.hyperparameters
    assert (settings["inner_steps"], settings["inner_lr"], settings["test_inner_steps"]) == (steps, lr, test_steps)
    assert settings.get("hidden_size") == filters
    assert (chosen.config.batch_size, chosen.config.steps) == (batch, 60_000)
    assert (chosen.protocol, chosen.train_queries) == ("episodic", 15)


def test_protonet_follows_snell_et_al_and_knn_features_trains_as_protonet():
    for suite, ways, queries in ((OMNIGLOT_5, 60, 5), (OMNIGLOT_20, 60, 5), (MINI_1, 30, 15), (MINI_5, 20, 15)):
        chosen = recipe("protonet", suite, "paper")
        assert (chosen.train_ways, chosen.train_queries, chosen.protocol) == (ways, queries, "episodic")
        assert (chosen.config.episodes, chosen.config.halve_learning_rate_every) == (20_000, 2000)
        for budget in BUDGETS:
            assert recipe("knn-features", suite, budget) == recipe("protonet", suite, budget)


def test_knn_on_raw_pixels_trains_nothing_at_any_budget():
    """(Except mini-ImageNet's smoke shape, which budgets.recipe gives every model: 2 steps for ν.)"""
    for budget in BUDGETS:
        for suite in all_suites():
            chosen = recipe("knn-pixels", suite, budget)
            assert chosen.config.steps == (2 if (budget, suite.dataset) == ("smoke", "miniimagenet") else 0)
            assert chosen.protocol == ("online" if "online" in suite.protocols else "episodic")


def test_mini_imagenet_smoke_trains_on_the_suites_ways_and_a_few_queries():
    chosen = recipe("protonet", MINI_1, "smoke")
    assert (chosen.train_ways, chosen.train_queries, chosen.config.episodes) == (5, 5, 4)
    assert recipe("mann", MINI_1, "smoke").train_ways is None  # the online protocol has no train ways


class _Plugin(Learner):
    native_protocol = "episodic"


class _SequencePlugin(SequenceLearner):
    def __init__(self, task, hidden_size: int = 4) -> None:  # no image_encoder
        super().__init__(task)


def test_a_learner_that_states_no_recipe_gets_the_generic_one_in_its_native_protocol():
    for budget in BUDGETS:
        assert recipe(f"{__name__}:_Plugin", OMNIGLOT_5, budget) == generic_recipe("episodic", budget)
    assert recipe(f"{__name__}:_Plugin", OMNIGLOT_5, "quick").config.episodes == 4000


def test_a_sequence_learner_that_states_no_recipe_trains_on_santoros_schedule_with_what_it_takes():
    """Conv-4 on mini-ImageNet only for a learner that takes an image_encoder (a plug-in that does
    not would be handed a keyword it refuses)."""
    spec = f"{__name__}:_SequencePlugin"
    assert recipe(spec, MINI_1, "paper").config == recipe("lstm", MINI_1, "paper").config
    assert recipe(spec, MINI_1, "paper").hyperparameters == {}
    assert recipe("lstm", MINI_1, "paper").hyperparameters == {"image_encoder": "conv4"}

