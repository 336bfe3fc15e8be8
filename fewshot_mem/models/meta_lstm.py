"""The meta-learner LSTM (Ravi & Larochelle 2017, "Optimization as a Model for Few-Shot
Learning", ICLR): an LSTM whose cell state is the learner's parameters.

Per coordinate θ of the learner (Conv-4, ``maml.conv4_classifier``), one update is

    f_t = σ(W_F · [h_t, θ_{t−1}, f_{t−1}] + b_F)        (forget gate)
    i_t = σ(W_I · [h_t, θ_{t−1}, i_{t−1}] + b_I)        (input gate: a learned learning rate)
    θ_t = f_t ⊙ θ_{t−1} − i_t ⊙ ∇_{θ_{t−1}} L_t         (the cell update, c_t = θ_t)

where h_t is the output of a first, ordinary LSTM layer fed the preprocessed gradient and
loss of the learner on the whole support set (Andrychowicz et al. 2016: log-magnitude and
sign), as in the paper's two-layer meta-learner. Both layers share their weights across
coordinates: every coordinate is one row of one batch. The cell's initial value c_0 is the
learner's initial parameters, learned with the rest. The previous gates enter as their values, as
in the paper's equations (the authors' code feeds their pre-activations); both are 0 before the
first update.

As in the paper, ∇L_t and L_t are inputs: they are computed at a detached copy of θ_{t−1},
so no second derivatives are taken (the meta-gradient still flows through θ_{t−1} in the
cell update and the gates).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..budgets import Recipe
from ..data.episodes import EpisodicInputs, OnlineInputs
from ..suites import Suite
from ..train import TrainConfig
from .encoders import EVAL_PIXELS_PER_PASS
from .learner import Learner, Protocol, TaskSpec, images_to_float
from .maml import conv4_classifier
from .online import NoveltyScoring, fill_prefix_scores, previous_labels, scored_steps

PREPROCESSING_P = 10.0  # Andrychowicz et al.'s p: magnitudes below e^{−p} are scaled, not logged
GATE_WEIGHT_RANGE = 0.01  # the authors' code: every meta-learner weight uniform in ±0.01 ...
FORGET_BIAS_RANGE = (4.0, 5.0)  # ... the forget gate's bias large (f ≈ 1: θ is kept) ...
INPUT_BIAS_RANGE = (-5.0, -4.0)  # ... the input gate's small (i ≈ 0.01): the first update is SGD-like
# Learner coordinates per pass in evaluation: every coordinate of every episode is a row of the
# meta-learner's LSTM (4 × 20 gate values each), so 100 episodes of a 30,000-parameter Conv-4 would
# hold gigabytes at once; episodes are independent, so passes of fewer give the same scores.
EVAL_COORDINATES_PER_PASS = 1 << 19

Statistics = dict[str, torch.Tensor]  # "<batch-norm layer>.running_mean" / ".running_var" -> (B, C)


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """Andrychowicz et al. (2016), appendix A: (...) -> (..., 2), (log|x| / p, sign x) where
    |x| ≥ e^{−p}, else (−1, e^p · x), so that gradients and losses of any scale become inputs of
    order one."""
    large = x.abs() >= math.exp(-PREPROCESSING_P)
    log_magnitude = x.abs().clamp_min(math.exp(-PREPROCESSING_P)).log() / PREPROCESSING_P
    return torch.stack([torch.where(large, log_magnitude, -torch.ones_like(x)),
                        torch.where(large, x.sign(), x * math.exp(PREPROCESSING_P))], dim=-1)


class MetaLearnerLSTM(nn.Module):
    """The optimizer: (B, P) parameters, gradients and (B,) losses -> the (B, P) next parameters.

    State: the first layer's (B, P, H) hidden and cell states, and the previous (B, P) forget
    and input gates (zero before the first update).
    """

    def __init__(self, lstm_hidden_size: int = 20) -> None:
        super().__init__()
        # input per coordinate: preprocessed gradient (2) and loss (2)
        self.gradient_lstm = nn.LSTMCell(4, lstm_hidden_size)
        self.forget_gate = nn.Linear(lstm_hidden_size + 2, 1)  # [h_t, θ_{t−1}, f_{t−1}] -> f_t
        self.input_gate = nn.Linear(lstm_hidden_size + 2, 1)  # [h_t, θ_{t−1}, i_{t−1}] -> i_t
        for weight in self.parameters():
            nn.init.uniform_(weight, -GATE_WEIGHT_RANGE, GATE_WEIGHT_RANGE)
        nn.init.uniform_(self.forget_gate.bias, *FORGET_BIAS_RANGE)
        nn.init.uniform_(self.input_gate.bias, *INPUT_BIAS_RANGE)

    def initial_state(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = theta.new_zeros(*theta.shape, self.gradient_lstm.hidden_size)
        return hidden, hidden, torch.zeros_like(theta), torch.zeros_like(theta)

    def forward(self, theta: torch.Tensor, gradient: torch.Tensor, loss: torch.Tensor,
                state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        hidden, cell, forget, input_ = state
        inputs = torch.cat([preprocess(gradient), preprocess(loss)[:, None].expand(-1, theta.shape[1], -1)],
                           dim=-1)  # (B, P, 4)
        hidden, cell = (s.view_as(hidden) for s in self.gradient_lstm(
            inputs.flatten(0, 1), (hidden.flatten(0, 1), cell.flatten(0, 1))))
        forget = torch.sigmoid(self.forget_gate(torch.cat([hidden, theta[..., None], forget[..., None]], -1)))[..., 0]
        input_ = torch.sigmoid(self.input_gate(torch.cat([hidden, theta[..., None], input_[..., None]], -1)))[..., 0]
        return forget * theta - input_ * gradient, (hidden, cell, forget, input_)


@contextmanager
def batch_norm_inputs(module: nn.Module) -> Iterator[Statistics]:
    """Records, while open, the per-channel mean and unbiased variance of what each batch-norm
    layer of ``module`` is fed (the statistics a running average is made of)."""
    recorded: Statistics = {}

    def recorder(name: str):
        def record(_, arguments):
            x = arguments[0]  # (M, C, H, W)
            recorded[f"{name}.running_mean"] = x.mean(dim=(0, 2, 3))
            recorded[f"{name}.running_var"] = x.var(dim=(0, 2, 3))
        return record

    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in module.named_modules()
               if isinstance(layer, nn.BatchNorm2d)]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


class MetaLSTMLearner(NoveltyScoring, Learner):
    """The meta-learner LSTM training a Conv-4 learner in ``updates`` steps on the support set.

    Each update computes the learner's loss and gradient on the whole support set (the paper's
    batch "consisting of the entire training set") and lets the meta-learner write the new
    parameters; the queries are scored by the last ones. Meta-training backpropagates the query
    loss through the updates into the meta-learner and into c_0 (first order, see above).

    Batch norm, as the paper describes it: the support passes use their batch statistics. In
    training the queries do too (the paper's meta-training). In evaluation the queries use running
    averages of the support passes' statistics, begun afresh in every episode (mean 0, variance 1)
    and updated with momentum ``batch_norm_momentum`` at each update; so a query's score depends on
    the support set and itself only, never on the other queries (no transduction at test time).
    The batch-norm scale and shift are coordinates of θ like the weights.

    Online, like MAML: at every step the learner is trained afresh on the labelled prefix and
    scores x_t (in training, in one batch with the prefix so that batch norm sees only the past);
    unseen labels get the calibrated novelty score (``models.online``).

    Args (defaults: the paper's mini-ImageNet 5-way 1-shot settings):
        task: ways, label encoding and image shape.
        hidden_size: filters per Conv-4 block (32).
        updates: T, learner updates per episode (12 for 1-shot, 8 for 5-shot in the authors' configs).
        lstm_hidden_size: units of the first, ordinary LSTM layer (20).
        batch_norm_momentum: weight of the newest support statistics in the running averages
            (0.9 for 1-shot, 0.95 for 5-shot).
        max_pool: max-pooling instead of strided convolutions (default: for colour images).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    label: ClassVar[str] = "Meta-learner LSTM"
    references: ClassVar[tuple[str, ...]] = ("ravi2017", "andrychowicz2016")
    test_hyperparameters: ClassVar[dict] = dict(hidden_size=8, updates=2, lstm_hidden_size=4)
    in_default_bench: ClassVar[bool] = False

    def __init__(self, task: TaskSpec, hidden_size: int = 32, updates: int = 12, lstm_hidden_size: int = 20,
                 batch_norm_momentum: float = 0.9, max_pool: bool | None = None) -> None:
        super().__init__(task)
        max_pool = task.image_shape[0] == 3 if max_pool is None else max_pool
        self.updates, self.batch_norm_momentum = updates, batch_norm_momentum
        self.classifier = conv4_classifier(task, hidden_size, max_pool)  # its parameters are c_0 = θ_0
        self.meta_learner = MetaLearnerLSTM(lstm_hidden_size)
        self._init_novelty()

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """The authors' configs (github.com/twitter/meta-learning-lstm): Adam at 1e-3, gradient norm
        clipped at 0.25, one episode per step with 15 queries per class; 1-shot: 12 updates,
        batch-norm momentum 0.9, 75,000 episodes; 5-shot: 8 updates, 0.95, 50,000 episodes;
        validation on 100 episodes every 1,000."""
        one_shot = suite.shots[0] == 1
        hyperparameters = dict(updates=12 if one_shot else 8, batch_norm_momentum=0.9 if one_shot else 0.95)
        configs = {
            "smoke": TrainConfig("smoke", episodes=4, batch_size=2, validate_every=1, validation_episodes=4),
            "quick": TrainConfig("quick", episodes=600, batch_size=1, gradient_clip=0.25, validate_every=200,
                                 validation_episodes=100),
            "paper": TrainConfig("paper", episodes=75_000 if one_shot else 50_000, batch_size=1, gradient_clip=0.25,
                                 validate_every=1000, validation_episodes=100),
        }
        return Recipe("episodic", configs[budget], hyperparameters, train_queries=15)

    # --- θ as one vector of coordinates ------------------------------------------------------------

    def initial_parameters(self) -> torch.Tensor:
        """c_0 = θ_0: the learner's parameters as one (P,) vector (differentiable)."""
        return torch.cat([p.flatten() for p in self.classifier.parameters()])

    def _unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """(P,) -> the learner's named parameters."""
        shapes = {name: p.shape for name, p in self.classifier.named_parameters()}
        pieces = theta.split([math.prod(shape) for shape in shapes.values()])
        return {name: piece.view(shape) for (name, shape), piece in zip(shapes.items(), pieces)}

    def _classify(self, theta: torch.Tensor, images: torch.Tensor,
                  statistics: Statistics | None = None) -> torch.Tensor:
        """One episode: (P,) parameters, (M, c, H, W) images -> (M, N) scores; batch norm uses
        ``statistics`` where given, else the batch's."""
        return functional_call(self.classifier, {**self._unflatten(theta), **(statistics or {})}, (images,))

    def _support_loss(self, theta: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, Statistics]]:
        with batch_norm_inputs(self.classifier) as statistics:
            loss = F.cross_entropy(self._classify(theta, images), labels)
        return loss, (loss.detach(), statistics)

    # --- training the learner on a support set ------------------------------------------------------

    def adapt(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Statistics]:
        """``updates`` meta-learner steps on (B, M, c, H, W) float images and (B, M) labels: the
        (B, P) parameters θ_T and the running batch-norm statistics of the support passes."""
        theta = self.initial_parameters().expand(images.shape[0], -1)  # (B, P)
        state = self.meta_learner.initial_state(theta)
        gradient_and_loss = vmap(grad(self._support_loss, has_aux=True), randomness="same")
        running: Statistics = {}
        for _ in range(self.updates):
            # ∇L_t and L_t are inputs: taken at a detached θ_{t−1}, so no second derivatives (the paper's choice).
            gradient, (loss, statistics) = gradient_and_loss(theta.detach(), images, labels)
            theta, state = self.meta_learner(theta, gradient, loss, state)
            running = {name: (1 - self.batch_norm_momentum) * running.get(name, self._reset_value(name, value))
                       + self.batch_norm_momentum * value.detach() for name, value in statistics.items()}
        return theta, running

    @staticmethod
    def _reset_value(name: str, like: torch.Tensor) -> torch.Tensor:
        """A running average's value before the first batch: mean 0, variance 1."""
        return torch.ones_like(like) if name.endswith("running_var") else torch.zeros_like(like)

    def _scores(self, support: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, S, c, H, W) float support, (B, S) labels, (B, Q, c, H, W) queries -> (B, Q, N)."""
        theta, running = self.adapt(support, labels)
        if self.training:  # the paper's meta-training: the queries' own batch statistics
            return vmap(self._classify, randomness="same")(theta, queries)
        return vmap(self._classify, randomness="same")(theta, queries, running)

    def _in_passes(self, score, pixels: int, *per_episode: torch.Tensor) -> torch.Tensor:
        """``score(*per_episode)`` over tensors of B episodes with ``pixels`` per episode: in training
        at once, in evaluation a few episodes at a time (bounded memory: pixels and learner
        coordinates; episodes are independent, so the scores are the same)."""
        coordinates = self.initial_parameters().numel()
        per_pass = per_episode[0].shape[0] if self.training else \
            max(1, min(EVAL_PIXELS_PER_PASS // pixels, EVAL_COORDINATES_PER_PASS // coordinates))
        return torch.cat([score(*chunk) for chunk in zip(*(t.split(per_pass) for t in per_episode))])

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        support = images_to_float(inputs.support_images).to(self.dtype)  # (B, S, c, H, W)
        queries = images_to_float(inputs.query_images).to(self.dtype)  # (B, Q, c, H, W)
        pixels = math.prod(support.shape[1:]) + math.prod(queries.shape[1:])
        return self._in_passes(self._scores, pixels, support, inputs.support_labels, queries)

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        images = images_to_float(inputs.images).to(self.dtype)  # (B, T, c, H, W)
        labels = previous_labels(inputs.previous_codes)  # (B, T−1): y_1..y_{T−1}
        scored = scored_steps(inputs)
        scored = torch.ones(images.shape[:2], dtype=torch.bool, device=images.device) if scored is None else scored
        return self._in_passes(self._seen_scores, math.prod(images.shape[1:]), images, labels, scored)

    def _seen_scores(self, images: torch.Tensor, labels: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """Trains the learner on each prefix and scores the next image, at the ``scored`` steps:
        (B, T, c, H, W) images, (B, T−1) labels y_1..y_{T−1} and (B, T) steps -> (B, T, N)."""

        def score(chosen: torch.Tensor, step: int) -> torch.Tensor:
            prefix, prefix_labels = images[chosen, :step], labels[chosen, :step]
            if self.training:  # x_t in one batch with the prefix, so that batch norm sees only the past
                return self._scores(prefix, prefix_labels, images[chosen, : step + 1])[:, -1]
            return self._scores(prefix, prefix_labels, images[chosen, step : step + 1])[:, 0]

        return fill_prefix_scores(images.new_zeros(*images.shape[:2], self.task.ways), score, scored)
