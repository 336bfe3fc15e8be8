"""The per-prefix learners' online scores (``models.online.fill_prefix_scores``): only the steps
the evaluator reads are learned, in blocks of episodes, and the scores read do not change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from fewshot_mem.data.episodes import LabelOffsetSampler
from fewshot_mem.evaluate import evaluate_online
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec
from fewshot_mem.models.maml import MAMLLearner
from fewshot_mem.models.online import SMALLEST_MAPPED_BATCH, fill_prefix_scores


def recorded_calls(scored: torch.Tensor | None, block: int | None, shape=(7, 5, 3)):
    calls = []

    def score(chosen: torch.Tensor, step: int) -> torch.Tensor:
        calls.append((chosen.tolist(), step))
        return (100 * chosen + step).double().unsqueeze(1).expand(-1, shape[2])  # who, at which step

    return fill_prefix_scores(torch.full(shape, -1.0, dtype=torch.float64), score, scored, block), calls


def test_every_step_after_the_first_is_scored_for_every_episode_by_default():
    scores, calls = recorded_calls(None, None)
    assert calls == [(list(range(7)), step) for step in range(1, 5)]
    assert (scores[:, 0] == -1).all()  # step 0: ν decides alone
    assert torch.equal(scores[:, 1:, 0], (100 * torch.arange(7)[:, None] + torch.arange(1, 5)).double())


def test_only_the_steps_read_are_learned_and_small_sets_are_padded_within_their_block():
    scored = torch.zeros(7, 5, dtype=torch.bool)
    scored[2, 3] = scored[5, 3] = scored[6, 4] = True
    scores, calls = recorded_calls(scored, block=4)
    # Block 0..3: episode 2 at step 3, padded with 0, 1, 3; block 4..6: 5 at step 3, 6 at step 4.
    assert calls == [([2, 0, 1, 3], 3), ([5, 4, 6], 3), ([6, 4, 5], 4)]
    assert len(calls[0][0]) == SMALLEST_MAPPED_BATCH
    assert scores[2, 3, 0] == 203 and scores[5, 3, 0] == 503 and scores[6, 4, 0] == 604
    untouched = ~scored.unsqueeze(-1).expand_as(scores)
    assert (scores[untouched] == -1).all()  # padding episodes' scores are not written


def test_maml_scores_the_steps_read_as_it_scores_every_step():
    """In float32, as evaluated: blocks and skipped steps give the every-step scores (to float
    tolerance) and the same per-episode results through the evaluator."""
    torch.manual_seed(0)
    task = TaskSpec(3, image_shape=SMALL_IMAGE)
    learner = MAMLLearner(task, hidden_size=8).eval()
    sampler = LabelOffsetSampler(synthetic_pool(), ways=3, instances_per_class=4)
    batch = sampler.batch(np.arange(13))
    scored = (batch.instance_index == 2) | (batch.instance_index == 4)
    with torch.no_grad():
        every = learner.seen_scores(batch.inputs())
        read = learner.seen_scores(replace(batch.inputs(), scored=scored))
    assert torch.allclose(every[scored], read[scored], atol=1e-5)
    assert (read[~scored] == 0).all()  # skipped

    class EveryStep(MAMLLearner):  # the evaluation before steps were skipped: all of them, all at once
        def seen_scores(self, inputs):
            return super().seen_scores(replace(inputs, scored=None))

    before = EveryStep(task, hidden_size=8)
    before.load_state_dict(learner.state_dict())
    assert evaluate_online(before, sampler, 13, batch_size=13).per_episode == \
        evaluate_online(learner, sampler, 13, batch_size=13).per_episode
