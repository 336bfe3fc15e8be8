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

A recipe names the protocol a learner trains on (its paper's), the training
episodes' shape when it differs from the test shape (ProtoNets train with more
ways), the learner's hyper-parameters for the suite, and the TrainConfig.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field, fields, replace

from .errors import FewshotMemError
from .models.registry import BUILTIN_MODELS, resolve
from .suites import Suite
from .train import BUDGETS, TrainConfig

SEQUENCE_MODELS = ("mann", "ntm", "dnc", "lstm")
PAPER_SEQUENCE_STEPS = 100_000  # Santoro et al.'s 100,000 episodes, each one step on 16 sequences

# A Conv-4 pass over one 84x84 image costs 10-30 ms on a CPU core, so on mini-ImageNet a smoke run
# trains and validates on a few hundred images, not thousands.
_SMOKE_84 = TrainConfig("smoke", episodes=4, batch_size=2, validate_every=2, validation_episodes=2)
_SMOKE_84_QUERIES = 5


@dataclass(frozen=True)
class Recipe:
    protocol: str  # "online" or "episodic"
    config: TrainConfig
    hyperparameters: dict = field(default_factory=dict)
    train_ways: int | None = None
    train_queries: int | None = None
    augment: bool = False


def _check_budget(budget: str) -> None:
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")


def _sequence_recipe(model: str, suite: Suite, budget: str) -> Recipe:
    configs = {  # Santoro et al.: RMSprop 1e-4, 100,000 "episodes" = optimizer steps of 16 sequences
        "smoke": TrainConfig.of_steps("smoke", steps=4, batch_size=8, validate_every=2, validation_episodes=8),
        "quick": TrainConfig.of_steps("quick", steps=750, batch_size=16, learning_rate=1e-3,
                                      validate_every=150, validation_episodes=200),
        "paper": TrainConfig.of_steps("paper", steps=PAPER_SEQUENCE_STEPS, batch_size=16, learning_rate=1e-4,
                                      optimizer="rmsprop", validate_every=500, validation_episodes=500,
                                      checkpoint_every=200),
    }
    hyperparameters = {}
    if model == "ntm" and suite.dataset == "omniglot":  # Santoro's "MANN with NTM addressing" row
        hyperparameters = dict(controller_size=200, memory_slots=128, memory_width=40, read_heads=4)
    if suite.dataset == "miniimagenet":  # natural 84x84 images: Conv-4 features, not raw pixels
        hyperparameters = dict(image_encoder="conv4")
    return Recipe("online", configs[budget], hyperparameters, augment=budget != "smoke")


def _maml_recipe(suite: Suite, budget: str) -> Recipe:
    if suite.dataset == "miniimagenet":  # Finn et al.: 32 filters, 5 steps at 0.01, 10 at test,
        # meta-batches of 4 tasks for 1-shot and 2 for 5-shot
        hyperparameters = dict(hidden_size=32, inner_steps=5, test_inner_steps=10, inner_lr=0.01)
        batch, paper_steps = (4 if suite.shots[0] == 1 else 2), 60_000
    elif suite.ways >= 20:  # Omniglot 20-way: 5 steps at 0.1, meta-batch 16
        hyperparameters = dict(inner_steps=5, test_inner_steps=5, inner_lr=0.1)
        batch, paper_steps = 16, 60_000
    else:  # Omniglot 5-way: 1 step at 0.4, 3 at test, meta-batch 32
        hyperparameters = dict(inner_steps=1, test_inner_steps=3, inner_lr=0.4)
        batch, paper_steps = 32, 60_000
    configs = {
        "smoke": TrainConfig("smoke", episodes=4, batch_size=2, validate_every=1, validation_episodes=4),
        "quick": TrainConfig("quick", episodes=150 * batch, batch_size=batch, validate_every=50,
                             validation_episodes=100),
        "paper": TrainConfig("paper", episodes=paper_steps * batch, batch_size=batch, validate_every=1000,
                             validation_episodes=600),
    }
    return Recipe("episodic", configs[budget], hyperparameters, train_queries=15)


def _protonet_recipe(suite: Suite, budget: str) -> Recipe:
    # Snell et al.: 60-way training for Omniglot (30-way 1-shot, 20-way 5-shot on mini-ImageNet),
    # 5 queries per class on Omniglot, 15 on mini-ImageNet; Adam 1e-3 halved every 2,000 episodes.
    if suite.dataset == "omniglot":
        ways, queries = 60, 5
    else:
        ways, queries = (30 if suite.shots[0] == 1 else 20), 15
    configs = {
        "smoke": TrainConfig("smoke", episodes=2, batch_size=1, validate_every=1, validation_episodes=4),
        "quick": TrainConfig("quick", episodes=600, batch_size=1, halve_learning_rate_every=2000,
                             validate_every=200, validation_episodes=100),
        "paper": TrainConfig("paper", episodes=20_000, batch_size=1, halve_learning_rate_every=2000,
                             validate_every=1000, validation_episodes=600),
    }
    return Recipe("episodic", configs[budget], train_ways=ways, train_queries=queries)


def _untrained_recipe(suite: Suite, budget: str) -> Recipe:
    """kNN on raw pixels learns nothing: zero training steps at every budget (``fit`` then
    validates and saves the weights as built; the evaluator calibrates ν)."""
    validation = {"smoke": 4, "quick": 100, "paper": 600}[budget]
    return Recipe("online" if "online" in suite.protocols else "episodic",
                  TrainConfig(budget, episodes=0, batch_size=1, validation_episodes=validation))


def _plugin_recipe(model: str, budget: str) -> Recipe:
    protocol = resolve(model).native_protocol
    episodes = {"smoke": 8, "quick": 4000, "paper": 100_000}[budget]
    batch = {"smoke": 4, "quick": 16, "paper": 16}[budget]
    return Recipe(protocol, TrainConfig(budget, episodes=episodes, batch_size=batch,
                                        validate_every=max(1, episodes // batch // 4),
                                        validation_episodes=8 if budget == "smoke" else 200))


def recipe(model: str, suite: Suite, budget: str) -> Recipe:
    """The recipe for ``model`` (a registered name or plug-in spec) on ``suite`` at ``budget``.

    """
    _check_budget(budget)
    chosen = _family_recipe(model, suite, budget)
    if budget == "smoke" and suite.dataset == "miniimagenet":  # see _SMOKE_84: the suite's ways, few queries
        return replace(chosen, config=_SMOKE_84, train_ways=chosen.train_ways and suite.ways,
                       train_queries=chosen.train_queries and _SMOKE_84_QUERIES)
    return chosen


def _family_recipe(model: str, suite: Suite, budget: str) -> Recipe:
    if model in SEQUENCE_MODELS:
        return _sequence_recipe(model, suite, budget)
    if model == "maml":
        return _maml_recipe(suite, budget)
    if model in ("protonet", "knn-features"):  # kNN on deep features: ProtoNet's embedding, trained as ProtoNet
        return _protonet_recipe(suite, budget)
    if model == "knn-pixels":
        return _untrained_recipe(suite, budget)
    if model == "meta-lstm":  # its recipe lives on its class
        return resolve(model).recipe(suite, budget)
    assert model not in BUILTIN_MODELS, model
    return _plugin_recipe(model, budget)


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
