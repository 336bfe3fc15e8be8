"""Training recipes: how each model family is trained on a suite at each budget.

* ``smoke``: seconds, for tests;
* ``quick``: minutes on a laptop CPU;
* ``paper``: the paper's schedule, counted as the paper counts it (Santoro et al.'s
  100,000 "episodes" are optimizer steps on batches of 16 sequences, as every public
  reimplementation that reports results reads them: 1.6M sequences).

Budgets are stated in optimizer steps and batch size (``TrainConfig.steps``,
``TrainConfig.batch_size``); ``TrainConfig.episodes`` is their product, the
number of training episodes (sequences) seen. ``long`` (1,000,000 sequences =
62,500 steps of 16) was the sequence models' longer budget before ``paper`` was
counted in steps; results that name it stay readable (their ``training`` record
holds the steps), but no recipe trains it any more.

Each learner class states its recipes (``Learner.recipe``: the sequence models share Santoro et
al.'s on ``SequenceLearner``; MAML, ProtoNet and the kNN baselines have their own; a plug-in that
states none gets ``recipes.generic_recipe``). This module picks a model's by name, applies the
mini-ImageNet smoke shape, and the ``--set`` overrides.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import fields, replace

from .errors import FewshotMemError
from .models.registry import resolve
from .recipes import Recipe, TrainConfig, check_budget
from .suites import Suite

# A Conv-4 pass over one 84x84 image costs 10-30 ms on a CPU core, so on mini-ImageNet a smoke run
# trains and validates on a few hundred images, not thousands.
_SMOKE_84 = TrainConfig("smoke", episodes=4, batch_size=2, validate_every=2, validation_episodes=2)
_SMOKE_84_QUERIES = 5


def recipe(model: str, suite: Suite, budget: str) -> Recipe:
    """The recipe for ``model`` (a registered name or plug-in spec) on ``suite`` at ``budget``:
    its class's ``recipe``, at the smoke budget on mini-ImageNet shrunk to the suite's ways and
    a few queries."""
    check_budget(budget)
    chosen = resolve(model).recipe(suite, budget)
    if budget == "smoke" and suite.dataset == "miniimagenet":  # see _SMOKE_84: the suite's ways, few queries
        return replace(chosen, config=_SMOKE_84, train_ways=chosen.train_ways and suite.ways,
                       train_queries=chosen.train_queries and _SMOKE_84_QUERIES)
    return chosen


def parse_overrides(settings: list[str]) -> dict:
    """``--set key=value`` pairs -> {key: value}; values read as JSON (3, 1e-4, true, null, "adam"),
    else as strings."""
    overrides = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        if not equals or not key.strip():
            raise FewshotMemError(f"--set {setting!r}: write key=value, e.g. --set learning_rate=3e-4")
        try:
            overrides[key.strip()] = json.loads(text)
        except ValueError:
            overrides[key.strip()] = text
    return overrides


def model_keywords(model: str) -> set[str]:
    """The hyper-parameters a learner's constructor takes (its keyword arguments after the task)."""
    parameters = inspect.signature(resolve(model).__init__).parameters
    return {name for name, p in parameters.items() if name not in ("self", "task")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def with_overrides(model: str, chosen: Recipe, overrides: dict) -> Recipe:
    """``chosen`` (the recipe of ``model``) with training settings changed: TrainConfig fields
    (``steps`` sets the episodes from the batch size), ``train_ways``, ``train_queries``, ``augment``,
    or the model's hyper-parameters (its constructor's keywords). An unknown key changes nothing and
    is an error that lists the known ones."""
    if not overrides:
        return chosen
    config_keys = {f.name for f in fields(TrainConfig)} - {"budget"}
    recipe_keys = {"train_ways", "train_queries", "augment"}
    model_keys = model_keywords(model)
    known = sorted(config_keys | recipe_keys | model_keys | {"steps"})
    unknown = [key for key in overrides if key not in known]
    if unknown:
        raise FewshotMemError(f"--set {', '.join(unknown)}: not a training setting of this recipe; "
                              f"known: {', '.join(known)}")
    config = chosen.config.scaled(**{k: v for k, v in overrides.items() if k in config_keys})
    if "steps" in overrides:
        config = config.scaled(episodes=overrides["steps"] * config.batch_size)
    return replace(chosen, config=config, **{k: v for k, v in overrides.items() if k in recipe_keys},
                   hyperparameters={**chosen.hyperparameters,
                                    **{k: v for k, v in overrides.items() if k in model_keys}})
