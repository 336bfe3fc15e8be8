"""Prototypical networks (Snell, Swersky & Zemel 2017, "Prototypical Networks for Few-shot
Learning", NeurIPS), on learn2learn's Conv-4 backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .l2l import learn2learn as l2l
import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import EpisodicInputs, OnlineInputs
from ..recipes import Recipe, TrainConfig
from .encoders import embed_images
from .learner import Learner, Protocol, TaskSpec
from .online import NoveltyScoring

if TYPE_CHECKING:
    from ..suites import Suite


def squared_distances(queries: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """‖q − p‖² for (..., Q, D) queries and (..., N, D) prototypes -> (..., Q, N)."""
    return (queries.unsqueeze(-2) - prototypes.unsqueeze(-3)).pow(2).sum(-1)


class PrototypeScoring(NoveltyScoring, Learner):
    """Class prototypes are mean embeddings of ``self.embedding`` (a per-image network, images
    (M, c, H, W) float in [0, 1] -> (M, D)); scores are negative squared Euclidean distances.

    Episodic: prototypes of the support set. Online: running prototypes of the
    labelled prefix (cumulative sums, so every step costs O(1) more), and the
    calibrated novelty score ν for labels not seen yet (see ``models.online``).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    embedding: nn.Module

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, M, c, H, W) uint8 -> (B, M, D)."""
        return embed_images(self.embedding, images, self.dtype)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        support, queries = self.embed(inputs.support_images), self.embed(inputs.query_images)  # (B, S, D), (B, Q, D)
        # inputs.ways, not the task's: training episodes may have more ways than the task (60 vs 5)
        members = F.one_hot(inputs.support_labels, inputs.ways).to(support.dtype)  # (B, S, N)
        prototypes = members.transpose(1, 2) @ support / members.sum(1).unsqueeze(-1)  # (B, N, D)
        return -squared_distances(queries, prototypes)

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        embedded = self.embed(inputs.images)  # (B, T, D)
        codes = inputs.previous_codes.to(embedded.dtype)  # (B, T, N), codes[:, t] labels x_{t−1}
        shown = torch.cat([torch.zeros_like(embedded[:, :1]), embedded[:, :-1]], dim=1)  # x_{t−1} at t
        sums = (codes.unsqueeze(-1) * shown.unsqueeze(-2)).cumsum(dim=1)  # (B, T, N, D)
        prototypes = sums / codes.cumsum(dim=1).clamp(min=1).unsqueeze(-1)  # running class means
        return -(embedded.unsqueeze(-2) - prototypes).pow(2).sum(-1)  # (B, T, N)


class ProtoNetLearner(PrototypeScoring):
    """Prototypical networks on learn2learn's Conv-4 backbone (``PrototypeScoring``).

    Args (defaults are the paper's):
        task: ways, label encoding and image shape.
        hidden_size: filters per conv block (64).
        layers: conv blocks of 3×3 conv, batch norm, ReLU, 2×2 max-pool (4).
    """

    label: ClassVar[str] = "ProtoNet"
    references: ClassVar[tuple[str, ...]] = ("snell2017", "arnold2020")  # it runs on learn2learn
    test_hyperparameters: ClassVar[dict] = dict(hidden_size=8)
    in_default_bench: ClassVar[bool] = True

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """Snell et al.: 60-way training for Omniglot (30-way 1-shot, 20-way 5-shot on mini-ImageNet),
        5 queries per class on Omniglot, 15 on mini-ImageNet; Adam 1e-3 halved every 2,000 episodes."""
        if suite.dataset == "omniglot":
            ways, queries = 60, 5
        else:
            ways, queries = (30 if suite.shots[0] == 1 else 20), 15
        config = {
            "smoke": TrainConfig("smoke", episodes=2, batch_size=1, validate_every=1, validation_episodes=4),
            "quick": TrainConfig("quick", episodes=600, batch_size=1, halve_learning_rate_every=2000,
                                 validate_every=200, validation_episodes=100),
            "paper": TrainConfig("paper", episodes=20_000, batch_size=1, halve_learning_rate_every=2000,
                                 validate_every=1000, validation_episodes=600),
        }[budget]
        return Recipe("episodic", config, train_ways=ways, train_queries=queries)

    def __init__(self, task: TaskSpec, hidden_size: int = 64, layers: int = 4) -> None:
        super().__init__(task)
        self.embedding = l2l.vision.models.CNN4Backbone(hidden_size=hidden_size, layers=layers,
                                                        channels=task.image_shape[0], max_pool=True)
        self._init_novelty()
