"""MAML (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of
Deep Networks", ICML) with one functional adaptation (:class:`FunctionalMAML`) and Conv-4 blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

from .l2l import learn2learn as l2l
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..data.episodes import EpisodicInputs, OnlineInputs
from ..recipes import Recipe, TrainConfig
from .learner import Learner, Protocol, TaskSpec, images_to_float
from .online import EVALUATION_BLOCK, NoveltyScoring, fill_prefix_scores, previous_labels, scored_steps

if TYPE_CHECKING:
    from ..suites import Suite

Weights = dict[str, torch.Tensor]  # parameter name -> tensor, as ``named_parameters`` gives them


def conv4_classifier(task: TaskSpec, hidden_size: int, max_pool: bool) -> nn.Module:
    """Finn et al.'s Conv-4: 3×3 conv, batch norm, ReLU blocks (strided for Omniglot,
    max-pooled for mini-ImageNet), then a linear N-way head on the flattened features."""
    channels, height, width = task.image_shape
    features = l2l.vision.models.ConvBase(hidden=hidden_size, channels=channels, max_pool=max_pool, layers=4)
    for norm in (m for m in features.modules() if isinstance(m, nn.BatchNorm2d)):
        # Batch statistics always: a clone's running statistics would never reach this module.
        norm.track_running_stats = False
        norm.register_buffer("running_mean", None)
        norm.register_buffer("running_var", None)
        norm.register_buffer("num_batches_tracked", None)
    with torch.no_grad():
        size = features(torch.zeros(2, channels, height, width)).flatten(1).shape[1]
    head = nn.Linear(size, task.ways)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(features, nn.Flatten(), head)


def gradient_descent(objective: Callable[[Weights], torch.Tensor], weights: Weights, steps: int,
                     step_size: float, first_order: bool = False) -> Weights:
    """``steps`` steps of SGD on ``objective`` from ``weights``: φ ← φ − step_size·∇objective(φ).

    Functional: the result is a new dictionary, a differentiable function of ``weights``
    (so a loss on it backpropagates through the steps: second order), unless ``first_order``
    detaches each gradient. ``torch.func.grad`` rather than ``torch.autograd.grad``: it
    composes with an outer backward the same way (create_graph) and also runs under ``vmap``,
    which batches the online protocol's episodes.
    """
    for _ in range(steps):
        gradients = grad(objective)(weights)
        weights = {name: w - step_size * (gradients[name].detach() if first_order else gradients[name])
                   for name, w in weights.items()}
    return weights


class FunctionalMAML(nn.Module):
    """learn2learn's ``MAML`` wrapper (``module``, ``lr``, ``first_order``, ``adapt``), functionally.

    ``adapt`` returns adapted weights instead of rerouting a clone's parameters, and
    ``forward(inputs, weights)`` runs the module with them, so one adaptation serves a
    single episode and, under ``vmap``, a batch of episodes. The state dict is the
    module's under ``module.``, as learn2learn's wrapper stores it.
    """

    def __init__(self, module: nn.Module, lr: float, first_order: bool = False) -> None:
        super().__init__()
        self.module, self.lr, self.first_order = module, lr, first_order

    def weights(self) -> Weights:
        """The meta-learned initial weights θ."""
        return dict(self.module.named_parameters())

    def forward(self, inputs: torch.Tensor, weights: Weights | None = None) -> torch.Tensor:
        return self.module(inputs) if weights is None else functional_call(self.module, weights, (inputs,))

    def support_loss(self, weights: Weights, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(inputs, weights), labels)

    def adapt(self, inputs: torch.Tensor, labels: torch.Tensor, steps: int, weights: Weights | None = None,
              first_order: bool | None = None) -> Weights:
        """``steps`` steps of SGD at ``lr`` on the support loss of (M, c, H, W) inputs, (M,) labels."""
        return gradient_descent(lambda w: self.support_loss(w, inputs, labels),
                                self.weights() if weights is None else weights, steps, self.lr,
                                self.first_order if first_order is None else first_order)


class MAMLLearner(NoveltyScoring, Learner):
    """A classifier meta-trained so that a few gradient steps on a support set fit it.

    Each episode adapts the weights (``FunctionalMAML.adapt``) with ``inner_steps`` steps of SGD at
    ``inner_lr`` on the support loss (``test_inner_steps`` at evaluation), then
    scores the queries; the meta-gradient flows through the adaptation unless
    ``first_order``. Batch norm uses the statistics of the batch it sees, as in
    the paper's reference code: the support set while adapting, the query set
    of one episode when scoring it (transductive within an episode, never
    across episodes).

    Online, the weights are adapted afresh on the labelled prefix at every step,
    x_t is scored in one batch with the prefix (so batch norm sees only the
    past), and unseen labels get the calibrated novelty score (``models.online``).

    Args (defaults: the paper's Omniglot 5-way settings):
        task: ways, label encoding and image shape.
        hidden_size: filters per block (64; 32 for mini-ImageNet).
        inner_steps: adaptation steps in meta-training (1; 5 for 20-way and mini-ImageNet).
        test_inner_steps: adaptation steps at evaluation (3; 10 for mini-ImageNet).
        inner_lr: α (0.4; 0.1 for 20-way, 0.01 for mini-ImageNet).
        first_order: drop second derivatives (first-order MAML).
        max_pool: max-pooling instead of strided convolutions (default: for colour images).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    label: ClassVar[str] = "MAML"
    references: ClassVar[tuple[str, ...]] = ("finn2017", "arnold2020")  # it runs on learn2learn
    test_hyperparameters: ClassVar[dict] = dict(hidden_size=8)
    in_default_bench: ClassVar[bool] = True
    evaluation_block: ClassVar[int | None] = EVALUATION_BLOCK  # episodes adapted at once online (None: all)

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """Finn et al.'s settings per data set and ways, 60,000 meta-steps at ``paper``."""
        if suite.dataset == "miniimagenet":  # 32 filters, 5 steps at 0.01, 10 at test,
            # meta-batches of 4 tasks for 1-shot and 2 for 5-shot
            hyperparameters = dict(hidden_size=32, inner_steps=5, test_inner_steps=10, inner_lr=0.01)
            batch = 4 if suite.shots[0] == 1 else 2
        elif suite.ways >= 20:  # Omniglot 20-way: 5 steps at 0.1, meta-batch 16
            hyperparameters, batch = dict(inner_steps=5, test_inner_steps=5, inner_lr=0.1), 16
        else:  # Omniglot 5-way: 1 step at 0.4, 3 at test, meta-batch 32
            hyperparameters, batch = dict(inner_steps=1, test_inner_steps=3, inner_lr=0.4), 32
        config = {
            "smoke": TrainConfig("smoke", episodes=4, batch_size=2, validate_every=1, validation_episodes=4),
            "quick": TrainConfig("quick", episodes=150 * batch, batch_size=batch, validate_every=50,
                                 validation_episodes=100),
            "paper": TrainConfig("paper", episodes=60_000 * batch, batch_size=batch, validate_every=1000,
                                 validation_episodes=600),
        }[budget]
        return Recipe("episodic", config, hyperparameters, train_queries=15)

    def __init__(self, task: TaskSpec, hidden_size: int = 64, inner_steps: int = 1, test_inner_steps: int = 3,
                 inner_lr: float = 0.4, first_order: bool = False, max_pool: bool | None = None) -> None:
        super().__init__(task)
        max_pool = task.image_shape[0] == 3 if max_pool is None else max_pool
        self.inner_steps, self.test_inner_steps = inner_steps, test_inner_steps
        self.maml = FunctionalMAML(conv4_classifier(task, hidden_size, max_pool), inner_lr, first_order)
        self._init_novelty()

    def _steps(self) -> int:
        return self.inner_steps if self.training else self.test_inner_steps

    def adapted(self, images: torch.Tensor, labels: torch.Tensor, weights: Weights | None = None) -> Weights:
        """Weights adapted on (M, c, H, W) uint8 images and (M,) labels (from θ unless ``weights``)."""
        inputs = images_to_float(images).to(self.dtype)
        with torch.enable_grad():  # the evaluator runs under no_grad; adaptation needs gradients
            # Evaluation needs no meta-gradient: first-order steps keep no graph of the inner loop.
            return self.maml.adapt(inputs, labels, self._steps(), weights, None if self.training else True)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        # One episode at a time, not under vmap: batched convolutions would round differently,
        # and the board's weights must score exactly as they did when submitted.
        scores = [self.maml(images_to_float(queries).to(self.dtype), self.adapted(support, labels))
                  for support, labels, queries in zip(inputs.support_images, inputs.support_labels,
                                                      inputs.query_images)]
        return torch.stack(scores)  # (B, N·Q, N)

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        """Adapts on each prefix and scores the next image, with the same ``adapted`` as the
        episodic protocol, a block of episodes at once (``per_episode``), at the steps read."""
        images = images_to_float(inputs.images).to(self.dtype)  # (B, T, c, H, W)
        labels = previous_labels(inputs.previous_codes)  # (B, T−1): y_1..y_{T−1}, as the codes show them

        def adapt_and_score(weights, prefix, prefix_labels, seen_so_far):
            # x_t is scored in one batch with the prefix so that batch norm sees only the past.
            return self.maml(seen_so_far, self.adapted(prefix, prefix_labels, weights))[-1]

        mapped = self.per_episode(adapt_and_score)
        return fill_prefix_scores(
            images.new_zeros(*images.shape[:2], self.task.ways),
            lambda chosen, step: mapped(self.maml.weights(), images[chosen, :step], labels[chosen, :step],
                                        images[chosen, : step + 1]),
            scored_steps(inputs), None if self.training else self.evaluation_block)

    def per_episode(self, function: Callable) -> Callable:
        """``function(weights, prefix, prefix labels, seen so far)`` mapped over the episodes of a
        batch: by ``vmap``, except where a second-order meta-gradient will flow back through it. There
        episode by episode: backpropagating through the gradient of batch norm under ``vmap``
        gives a wrong second-order term (torch 2.14; ``tests/test_maml_adaptation.py`` shows it
        against learn2learn), and evaluation must stay on ``vmap`` to score the board's weights
        exactly as they were scored (a loop rounds differently)."""
        if self.training and torch.is_grad_enabled() and not self.maml.first_order:
            return lambda weights, *episodes: torch.stack([function(weights, *e) for e in zip(*episodes)])
        return vmap(function, in_dims=(None, 0, 0, 0), randomness="same")
