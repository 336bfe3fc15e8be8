"""The one learner interface that every model family implements.

A learner answers both protocols:

* :meth:`Learner.online_logits` (Santoro et al. 2016): for a batch of
  label-offset sequences, the scores for y_t given x_1..x_t and y_1..y_{t-1};
* :meth:`Learner.episodic_logits`: for N-way K-shot episodes, the scores of
  each query given the labelled support set.

A learner is handed inputs only (:class:`OnlineInputs`, :class:`EpisodicInputs`):
what is scored (labels, targets, instance positions, query labels) stays with
the evaluator, and in training the loss gets the targets separately.

Sequence models get both from one recurrent ``step`` (:class:`SequenceLearner`);
metric and gradient learners implement the episodic protocol natively and
take part in the online one by adapting on the labelled prefix.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import (STRING_LENGTH, STRING_SYMBOLS, EpisodeBatch, EpisodicInputs, OnlineInputs,
                             SequenceBatch)
from ..errors import UnsupportedProtocolError
from ..recipes import Recipe, TrainConfig, generic_recipe

if TYPE_CHECKING:
    from ..suites import Suite

Protocol = Literal["online", "episodic"]
PAPER_SEQUENCE_STEPS = 100_000  # Santoro et al.'s 100,000 episodes, each one step on 16 sequences
State = tuple[torch.Tensor, ...]
Inputs = OnlineInputs | EpisodicInputs


@dataclass(frozen=True)
class TaskSpec:
    """What a learner is built for: N ways, the label encoding and the image shape."""

    ways: int
    label_encoding: Literal["one-hot", "string"] = "one-hot"
    image_shape: tuple[int, int, int] = (1, 20, 20)  # (channels, H, W)

    @property
    def code_size(self) -> int:
        """Size of an encoded label fed back to sequence models."""
        return self.ways if self.label_encoding == "one-hot" else STRING_LENGTH * STRING_SYMBOLS

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Scores per prediction: N classes, or five 5-way characters."""
        return (self.ways,) if self.label_encoding == "one-hot" else (STRING_LENGTH, STRING_SYMBOLS)

    @property
    def output_size(self) -> int:
        return self.code_size


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (ink = 255) to float in [0, 1]."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


