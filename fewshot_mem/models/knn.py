"""k-nearest-neighbour baselines (Santoro et al. 2016, Table 2: "kNN (raw pixels)" and
"kNN (deep features)"), classified by scikit-learn's ``KNeighborsClassifier``.

* Episodic: the support set is the training set; a query's scores are its k neighbours' votes.
* Online: at step t the labelled prefix (x_1, y_1) .. (x_{t−1}, y_{t−1}) is the training set
  (one classifier fitted per step, so nothing later can leak in) and the votes score the
  labels seen so far. One-hot labels: an unseen label gets the novelty score ν of
  ``models.online``, calibrated like ProtoNet's, so "this is a new class" wins where ν is above
  the best vote. String labels: each of the five characters is voted on (scikit-learn's
  multi-output kNN); an unseen string cannot be named, so ν only makes the loss a likelihood
  (with probability σ(ν) the class is new and its characters uniform), never the arg-max.

k = 1 by default (Santoro's rows do not say; 1-NN is the usual baseline). Where the prefix
holds fewer than k examples, all of them vote. Votes are uniform; a tie between labels goes to
the lowest label index (the arg-max's first), and neighbours at equal distances are taken in the
order scikit-learn's brute-force search returns them (deterministic for given data).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from ..data.episodes import STRING_LENGTH, STRING_SYMBOLS, EpisodicInputs, OnlineInputs
from ..recipes import Recipe, TrainConfig
from .learner import Learner, TaskSpec, classification_loss, images_to_float
from .online import NoveltyScoring, previous_labels
from .protonet import ProtoNetLearner

if TYPE_CHECKING:
    from ..suites import Suite


def neighbour_votes(examples: np.ndarray, labels: np.ndarray, queries: np.ndarray, neighbours: int,
                    symbols: int) -> np.ndarray:
    """Vote fractions of the ``neighbours`` nearest examples (Euclidean): (E, D) examples with (E,)
    or (E, P) integer labels in [0, symbols), (Q, D) queries -> (Q, P, symbols) (P = 1 for (E,))."""
    classifier = KNeighborsClassifier(n_neighbors=min(neighbours, len(examples)), algorithm="brute")
    with warnings.catch_warnings():  # a short prefix has many labels per example: expected here, not a mistake
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        classifier.fit(examples, labels)
    found = classifier.predict_proba(queries)
    per_output = found if isinstance(found, list) else [found]
    known = classifier.classes_ if isinstance(found, list) else [classifier.classes_]
    votes = np.zeros((len(queries), len(per_output), symbols))
    for output, (probabilities, classes) in enumerate(zip(per_output, known)):
        votes[:, output, classes] = probabilities
    return votes


def prefix_votes(features: np.ndarray, labels: np.ndarray, neighbours: int, symbols: int) -> np.ndarray:
    """Votes at every step of one sequence from its labelled prefix alone: (T, D) features and
    (T−1, ...) labels y_1..y_{T−1} -> (T, P, symbols); zeros at the first step (no prefix)."""
    votes = np.zeros((len(features), 1 if labels.ndim == 1 else labels.shape[1], symbols))
    for t in range(1, len(features)):
        votes[t] = neighbour_votes(features[:t], labels[:t], features[t:t + 1], neighbours, symbols)[0]
    return votes


class KNNScoring(NoveltyScoring):
    """kNN scores for both protocols over ``features(images)``; ``neighbours`` is k."""

    supports_string_labels = True
    neighbours: int

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, M, c, H, W) uint8 -> (B, M, D) features the neighbours are found in."""
        raise NotImplementedError

    def _numpy_features(self, images: torch.Tensor) -> np.ndarray:
        return self.features(images).detach().double().cpu().numpy()

    def _as_scores(self, votes: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(votes).to(dtype=self.dtype, device=like.device)

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        """(B, T, N) vote fractions from each step's prefix (one-hot labels)."""
        features, labels = self._numpy_features(inputs.images), previous_labels(inputs.previous_codes).cpu().numpy()
        votes = [prefix_votes(f, y, self.neighbours, self.task.ways)[:, 0] for f, y in zip(features, labels)]
        return self._as_scores(np.stack(votes), inputs.previous_codes)

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        if self.task.label_encoding == "one-hot":
            return super().online_logits(inputs)
        return self._string_logits(inputs)

    def _string_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        """(B, T, 5, 5) log-probabilities of each character: neighbours' votes, mixed with σ(ν) uniform."""
        b, t = inputs.previous_codes.shape[:2]
        characters = inputs.previous_codes[:, 1:].reshape(b, t - 1, STRING_LENGTH, STRING_SYMBOLS).argmax(-1)
        features = self._numpy_features(inputs.images)
        votes = np.stack([prefix_votes(f, y, self.neighbours, STRING_SYMBOLS)
                          for f, y in zip(features, characters.cpu().numpy())])  # (B, T, 5, 5)
        new = torch.sigmoid(self.novelty)
        return torch.log((1 - new) * self._as_scores(votes, inputs.previous_codes) + new / STRING_SYMBOLS)

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        support, queries = self._numpy_features(inputs.support_images), self._numpy_features(inputs.query_images)
        labels = inputs.support_labels.cpu().numpy()
        votes = np.stack([neighbour_votes(s, y, q, self.neighbours, inputs.ways)[:, 0]
                          for s, y, q in zip(support, labels, queries)])  # (B, Q, N)
        return self._as_scores(votes, inputs.support_labels)

    def calibrate_novelty(self, batches, iterations: int = 50) -> float:
        if self.task.label_encoding != "one-hot":  # ν never changes a string prediction: nothing to fit
            return float(self.novelty.detach())
        return super().calibrate_novelty(batches, iterations)


class KNNPixelsLearner(KNNScoring, Learner):
    """kNN on raw pixels in [0, 1] (Santoro's 20 x 20 Omniglot: 400 features). Nothing is
    trained: its only parameter is ν, which the evaluator calibrates.

    Args:
        task: ways, label encoding and image shape.
        neighbours: k (1).
    """

    label: ClassVar[str] = "kNN (raw pixels)"
    references: ClassVar[tuple[str, ...]] = ("santoro2016",)  # Table 2's baseline

    @classmethod
    def recipe(cls, suite: Suite, budget: str) -> Recipe:
        """kNN on raw pixels learns nothing: zero training steps at every budget (``fit`` then
        validates and saves the weights as built; the evaluator calibrates ν)."""
        validation = {"smoke": 4, "quick": 100, "paper": 600}[budget]
        return Recipe("online" if "online" in suite.protocols else "episodic",
                      TrainConfig(budget, episodes=0, batch_size=1, validation_episodes=validation))

    def __init__(self, task: TaskSpec, neighbours: int = 1) -> None:
        super().__init__(task)
        self.neighbours = neighbours
        self._init_novelty()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images_to_float(images).flatten(2)


class KNNFeaturesLearner(KNNScoring, ProtoNetLearner):
    """kNN on deep features: the Conv-4 embedding of a prototypical network, meta-trained with
    ProtoNet's loss and recipe (episodic, Snell et al.'s schedule), classified by kNN.

    Santoro et al.'s deep features came from an autoencoder; this embedding is meta-trained
    instead, so it is the stronger (and the field's usual) deep-feature baseline. Its weights
    are ProtoNet's (same state_dict), so a trained ProtoNet checkpoint loads as is.

    Args:
        task: ways, label encoding and image shape.
        neighbours: k (1).
        hidden_size, layers: the Conv-4 embedding's (64, 4).
    """

    # ProtoNet's recipe is inherited: its embedding trains as ProtoNet's. Not in the default bench.
    label: ClassVar[str] = "kNN (deep features)"
    references: ClassVar[tuple[str, ...]] = ("santoro2016", "snell2017", "arnold2020")  # Table 2; the embedding
    test_hyperparameters: ClassVar[dict] = dict(hidden_size=8, neighbours=2)
    in_default_bench: ClassVar[bool] = False

    def __init__(self, task: TaskSpec, neighbours: int = 1, hidden_size: int = 64, layers: int = 4) -> None:
        super().__init__(task, hidden_size=hidden_size, layers=layers)
        self.neighbours = neighbours

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)

    def loss_and_logits(self, inputs, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Episodic training is ProtoNet's (the embedding learns from prototype distances); kNN
        votes are not differentiable, so online batches train ν alone."""
        if isinstance(inputs, EpisodicInputs):
            logits = ProtoNetLearner.episodic_logits(self, inputs)
            return classification_loss(logits, targets), logits
        return super().loss_and_logits(inputs, targets)

