"""What a training recipe is: the budgets, a ``TrainConfig`` and a ``Recipe``.

Each learner class states its own recipes (``Learner.recipe(suite, budget)``, beside the
model it trains), so this module imports no model and no training loop: models, the
training loop and ``budgets`` (which picks a model's recipe by name) all import it.

Budgets are stated in optimizer steps and batch size (``TrainConfig.steps``,
``TrainConfig.batch_size``); ``TrainConfig.episodes`` is their product, the number of
training episodes (sequences) seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

BUDGETS = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class TrainConfig:
    """How one learner is trained on one suite, at one budget."""

    budget: str
    episodes: int  # training episodes in all
    batch_size: int = 16  # episodes per optimizer step (the meta-batch)
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # "adam" or "rmsprop"
    halve_learning_rate_every: int | None = None  # in episodes
    gradient_clip: float | None = 10.0
    gradient_clip_mode: str = "norm"  # "norm": the global norm; "value": each element to ±gradient_clip
    loss_reduction: str = "mean"  # "mean" over every prediction; "sum" over an episode's, mean over episodes
    checkpoint_every: int = 50  # steps
    validate_every: int = 250  # steps
    validation_episodes: int = 200
    log_every: int = 10  # steps

    CHOICES = {"optimizer": ("adam", "rmsprop"), "gradient_clip_mode": ("norm", "value"),
               "loss_reduction": ("mean", "sum")}

    def __post_init__(self) -> None:
        for name, allowed in self.CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")

    @classmethod
    def of_steps(cls, budget: str, steps: int, batch_size: int, **settings) -> "TrainConfig":
        """A budget stated as the papers state it: ``steps`` optimizer steps of ``batch_size`` episodes."""
        return cls(budget, episodes=steps * batch_size, batch_size=batch_size, **settings)

    @property
    def steps(self) -> int:
        """Optimizer steps; each trains on ``batch_size`` episodes (none for a budget of no episodes)."""
        return 0 if self.episodes == 0 else max(1, math.ceil(self.episodes / self.batch_size))

    def scaled(self, **changes) -> "TrainConfig":
        return replace(self, **changes)


@dataclass(frozen=True)
class Recipe:
    """How a model trains on a suite: the protocol it trains on (its paper's), the training
    episodes' shape where it differs from the test shape (ProtoNets train with more ways), the
    learner's hyper-parameters for the suite, and the TrainConfig."""

    protocol: Literal["online", "episodic"]
    config: TrainConfig
    hyperparameters: dict = field(default_factory=dict)
    train_ways: int | None = None
    train_queries: int | None = None
    augment: bool = False


def check_budget(budget: str) -> None:
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")


def generic_recipe(protocol: Literal["online", "episodic"], budget: str) -> Recipe:
    """The recipe of a learner that states none (a plug-in): its native protocol, 8 / 4,000 /
    100,000 episodes in batches of 16 (4 for smoke) with Adam at 1e-3."""
    episodes = {"smoke": 8, "quick": 4000, "paper": 100_000}[budget]
    batch = {"smoke": 4, "quick": 16, "paper": 16}[budget]
    return Recipe(protocol, TrainConfig(budget, episodes=episodes, batch_size=batch,
                                        validate_every=max(1, episodes // batch // 4),
                                        validation_episodes=8 if budget == "smoke" else 200))
