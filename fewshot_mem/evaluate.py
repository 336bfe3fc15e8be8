"""One evaluator for every learner, on a suite's frozen test episodes.

* Online protocol: accuracy at instance positions (1st, 2nd, 3rd, 4th, 5th and
  10th appearance of a class), each the mean over episodes of that episode's
  accuracy at the position, with a 95% confidence interval 1.96·std/√n.
* Online protocol, forgetting: accuracy by *lag*, the steps since the current class was last
  shown (1, 2-3, 4-7, ... : ``LAG_BUCKETS``; first appearances have no lag and are left out),
  computed here from the labels, which the learner never sees. An episode without a step in a
  bucket has no value there (None), and a bucket's estimate is over the episodes that have one.
* Episodic protocol: query accuracy, mean ± 1.96·std/√n over episodes.

Learners are handed inputs only (``batch.inputs()``: images and the previous
labels' codes online; support images and labels and the query images
episodically); labels, targets and instance positions stay here. An online
sequence comes in one call, so its inputs hold the codes of later steps too;
that the scores at step t use none of them is what
``models.contract.check_online_is_causal`` checks, so a plug-in should pass
the contract before its scores are trusted. (Code running in this process could
still reach anything in memory; isolating an untrusted learner in its own
process, fed inputs alone, is the stronger guarantee.)

Per-episode accuracies are kept in the result, so anyone can recompute the
intervals (the leaderboard does). Evaluation runs without gradients; a learner
that needs them to adapt (MAML) turns them on inside its own adaptation.

Under ``torchrun`` each rank scores a contiguous share of the episodes and the
per-episode results are gathered in episode order, so every rank returns what one
process would. That holds because a learner scores each episode independently of
the others in its batch (``models.contract`` checks it for every model: MAML adapts
one clone per episode, batch norm never mixes episodes), so which episodes share a
batch does not matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .data.episodes import EpisodeBatch, EpisodeSampler, LabelOffsetSampler, SequenceBatch, correct_predictions
from .models.learner import Learner, batch_targets, predictions
from .results import format_estimate

if TYPE_CHECKING:
    from .data.episodes import ClassPool
    from .suites import Suite

INSTANCE_POSITIONS = (1, 2, 3, 4, 5, 10)
LAG_BUCKETS = ((1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 63), (64, None))  # (first, last) lag; None: no end
Z_95 = 1.96
CALIBRATION_EPISODES = 64  # training-class online episodes a learner may calibrate on


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
        return format_estimate(self)


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


def _episode_accuracy(learner: Learner, batch: SequenceBatch | EpisodeBatch, device,
                      characters: bool = False, scored: torch.Tensor | None = None) -> torch.Tensor:
    """(B, steps or queries) correctness of one batch; with ``characters``, (B, steps, 2): also the
    share of each string label's five characters that are right (the label's own correctness
    for one-hot labels). The learner is handed the inputs alone, online with the (B, T) steps
    ``scored`` that will be read (None: all); what it is scored against stays here."""
    inputs = batch.inputs() if scored is None else replace(batch.inputs(), scored=scored)
    guessed, targets = predictions(learner.logits(inputs.to(device))).cpu(), batch_targets(batch)
    correct = correct_predictions(guessed, targets).float()
    if not characters:
        return correct
    per_character = (guessed == targets).float().mean(-1) if targets.ndim == 3 else correct
    return torch.stack([correct, per_character], dim=-1)


def _batches(ids: np.ndarray, batch_size: int):
    for start in range(0, len(ids), batch_size):
        yield ids[start:start + batch_size]


def _per_episode(learner: Learner, score: Callable[[np.ndarray], torch.Tensor], episodes: int, batch_size: int,
                 description: str, progress: bool) -> np.ndarray:
    """``score(ids)`` (one row per episode) for episodes 0..episodes-1, in order, as float64.

    Each rank scores its share (all of them in one process); the rows are gathered.
    """
    learner.eval()
    rows: list[np.ndarray] = []
    with torch.no_grad():
        for ids in tqdm(list(_batches(distributed.shard_range(episodes), batch_size)), desc=description,
                        disable=not (progress and distributed.is_main())):
            rows.extend(score(ids).cpu().numpy().astype(np.float64))
    return np.stack(distributed.gather(rows))


def lag_key(bucket: tuple[int, int | None]) -> str:
    first, last = bucket
    return f"lag_{first}" if first == last else f"lag_{first}+" if last is None else f"lag_{first}-{last}"


LAG_KEYS = tuple(lag_key(b) for b in LAG_BUCKETS)


def lags(labels: torch.Tensor) -> torch.Tensor:
    """Steps since each step's class was last shown: (B, T) labels -> (B, T) int64, 0 where the class
    appears for the first time (no lag)."""
    steps = torch.arange(labels.shape[1], device=labels.device)
    same = labels.unsqueeze(2) == labels.unsqueeze(1)  # (B, T, T): step t's class shown at step s
    earlier = steps.unsqueeze(1) > steps.unsqueeze(0)  # (T, T): s < t
    last = torch.where(same & earlier, steps, -1).amax(dim=2)  # (B, T): the last such s, −1 if none
    return torch.where(last >= 0, steps - last, 0)


def lag_masks(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) labels -> (B, buckets, T): which steps fall in each of ``LAG_BUCKETS``."""
    lag = lags(labels).unsqueeze(1)  # (B, 1, T)
    return torch.cat([(lag >= first) & (lag <= last) if last else lag >= first for first, last in LAG_BUCKETS],
                     dim=1)


