"""Learners that cheat: the contract rejects them, and the evaluator never hands them the answers.

``AnswerReader`` reads the label it is asked to predict (``labels[:, t]`` online, the query
labels episodically) wherever the batch it is handed carries it; ``LookAhead`` reads y_t from
the only place the online inputs hold it, the code shown at step t+1. Each test here fails
against the evaluator and contract before issue 21: the evaluator handed learners the whole
labelled batch (``AnswerReader`` then scored 100%), and the contract garbled only the images
and the previous codes after one cut (``AnswerReader`` passed it).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.evaluate import evaluate_episodic, evaluate_online
from fewshot_mem.models.contract import (SMALL_IMAGE, check_episodic_ignores_answers, check_learner,
                                         check_online_is_causal, check_online_scored_steps, synthetic_pool)
from fewshot_mem.models.learner import Learner, TaskSpec

WAYS = 3
SURE = 10.0  # the score a cheater gives the answer it read


class AnswerReader(Learner):
    """Scores the true label highest whenever the batch it is handed carries the labels, and
    label 0 when it does not. (A learned scale lets it pass the contract's gradient check.)"""

    def __init__(self, task: TaskSpec) -> None:
        super().__init__(task)
        self.scale = torch.nn.Parameter(torch.tensor(SURE))

    def _read(self, answers: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
        if answers is None:
            answers = torch.zeros(shape, dtype=torch.long)
        return self.scale * F.one_hot(answers, self.task.ways).to(self.scale.dtype)

    def online_logits(self, inputs) -> torch.Tensor:
        return self._read(getattr(inputs, "labels", None), inputs.images.shape[:2])

    def episodic_logits(self, inputs) -> torch.Tensor:
        return self._read(getattr(inputs, "query_labels", None), inputs.query_images.shape[:2])


class LookAhead(AnswerReader):
    """Reads y_t from ``previous_codes[:, t + 1]``, the code of the next step (and guesses at the last)."""

    def online_logits(self, inputs) -> torch.Tensor:
        codes = inputs.previous_codes
        return self.scale * torch.cat([codes[:, 1:], torch.zeros_like(codes[:, :1])], dim=1).to(self.scale.dtype)


class ReadsTheScoredSteps(AnswerReader):
    """Answers differently at the steps it is told will be read (``OnlineInputs.scored``), which
    derive from instance positions: a learner could try to learn from them where a class recurs."""

    def online_logits(self, inputs) -> torch.Tensor:
        scored = getattr(inputs, "scored", None)
        guesses = torch.zeros(inputs.images.shape[:2], dtype=torch.long) if scored is None else scored.long()
        return self.scale * F.one_hot(guesses, self.task.ways).to(self.scale.dtype)


TASK = TaskSpec(WAYS, image_shape=SMALL_IMAGE)


def test_a_learner_handed_the_labelled_batch_would_read_the_answers():
    """The attack is real: handed the labelled batch, as the evaluator did before, it is always right."""
    batch = LabelOffsetSampler(synthetic_pool(), ways=WAYS, instances_per_class=4).batch(range(4))
    assert (AnswerReader(TASK).online_logits(batch).argmax(-1) == batch.labels).all()


@pytest.mark.parametrize("check", [check_online_is_causal, check_episodic_ignores_answers])
def test_the_contract_rejects_a_learner_that_reads_the_answers(check):
    with pytest.raises(AssertionError, match="depend"):
        check(AnswerReader(TASK), synthetic_pool())


def test_the_contract_rejects_a_learner_that_looks_ahead_in_its_inputs():
    with pytest.raises(AssertionError, match="depend on what comes after"):
        check_online_is_causal(LookAhead(TASK), synthetic_pool())


def test_check_learner_rejects_a_cheating_plugin_by_name():
    for name in ("test_cheating:AnswerReader", "test_cheating:LookAhead"):
        with pytest.raises(AssertionError, match="depend on what comes after"):
            check_learner(name)


def test_through_the_evaluator_the_answer_reader_scores_chance():
    """Handed inputs only, it sees no label and always says label 0: right exactly once in N at
    every instance position (each position is shown once per class) and on 1/N of the queries."""
    pool = synthetic_pool()
    online = evaluate_online(AnswerReader(TASK), LabelOffsetSampler(pool, ways=WAYS, instances_per_class=4), 6,
                             batch_size=4)
    for estimate in online.estimates.values():
        assert estimate.mean == pytest.approx(1 / WAYS)
    episodic = evaluate_episodic(AnswerReader(TASK), EpisodeSampler(pool, ways=WAYS, shots=1, queries=2), 6)
    assert [estimate.mean for estimate in episodic.estimates.values()] == [pytest.approx(1 / WAYS)]


def test_the_contract_rejects_a_learner_that_answers_by_the_steps_read():
    with pytest.raises(AssertionError, match="change with the steps that will be read"):
        check_online_scored_steps(ReadsTheScoredSteps(TASK), synthetic_pool())
