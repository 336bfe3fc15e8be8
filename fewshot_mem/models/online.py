"""How metric and gradient learners take part in the online protocol.

At step t such a learner has seen the labelled prefix (x_1, y_1) .. (x_{t−1}, y_{t−1}).
It scores each label seen in the prefix its own way (distance to a prototype,
an adapted classifier). A label not yet seen has no evidence of its own, but it
is not unlikely: the first time a class appears, its label is one of the unseen
ones. So every unseen label gets the same *novelty score* ν, a single learned
logit. With k unseen labels the learner thus puts probability
k·e^ν / (k·e^ν + Σ_seen e^{s_c}) on "this is a new class", shared evenly among
the unseen labels, and ν is fitted by maximum likelihood on training-class
label-offset episodes after the learner itself has been trained
(:meth:`NoveltyScoring.calibrate_novelty`), so it sits on the scale of the
learner's own scores. Before calibration ν = 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import OnlineInputs, SequenceBatch


def seen_counts(previous_codes: torch.Tensor) -> torch.Tensor:
    """How often each label appeared among y_1..y_{t−1}: (B, T, N) one-hot codes -> (B, T, N).

    ``previous_codes[:, t]`` encodes y_{t−1}, so a running sum over t counts the prefix.
    """
    return previous_codes.cumsum(dim=1)


def previous_labels(previous_codes: torch.Tensor) -> torch.Tensor:
    """The labels shown so far, from one-hot codes: (B, T, N) -> (B, T−1) labels y_1..y_{T−1}.

    ``previous_codes[:, t]`` encodes y_{t−1}, so at step t the prefix labels are
    ``previous_labels(codes)[:, :t]``, read from codes 1..t, all of them shown by step t.
    (String codes name a label by its five characters, not by an index; learners with a
    novelty score take one-hot labels only.)
    """
    return previous_codes[:, 1:].argmax(dim=-1)


EVALUATION_BLOCK = 10  # episodes a per-prefix learner evaluates at once (fill_prefix_scores)
SMALLEST_MAPPED_BATCH = 4  # vmap over fewer episodes takes other kernels, which round differently


def scored_steps(inputs: OnlineInputs | SequenceBatch) -> torch.Tensor | None:
    """The (B, T) steps the evaluator reads, None: all (a labelled batch handed over whole, as the
    contract hands it, says nothing of them)."""
    return getattr(inputs, "scored", None)


def fill_prefix_scores(scores: torch.Tensor, score: Callable[[torch.Tensor, int], torch.Tensor],
                       scored: torch.Tensor | None = None, block: int | None = None) -> torch.Tensor:
    """Fills (B, T, N) ``scores`` at steps t ≥ 1 with ``score(chosen, t)``: the (len(chosen), N)
    scores of x_t for the episodes ``chosen`` (int64 indices into the batch), learned from their
    prefixes x_1..x_{t−1}. Step 0 is left alone (every label is unseen there: ν decides alone).

    The per-prefix learners (MAML, iMAML, the meta-learner LSTM) learn afresh at every step, so
    their cost grows with the square of the episode's length. Two things cut it without changing
    a read score: steps outside ``scored`` (B, T) are skipped (the online table reads 30 of 50
    steps, the cheap ones early in the episode among them), and ``block`` episodes at a time keep
    a step's work in cache (a hundred at once run half as fast). Chosen sets under
    ``SMALLEST_MAPPED_BATCH`` are padded with other episodes of the block: vmap over one episode
    takes the unbatched kernels, which round differently.
    """
    episodes, steps = scores.shape[:2]
    block = block or episodes
    for start in range(0, episodes, block):
        members = torch.arange(start, min(start + block, episodes), device=scores.device)
        for step in range(1, steps):
            wanted = torch.ones_like(members, dtype=torch.bool) if scored is None else scored[members, step]
            chosen = members[wanted]
            if len(chosen) == 0:
                continue
            missing = max(0, min(SMALLEST_MAPPED_BATCH, len(members)) - len(chosen))
            padded = torch.cat([chosen, members[~wanted][:missing]])
            scores[chosen, step] = score(padded, step)[: len(chosen)]
    return scores


def with_novelty(seen_scores: torch.Tensor, counts: torch.Tensor, novelty: torch.Tensor) -> torch.Tensor:
    """Scores of seen labels where counts > 0, the novelty score ν elsewhere: (B, T, N)."""
    return torch.where(counts > 0, seen_scores, novelty.to(seen_scores.dtype).expand_as(seen_scores))


class NoveltyScoring(nn.Module):
    """Mixin for learners that score unseen labels with a calibrated novelty logit ν."""

    supports_string_labels = False

    def _init_novelty(self) -> None:
        self.novelty = nn.Parameter(torch.zeros(()))  # ν, fitted by calibrate_novelty

    def seen_scores(self, inputs: OnlineInputs) -> torch.Tensor:
        """(B, T, N) scores of every label from the prefix alone; only seen labels' are used."""
        raise NotImplementedError

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        if inputs.previous_codes.shape[-1] != self.task.ways:
            raise ValueError(f"{type(self).__name__} takes part in the online protocol with one-hot labels only")
        codes = inputs.previous_codes.to(self.dtype)
        return with_novelty(self.seen_scores(inputs), seen_counts(codes), self.novelty)

    def calibrate(self, calibration_batches: list[SequenceBatch]) -> None:
        """``Learner.calibrate``: the novelty score ν, fitted on the calibration batches."""
        self.calibrate_novelty(calibration_batches)

    def calibrate_novelty(self, batches: list[SequenceBatch], iterations: int = 50) -> float:
        """Fits ν alone by maximum likelihood on labelled ``batches`` (training classes); returns it.

        The online log-likelihood is concave in ν, so L-BFGS finds its maximum.
        """
        self.eval()
        with torch.no_grad():
            cached = [(self.seen_scores(b.inputs()), seen_counts(b.previous_codes.to(self.dtype)), b.labels)
                      for b in batches]
        novelty = self.novelty.detach().clone().requires_grad_()
        optimizer = torch.optim.LBFGS([novelty], max_iter=iterations, line_search_fn="strong_wolfe")

        def negative_log_likelihood() -> torch.Tensor:
            optimizer.zero_grad()
            loss = sum(F.cross_entropy(with_novelty(s, c, novelty).flatten(0, 1), y.flatten())
                       for s, c, y in cached) / len(cached)
            loss.backward()
            return loss

        optimizer.step(negative_log_likelihood)
        with torch.no_grad():
            self.novelty.copy_(novelty.detach())
        return float(self.novelty.detach())