def _table(per_episode: dict[str, np.ndarray]) -> ProtocolResult:
    """An online table: each statistic's estimate over the episodes that have a value for it (an
    episode cut short may show a class fewer times than a position; a lag bucket may be empty),
    and the per-episode values, None where an episode has none."""
    return ProtocolResult("online", {key: Estimate.from_samples(values[np.isfinite(values)])
                                     for key, values in per_episode.items()},
                          {key: [None if math.isnan(x) else x for x in values.tolist()]
                           for key, values in per_episode.items()})


def evaluate_online(learner: Learner, sampler: LabelOffsetSampler, episodes: int, batch_size: int = 100,
                    device: str | torch.device = "cpu", progress: bool = False,
                    positions: tuple[int, ...] = INSTANCE_POSITIONS) -> ProtocolResult:
    """Accuracy by instance position over episodes 0..episodes-1 of ``sampler``."""
    return evaluate_online_tables(learner, sampler, episodes, batch_size, device, progress, positions,
                                  lag=False)["online"]


def evaluate_online_tables(learner: Learner, sampler: LabelOffsetSampler, episodes: int, batch_size: int = 100,
                           device: str | torch.device = "cpu", progress: bool = False,
                           positions: tuple[int, ...] = INSTANCE_POSITIONS, characters: bool = False,
                           lag: bool = True) -> dict[str, ProtocolResult]:
    """From one pass over episodes 0..episodes-1 of ``sampler``: accuracy by instance position
    ("online") and, with ``lag``, by lag ("online-lag", the buckets some episode has a step in);
    with ``characters`` and string labels, also the share of characters right by instance position
    ("online-characters"), which moves long before all five are right at once. The learner is told
    which steps these read (``OnlineInputs.scored``), so that it may skip the others."""
    positions = tuple(p for p in positions if p <= min(sampler.instances_per_class, sampler.steps))
    characters = characters and sampler.encoding == "string"
    buckets = len(LAG_KEYS) if lag else 0

    def score(ids: np.ndarray) -> torch.Tensor:  # (B, positions + lag buckets [+ positions])
        batch: SequenceBatch = sampler.batch(ids)
        at = torch.stack([batch.instance_index == p for p in positions], dim=1)  # (B, P, T): N steps each
        if lag:
            at = torch.cat([at, lag_masks(batch.labels)], dim=1)  # (B, P + L, T)
        correct = _episode_accuracy(learner, batch, device, characters=True, scored=at.any(1))  # (B, T, 2)
        at = at.float()
        rows = (correct[..., 0].unsqueeze(1) * at).sum(2) / at.sum(2)  # NaN: no step of the episode in a bucket
        if not characters:
            return rows
        at_position = at[:, : len(positions)]
        return torch.cat([rows, (correct[..., 1].unsqueeze(1) * at_position).sum(2) / at_position.sum(2)], dim=1)

    rows = _per_episode(learner, score, episodes, batch_size, "online eval", progress)
    tables = {"online": _table({f"instance_{p}": rows[:, c] for c, p in enumerate(positions)})}
    if lag:
        tables["online-lag"] = _table({key: rows[:, len(positions) + c] for c, key in enumerate(LAG_KEYS)
                                       if np.isfinite(rows[:, len(positions) + c]).any()})
    if characters:
        tables["online-characters"] = _table({f"instance_{p}": rows[:, len(positions) + buckets + c]
                                              for c, p in enumerate(positions)})
    return tables


