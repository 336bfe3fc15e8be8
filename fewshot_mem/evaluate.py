"""One evaluator for every learner, on a suite's frozen test episodes.

* Online protocol: accuracy at instance positions (1st, 2nd, 3rd, 4th, 5th and
  10th appearance of a class), each the mean over episodes of that episode's
  accuracy at the position, with a 95% confidence interval 1.96·std/√n.
* Episodic protocol: query accuracy, mean ± 1.96·std/√n over episodes.

Per-episode accuracies are kept in the result, so anyone can recompute the
intervals (the leaderboard does). Evaluation runs without gradients; a learner
that needs them to adapt (MAML) turns them on inside its own adaptation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.episodes import EpisodeSampler, LabelOffsetSampler, SequenceBatch, correct_predictions
from .models.learner import Learner, batch_targets, predictions

INSTANCE_POSITIONS = (1, 2, 3, 4, 5, 10)
Z_95 = 1.96


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci95: float  # half-width of the 95% interval
    episodes: int

    @classmethod
    def from_samples(cls, samples: np.ndarray) -> "Estimate":
        samples = np.asarray(samples, dtype=np.float64)
        spread = samples.std(ddof=1) if len(samples) > 1 else 0.0
        return cls(float(samples.mean()), float(Z_95 * spread / math.sqrt(len(samples))), len(samples))

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}"


@dataclass
class ProtocolResult:
    """The estimates of one protocol, with the per-episode accuracies they come from."""

    protocol: str
    estimates: dict[str, Estimate]
    per_episode: dict[str, list[float]] = field(repr=False)

    def to_json(self) -> dict:
        return {"protocol": self.protocol,
                "estimates": {k: vars(v) for k, v in self.estimates.items()},
                "per_episode": self.per_episode}


def _episode_accuracy(learner: Learner, batch, device) -> torch.Tensor:
    """(B, positions or queries) correctness of one batch."""
    batch = batch.to(device)
    return correct_predictions(predictions(learner.logits(batch)), batch_targets(batch)).float()


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield np.arange(start, min(start + batch_size, count))


def evaluate_online(learner: Learner, sampler: LabelOffsetSampler, episodes: int, batch_size: int = 100,
                    device: str | torch.device = "cpu", progress: bool = False,
                    positions: tuple[int, ...] = INSTANCE_POSITIONS) -> ProtocolResult:
    """Accuracy by instance position over episodes 0..episodes-1 of ``sampler``."""
    positions = tuple(p for p in positions if p <= sampler.instances_per_class)
    sums = np.zeros((episodes, len(positions)))
    learner.eval()
    with torch.no_grad():
        for ids in tqdm(list(_batches(episodes, batch_size)), desc="online eval", disable=not progress):
            batch: SequenceBatch = sampler.batch(ids)
            correct = _episode_accuracy(learner, batch, device).cpu()  # (B, T)
            index = batch.instance_index  # (B, T)
            for column, position in enumerate(positions):
                at = (index == position).float()  # exactly N steps per episode
                sums[ids, column] = ((correct * at).sum(1) / at.sum(1)).numpy()
    per_episode = {f"instance_{p}": sums[:, c].tolist() for c, p in enumerate(positions)}
    estimates = {key: Estimate.from_samples(np.array(values)) for key, values in per_episode.items()}
    return ProtocolResult("online", estimates, per_episode)


def evaluate_episodic(learner: Learner, sampler: EpisodeSampler, episodes: int, batch_size: int = 50,
                      device: str | torch.device = "cpu", progress: bool = False) -> ProtocolResult:
    """Query accuracy over episodes 0..episodes-1 of ``sampler``."""
    accuracy = np.zeros(episodes)
    learner.eval()
    with torch.no_grad():
        for ids in tqdm(list(_batches(episodes, batch_size)), desc="episodic eval", disable=not progress):
            accuracy[ids] = _episode_accuracy(learner, sampler.batch(ids), device).mean(1).cpu().numpy()
    key = f"{sampler.ways}-way-{sampler.shots}-shot"
    return ProtocolResult("episodic", {key: Estimate.from_samples(accuracy)}, {key: accuracy.tolist()})
