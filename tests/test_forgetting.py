"""Forgetting: accuracy by lag (steps since the class was last shown), computed by the evaluator
from the labels, and the forgetting suite whose episodes outgrow a 128-slot memory."""

from __future__ import annotations

import inspect

import numpy as np
import torch

from fewshot_mem.data.episodes import LabelOffsetSampler, OnlineInputs
from fewshot_mem.evaluate import LAG_KEYS, evaluate_online, evaluate_online_tables, lag_masks, lags
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import Learner, TaskSpec
from fewshot_mem.models.mann import MANN
from fewshot_mem.suites import get_suite


def test_lag_is_the_steps_since_the_class_was_last_shown():
    labels = torch.tensor([[0, 1, 0, 0, 2, 1, 2, 0, 1]])
    assert lags(labels).tolist() == [[0, 0, 2, 1, 0, 4, 2, 4, 3]]  # 0: a first appearance, no lag
    masks = lag_masks(labels)[0]  # (buckets, T)
    assert masks[LAG_KEYS.index("lag_1")].nonzero().flatten().tolist() == [3]
    assert masks[LAG_KEYS.index("lag_2-3")].nonzero().flatten().tolist() == [2, 6, 8]
    assert masks[LAG_KEYS.index("lag_4-7")].nonzero().flatten().tolist() == [5, 7]
    assert masks.sum(0).tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 1]  # each repeat in one bucket, first ones in none


class RepeatsTheLastLabel(Learner):
    """Predicts y_{t−1}: right exactly where the class was shown at the previous step (lag 1)."""

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        return inputs.previous_codes


def test_accuracy_by_lag_is_measured_per_episode_from_the_labels():
    sampler = LabelOffsetSampler(synthetic_pool(), ways=3, instances_per_class=4)
    tables = evaluate_online_tables(RepeatsTheLastLabel(TaskSpec(3, image_shape=SMALL_IMAGE)), sampler, 12,
                                    batch_size=5)
    by_lag = tables["online-lag"]
    assert by_lag.estimates["lag_1"].mean == 1.0
    assert all(by_lag.estimates[k].mean == 0.0 for k in by_lag.estimates if k != "lag_1")
    labels = sampler.batch(np.arange(12)).labels
    has_lag_1 = (lags(labels) == 1).any(dim=1).tolist()
    assert [v is not None for v in by_lag.per_episode["lag_1"]] == has_lag_1  # None: no step of that lag
    assert by_lag.estimates["lag_1"].episodes == sum(has_lag_1)
    assert "lag_64+" not in by_lag.estimates  # 12-step episodes have no such lag
    learner = RepeatsTheLastLabel(TaskSpec(3, image_shape=SMALL_IMAGE))
    assert tables["online"].per_episode == evaluate_online(learner, sampler, 12).per_episode


def test_the_forgetting_suite_outgrows_a_128_slot_memory():
    suite = get_suite("omniglot-25way-forgetting")
    slots = inspect.signature(MANN).parameters["memory_slots"].default
    assert suite.ways * suite.instances_per_class > slots and suite.protocols == ("online",)


class RepeatsTheLastString(Learner):
    """Predicts y_{t−1}'s five characters: all five right at lag 1, some right elsewhere."""

    def online_logits(self, inputs: OnlineInputs) -> torch.Tensor:
        return inputs.previous_codes.unflatten(-1, (5, 5))  # (B, T, 5 characters, 5 values)


def test_string_labels_get_the_share_of_characters_right_beside_all_five():
    """Santoro et al. count a string only when all five characters are right, which moves late;
    the share of characters right is reported beside it (issue 19, item 4)."""
    sampler = LabelOffsetSampler(synthetic_pool(classes=8), ways=4, instances_per_class=3, encoding="string")
    learner = RepeatsTheLastString(TaskSpec(4, label_encoding="string", image_shape=SMALL_IMAGE))
    tables = evaluate_online_tables(learner, sampler, 6, batch_size=4, characters=True)
    batch = sampler.batch(np.arange(6))
    share = (batch.previous_codes.unflatten(-1, (5, 5)).argmax(-1) == batch.strings).float().mean(-1)  # (B, T)
    for p in (1, 2, 3):
        at = batch.instance_index == p
        expected = [float(share[e][at[e]].mean()) for e in range(6)]
        assert np.allclose(tables["online-characters"].per_episode[f"instance_{p}"], expected)
        strict = tables["online"].per_episode[f"instance_{p}"]
        assert all(c >= s for c, s in zip(tables["online-characters"].per_episode[f"instance_{p}"], strict))
    assert "online-characters" not in evaluate_online_tables(learner, sampler, 6, batch_size=4)  # asked for only
    one_hot = LabelOffsetSampler(synthetic_pool(classes=8), ways=4, instances_per_class=3)
    assert "online-characters" not in evaluate_online_tables(RepeatsTheLastLabel(TaskSpec(4, image_shape=SMALL_IMAGE)),
                                                             one_hot, 6, batch_size=4, characters=True)


def test_validation_logs_the_share_of_characters_for_string_labels():
    from fewshot_mem.bench import _validator
    suite = get_suite("omniglot-15way-strings")
    validate = _validator(suite, "online", synthetic_pool(classes=16, instances=20), 4, "cpu")
    figures = validate(RepeatsTheLastString(TaskSpec(15, label_encoding="string", image_shape=SMALL_IMAGE)))
    assert {"instance_2", "character_instance_2"} <= set(figures)
    assert figures["character_instance_2"] >= figures["instance_2"]
