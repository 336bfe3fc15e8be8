"""A pixel-space cosine nearest-neighbour learner: the simplest plug-in worth benchmarking.

A label's score for an image is the largest cosine similarity between the image and any
labelled image of that label (the support set, or the labelled prefix of an online
episode), times a learned temperature. Nothing else is learned, so any embedding a
meta-learner trains has to beat it.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_mem.data.episodes import EpisodicInputs, OnlineInputs
from fewshot_mem.models.learner import Learner, Protocol, TaskSpec, images_to_float
from fewshot_mem.models.online import NoveltyScoring

# Cosine similarities of uint8 images (ink >= 0) lie in [0, 1]. Pairs that must not count
# (another label, a later step) get this instead of -inf, which would turn the temperature's
# gradient into NaN (-inf · 0) even where torch.where discards the value.
EXCLUDED = -2.0


def labelled_maximum(similarities: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Per label, the largest similarity to an image of that label.

    Args:
        similarities: (..., Q, S) similarity of each query to each labelled image.
        members: (..., Q or 1, S, N) 1 where labelled image s has label n (and may be used by q).
    Returns:
        (..., Q, N); ``EXCLUDED`` for a label with no usable image.
    """
    candidates = similarities.unsqueeze(-1).masked_fill(members == 0, EXCLUDED)  # (..., Q, S, N)
    return candidates.amax(dim=-2)


class NearestNeighbourLearner(NoveltyScoring, Learner):
    """Cosine nearest neighbour in pixel space with a learned temperature.

    Episodic: each query against the support set. Online: step t against the images of
    steps 1..t−1 with their revealed labels; labels not seen yet get the novelty score ν.

    Args:
        task: ways, label encoding (one-hot only) and image shape.
        temperature: the initial scale of the cosine similarities (learned).
    """

    native_protocol: ClassVar[Protocol] = "episodic"
    # fewshot_mem.citation prints this for a plug-in model's papers.
    bibtex: ClassVar[str] = """@article{cover1967,
  title = {Nearest Neighbor Pattern Classification},
  author = {Cover, Thomas M. and Hart, Peter E.},
  journal = {IEEE Transactions on Information Theory},
  volume = {13},
  number = {1},
  pages = {21--27},
  year = {1967},
  doi = {10.1109/TIT.1967.1053964}
}"""

    def __init__(self, task: TaskSpec, temperature: float = 10.0) -> None:
        super().__init__(task)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self._init_novelty()

    def unit_vectors(self, images: torch.Tensor) -> torch.Tensor:
        """(B, M, c, H, W) uint8 -> (B, M, c·H·W) of unit length (blank images stay zero)."""
        flat = images_to_float(images.flatten(2)).to(self.dtype)
        return F.normalize(flat, dim=-1)

    def scaled(self, similarities: torch.Tensor) -> torch.Tensor:
        return self.log_temperature.exp() * similarities

    def episodic_logits(self, inputs: EpisodicInputs) -> torch.Tensor:
        support, queries = self.unit_vectors(inputs.support_images), self.unit_vectors(inputs.query_images)
        members = F.one_hot(inputs.support_labels, inputs.ways).unsqueeze(1)  # (B, 1, S, N)
        return self.scaled(labelled_maximum(queries @ support.transpose(1, 2), members))

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        vectors = self.unit_vectors(inputs.images)  # (B, T, D)
        # Step j shows x_{j−1} with its label previous_codes[:, j]; step t may use j <= t.
        shown = torch.cat([torch.zeros_like(vectors[:, :1]), vectors[:, :-1]], dim=1)
        steps = vectors.shape[1]
        causal = torch.ones(steps, steps, dtype=torch.bool, device=vectors.device).tril()  # (T, T): j <= t
        members = inputs.previous_codes.unsqueeze(1).bool() & causal.unsqueeze(0).unsqueeze(-1)  # (B, T, T, N)
        return self.scaled(labelled_maximum(vectors @ shown.transpose(1, 2), members))