def batch_targets(batch: SequenceBatch | EpisodeBatch) -> torch.Tensor:
    """What is predicted: sequence labels (or strings), or query labels."""
    return batch.targets if isinstance(batch, SequenceBatch) else batch.query_labels


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """Arg-max labels (..., N) -> (...), or characters (..., 5, 5) -> (..., 5)."""
    return logits.argmax(dim=-1)


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (..., K) scores against (...) targets; for string labels
    the five characters of a label are five 5-way predictions."""
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


class Learner(nn.Module):
    """Base class of every model family, built-in or plug-in.

    Subclasses set ``native_protocol`` (what their paper trains on) and
    implement :meth:`online_logits` and :meth:`episodic_logits`. The loss is the
    cross-entropy of those scores unless a subclass knows better.

    A model's facts live on its class, for the bench, the board and the tests to read:
    ``label`` (its display name), ``references`` (its papers, keys of ``citation.BIBTEX``;
    a plug-in gives its own entry as a ``bibtex`` string instead), ``test_hyperparameters``
    (tiny settings the tests build it with), ``in_default_bench`` (a built-in the bench runs
    when no ``--models`` are named) and :meth:`recipe` (how it trains, per suite and budget).
    """

    native_protocol: ClassVar[Protocol] = "online"
    protocols: ClassVar[tuple[Protocol, ...]] = ("online", "episodic")  # what it answers (adapters: fewer)
    supports_string_labels: ClassVar[bool] = True
    label: ClassVar[str | None] = None  # the display label ("MANN (LRUA)"); None: the registered name
    references: ClassVar[tuple[str, ...]] = ()  # keys of citation.BIBTEX
    test_hyperparameters: ClassVar[dict] = {}  # tiny settings the tests build the learner with
    in_default_bench: ClassVar[bool] = False  # run by the bench when no --models are named

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """How this learner trains on ``suite`` at ``budget`` (one of ``recipes.BUDGETS``); by default
        a generic schedule in its native protocol (``recipes.generic_recipe``). Called through
        ``budgets.recipe``, which checks the budget and applies the mini-ImageNet smoke shape."""
        return generic_recipe(cls.native_protocol, budget)

    def __init__(self, task: TaskSpec | None) -> None:
        super().__init__()
        self.task: TaskSpec | None = None  # None until bound: adapters learn their task from the suite
        if task is not None:
            self.bind(task)

    def bind(self, task: TaskSpec) -> None:
        """Sets the task the learner answers (once: a learner built for one task keeps it)."""
        if self.task is not None and self.task != task:
            raise ValueError(f"{type(self).__name__} was built for {self.task}, not {task}")
        if task.label_encoding == "string" and not self.supports_string_labels:
            raise ValueError(f"{type(self).__name__} does not support string labels")
        self.task = task

    def unsupported(self, protocol: str) -> UnsupportedProtocolError:
        """The error for a table of a protocol the learner does not answer."""
        return UnsupportedProtocolError(
            f"{type(self).__name__} answers the {' and '.join(self.protocols)} protocol only, not the {protocol} "
            f"one: evaluate it on a suite without {protocol} tables, or use an adapter that answers both "
            "(fewshot_mem.Prototypes, fewshot_mem.RecurrentStep)")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters, which inputs are cast to."""
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.float32)

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        """(B, T, *task.output_shape) scores for each step's label."""
        raise NotImplementedError

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        """(B, N·Q, N) scores for each query."""
        raise NotImplementedError

    def calibrate(self, calibration_batches: list[SequenceBatch]) -> None:
        """Fits whatever the learner fixes after training, on labelled training-class online
        batches, before it is scored; by default nothing. Called by the evaluator on every
        suite with an online table, deterministically, so a checkpoint scores the same each time."""

    def logits(self, inputs: Inputs) -> torch.Tensor:
        """The scores of whichever protocol the inputs belong to."""
        if isinstance(inputs, OnlineInputs):
            return self.online_logits(inputs)
        if isinstance(inputs, EpisodicInputs):
            return self.episodic_logits(inputs)
        raise TypeError(f"a learner is handed inputs only (batch.inputs()), not {type(inputs).__name__}")

    def loss_and_logits(self, inputs: Inputs, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss against ``targets`` (``batch_targets``), and the scores it came from
        (for logging accuracy). A learner whose loss is not the cross-entropy overrides this."""
        logits = self.logits(inputs)
        return classification_loss(logits, targets), logits

    def loss(self, batch: SequenceBatch | EpisodeBatch) -> torch.Tensor:
        """The training loss of a labelled batch: its inputs and its targets, handed over apart."""
        return self.loss_and_logits(batch.inputs(), batch_targets(batch))[0]


class SequenceLearner(Learner):
    """A recurrent learner: both protocols from one ``step`` over encoded inputs.

    Subclasses provide ``encode`` (images -> features, applied to whole
    sequences at once), ``initial_state`` and ``step``. The episodic protocol
    reads the support set as a label-offset sequence, then answers every query
    from the same post-support state, in parallel: a query sees the last
    support label (still owed by the offset) and never another query.
    """

    native_protocol: ClassVar[Protocol] = "online"

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """Santoro et al.'s schedule, shared by MANN, NTM, DNC, the LSTM and any sequence learner that
        states none: RMSprop at 1e-4 for 100,000 "episodes", read as optimizer steps on batches of 16
        sequences (``paper``); Conv-4 features instead of raw pixels for mini-ImageNet's natural
        84x84 images, where the learner takes an ``image_encoder``."""
        config = {
            "smoke": TrainConfig.of_steps("smoke", steps=4, batch_size=8, validate_every=2, validation_episodes=8),
            "quick": TrainConfig.of_steps("quick", steps=750, batch_size=16, learning_rate=1e-3,
                                          validate_every=150, validation_episodes=200),
            "paper": TrainConfig.of_steps("paper", steps=PAPER_SEQUENCE_STEPS, batch_size=16, learning_rate=1e-4,
                                          optimizer="rmsprop", validate_every=500, validation_episodes=500,
                                          checkpoint_every=200),
        }[budget]
        conv4 = suite.dataset == "miniimagenet" and "image_encoder" in inspect.signature(cls).parameters
        hyperparameters = dict(image_encoder="conv4") if conv4 else {}
        return Recipe("online", config, hyperparameters, augment=budget != "smoke")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, T, c, H, W) uint8 -> (B, T, F) features."""
        raise NotImplementedError

    def initial_state(self, batch_size: int, reference: torch.Tensor) -> State:
        """The state before the first step, on ``reference``'s device and dtype."""
        raise NotImplementedError

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state: State
             ) -> tuple[torch.Tensor, State]:
        """One time step: (B, F) features and (B, D) code of y_{t-1} -> (B, output_size) scores."""
        raise NotImplementedError

    def run(self, features: torch.Tensor, previous_codes: torch.Tensor, state: State
            ) -> tuple[torch.Tensor, State]:
        """Steps through (B, T, F) features; returns (B, T, output_size) scores and the last state."""
        outputs = []
        # unbind, not features[:, t]: each indexed step's backward would allocate a whole (B, T, F)
        # gradient, quadratic in T once the features come from a trainable encoder.
        for feature, previous_code in zip(features.unbind(1), previous_codes.unbind(1)):
            output, state = self.step(feature, previous_code, state)
            outputs.append(output)
        return torch.stack(outputs, dim=1), state

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        features = self.encode(inputs.images).to(self.dtype)
        state = self.initial_state(features.shape[0], features)
        scores, _ = self.run(features, inputs.previous_codes.to(features.dtype), state)
        return scores.view(*scores.shape[:2], *self.task.output_shape)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        if self.task.label_encoding != "one-hot":
            raise ValueError("the episodic protocol uses one-hot labels; build the learner for them")
        support = self.encode(inputs.support_images).to(self.dtype)  # (B, S, F)
        codes = F.one_hot(inputs.support_labels, self.task.code_size).to(support.dtype)  # (B, S, D)
        offset = torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], dim=1)
        _, state = self.run(support, offset, self.initial_state(support.shape[0], support))
        queries = self.encode(inputs.query_images).to(self.dtype)  # (B, Q, F)
        b, q = queries.shape[:2]
        state = tuple(s.repeat_interleave(q, dim=0) for s in state)  # (B·Q, ...)
        last_code = codes[:, -1].repeat_interleave(q, dim=0)  # (B·Q, D)
        scores, _ = self.step(queries.flatten(0, 1), last_code, state)
        return scores.view(b, q, self.task.ways)