def evaluate_episodic(learner: Learner, sampler: EpisodeSampler, episodes: int, batch_size: int = 50,
                      device: str | torch.device = "cpu", progress: bool = False) -> ProtocolResult:
    """Query accuracy over episodes 0..episodes-1 of ``sampler``."""
    accuracy = _per_episode(learner, lambda ids: _episode_accuracy(learner, sampler.batch(ids), device).mean(1),
                            episodes, batch_size, "episodic eval", progress)
    key = f"{sampler.ways}-way-{sampler.shots}-shot"
    return ProtocolResult("episodic", {key: Estimate.from_samples(accuracy)}, {key: accuracy.tolist()})


def calibration_batches(suite: "Suite", train_pool: "ClassPool", device: str | torch.device = "cpu",
                        episodes: int | None = None) -> list[SequenceBatch]:
    """The labelled training-class online episodes handed to ``Learner.calibrate`` before a suite is
    scored (none for a suite without the online protocol): fixed by the suite, so a re-evaluated
    checkpoint is calibrated exactly as it was when it was first scored."""
    if "online" not in suite.protocols:
        return []
    sampler = suite.online_sampler(train_pool, seed=suite.validation_seed + 1)
    return [sampler.batch(np.arange(episodes or CALIBRATION_EPISODES)).to(device)]


def evaluate_on_suite(learner: Learner, suite: "Suite", pools: dict[str, "ClassPool"], episodes: int | None = None,
                      device: str = "cpu", progress: bool = False, lag: bool = False) -> dict[str, dict]:
    """Every table of ``suite`` for a trained learner, as the results JSON stores them.

    The one evaluation path of the bench, of ``leaderboard verify`` and of ``fewshot_mem.evaluate``,
    so a re-evaluated checkpoint is scored exactly as it was when submitted: the learner is
    calibrated first (``Learner.calibrate``, on training-class episodes, deterministically from
    its weights; most learners do nothing), then scored on the first ``episodes`` (default: all)
    frozen test episodes of each table. ``lag``: the online table's pass also gives accuracy by lag,
    returned as "online-lag" (kept out of the suite's tables by the bench: see ``bench.run_model``).
    """
    unanswered = [protocol for protocol in suite.protocols if protocol not in learner.protocols]
    if unanswered:
        raise learner.unsupported(unanswered[0])
    learner.to(device)
    batches = calibration_batches(suite, pools["train"], device)
    if batches:
        learner.calibrate(batches)
    tables = {}
    for table, sampler in suite.test_samplers(pools["test"]).items():
        if table == "online" and lag:
            tables.update({name: found.to_json() for name, found in evaluate_online_tables(
                learner, sampler, episodes or suite.test_episodes, device=device, progress=progress).items()})
            continue
        evaluate = evaluate_online if table == "online" else evaluate_episodic
        tables[table] = evaluate(learner, sampler, episodes or suite.test_episodes, device=device,
                                 progress=progress).to_json()
    return tables


def evaluate_forgetting(learner: Learner, suite: "Suite", pools: dict[str, "ClassPool"], episodes: int | None = None,
                        device: str = "cpu", progress: bool = False) -> dict | None:
    """The online table's accuracy by lag ("online-lag", as the results JSON stores it under
    ``forgetting``) for a learner ``evaluate_on_suite`` has just scored (so calibrated); None for a
    suite without the online protocol. A pass of its own, so that the suite's tables are timed
    apart from it: a per-prefix learner learns at every step here, not at the positions alone."""
    sampler = suite.test_samplers(pools["test"]).get("online")
    if sampler is None:
        return None
    return evaluate_online_tables(learner, sampler, episodes or suite.test_episodes, device=device,
                                  progress=progress)["online-lag"].to_json()
