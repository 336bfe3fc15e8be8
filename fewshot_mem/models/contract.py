"""The learner contract: checks every registered model must pass, built-in or plug-in.

In the spirit of scikit-learn's ``check_estimator``: ``check_learner("mann")`` or
``check_learner("my_pkg.model:MyLearner")`` builds the learner for small tasks
and asserts what the benchmark relies on. Above all a learner must be honest:
the online scores at step t may depend on x_1..x_t and y_1..y_{t-1} only, and
episodic scores on the support set and the query images only. The evaluator
hands learners inputs alone (``batch.inputs()``); the honesty checks hand them
the whole labelled batch with the answers garbled, so that a learner that reads
anything it was not given (a label, a target, an instance position) fails too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from ..data.episodes import (STRING_SYMBOLS, ClassPool, EpisodeBatch, EpisodeSampler, LabelOffsetSampler,
                             SequenceBatch, encode_labels)
from .fast_path_check import check_run_matches_steps, overrides_run
from .learner import Learner, SequenceLearner, TaskSpec
from .registry import resolve

SMALL_IMAGE = (1, 20, 20)  # Santoro's size; Conv-4 keeps 2x2 maps after four strided blocks


def synthetic_pool(classes: int = 12, instances: int = 6, image_shape=SMALL_IMAGE, seed: int = 0) -> ClassPool:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (classes, instances, *image_shape), dtype=torch.uint8, generator=generator)
    return ClassPool("synthetic", images, tuple(f"class{c}" for c in range(classes)))


def _build(name: str, task: TaskSpec, hyperparameters: dict) -> Learner:
    """The learner in float64 and in evaluation mode (batch norm uses its running statistics)."""
    torch.manual_seed(0)
    return resolve(name)(task, **hyperparameters).double().eval()


def check_online_shapes_and_loss(learner: Learner, pool: ClassPool) -> None:
    batch = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=3,
                               encoding=learner.task.label_encoding).batch(range(3))
    logits = learner.online_logits(batch.inputs())
    assert logits.shape == (3, batch.labels.shape[1], *learner.task.output_shape), logits.shape
    loss = learner.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss), loss
    loss.backward()
    grads = [p.grad for p in learner.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reaches the parameters"


def garbled_after(batch: SequenceBatch, cut: int, shift: int = 1) -> SequenceBatch:
    """``batch`` with every answer from step ``cut`` on, and every image after it, replaced by garbage.

    Step ``cut`` may see x_cut but not y_cut, which the codes show from step cut+1 on. Labels
    move by ``shift`` in 1..N−1 slots (mod N), so every one of them changes (a reversal would
    leave the middle label of an odd N alone); string labels move each character by one symbol.
    Codes, previous codes and targets follow the new labels; instance positions and instances
    become other numbers; images are inverted (255 − x differs from x for every uint8 value).
    """
    ways = batch.classes.shape[1]
    assert 0 < shift < ways, "a shift of 0 or N would keep the labels"
    later = torch.arange(batch.labels.shape[1]) >= cut  # (T,): steps whose answers are garbled
    labels = torch.where(later, (batch.labels + shift) % ways, batch.labels)
    strings = None if batch.strings is None else \
        torch.where(later[:, None], (batch.strings + 1) % STRING_SYMBOLS, batch.strings)
    codes = encode_labels(labels, ways, strings)
    images = batch.images.clone()
    images[:, cut + 1 :] = 255 - images[:, cut + 1 :]
    return SequenceBatch(images=images, labels=labels, codes=codes,
                         previous_codes=torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], dim=1),
                         instance_index=torch.where(later, batch.instance_index + 100, batch.instance_index),
                         classes=batch.classes, instances=torch.where(later, batch.instances + 1, batch.instances),
                         strings=strings)


def check_online_is_causal(learner: Learner, pool: ClassPool) -> None:
    """Scores at steps ..t are unchanged when x_{t+1..} and every answer from step t on change,
    at cut points from the first step to the last but one.

    The learner is handed the whole labelled batch, not just its inputs, so that reading a label,
    a target or an instance position is caught like looking ahead in the inputs."""
    sampler = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=3,
                                 encoding=learner.task.label_encoding)
    batch = sampler.batch(range(2))
    steps, ways = batch.labels.shape[1], learner.task.ways
    with torch.no_grad():
        before = learner.online_logits(batch)
        for number, cut in enumerate((0, 1, steps // 3, steps // 2, steps - 2)):
            after = learner.online_logits(garbled_after(batch, cut, shift=1 + number % (ways - 1)))
            assert torch.allclose(before[:, : cut + 1], after[:, : cut + 1]), \
                f"online scores up to step {cut} depend on what comes after it (labels, images, ...)"


def check_online_scored_steps(learner: Learner, pool: ClassPool) -> None:
    """The scores at the steps the evaluator reads are the same whether or not it says which
    (``OnlineInputs.scored``): a learner may skip the work of the other steps, never change a
    score it is read at."""
    batch = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=3,
                               encoding=learner.task.label_encoding).batch(range(5))
    scored = torch.rand(batch.labels.shape, generator=torch.Generator().manual_seed(0)) < 0.4  # (B, T)
    with torch.no_grad():
        every = learner.online_logits(batch.inputs())
        some = learner.online_logits(replace(batch.inputs(), scored=scored))
    assert torch.allclose(every[scored], some[scored]), "online scores change with the steps that will be read"


def check_episodic_ignores_answers(learner: Learner, pool: ClassPool) -> None:
    """Query scores are unchanged when the query labels and instances change; handed the whole
    labelled batch, as in ``check_online_is_causal``."""
    batch = EpisodeSampler(pool, ways=learner.task.ways, shots=1, queries=2).batch(range(2))
    garbled = EpisodeBatch(**{**vars(batch), "query_labels": (batch.query_labels + 1) % learner.task.ways,
                              "query_instances": batch.query_instances + 1})
    with torch.no_grad():
        assert torch.allclose(learner.episodic_logits(batch), learner.episodic_logits(garbled)), \
            "episodic scores depend on the query labels"


def check_episodic_shapes(learner: Learner, pool: ClassPool) -> None:
    batch = EpisodeSampler(pool, ways=learner.task.ways, shots=2, queries=2).batch(range(2))
    logits = learner.episodic_logits(batch.inputs())
    assert logits.shape == (2, 2 * learner.task.ways, learner.task.ways), logits.shape
    assert torch.isfinite(learner.loss(batch))


def check_episodes_are_independent(learner: Learner, pool: ClassPool) -> None:
    """An episode's scores do not depend on the other episodes in its batch."""
    if "online" in learner.protocols:
        online = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=2,
                                    encoding=learner.task.label_encoding)
        together = learner.online_logits(online.batch(range(3)).inputs())
        alone = learner.online_logits(online.batch([1]).inputs())
        assert torch.allclose(together[1:2], alone, atol=1e-8), "online episodes interact within a batch"
    if learner.task.label_encoding == "one-hot" and "episodic" in learner.protocols:
        episodic = EpisodeSampler(pool, ways=learner.task.ways, shots=1, queries=2)
        together = learner.episodic_logits(episodic.batch(range(3)).inputs())
        alone = learner.episodic_logits(episodic.batch([2]).inputs())
        assert torch.allclose(together[2:3], alone, atol=1e-8), "episodic episodes interact within a batch"


def check_state_dict_round_trip(name: str, task: TaskSpec, hyperparameters: dict, pool: ClassPool) -> None:
    first = _build(name, task, hyperparameters)
    torch.manual_seed(123)
    second = resolve(name)(task, **hyperparameters).double().eval()
    second.load_state_dict(first.state_dict())
    batch = (LabelOffsetSampler(pool, ways=task.ways, instances_per_class=2, encoding=task.label_encoding)
             if "online" in first.protocols else EpisodeSampler(pool, ways=task.ways, shots=1, queries=2)
             ).batch(range(2)).inputs()
    with torch.no_grad():
        assert torch.allclose(first.logits(batch), second.logits(batch)), \
            "a learner is not determined by its state_dict"


def check_run_override(learner: Learner, pool: ClassPool) -> None:
    """A sequence learner that overrides ``run`` (for speed) computes what its ``step`` loop does:
    scores, final state and every gradient, in float64 (``fast_path_check``)."""
    if isinstance(learner, SequenceLearner) and overrides_run(learner):
        check_run_matches_steps(learner)


CHECKS: tuple[Callable, ...] = (check_online_shapes_and_loss, check_online_is_causal, check_online_scored_steps,
                                check_episodic_shapes, check_episodic_ignores_answers,
                                check_episodes_are_independent)
EPISODIC_CHECKS = (check_episodic_shapes, check_episodic_ignores_answers)  # one-hot labels only
ONLINE_CHECKS = (check_online_shapes_and_loss, check_online_is_causal, check_online_scored_steps)


def _applies(check: Callable, learner_class: type[Learner], task: TaskSpec) -> bool:
    """Whether ``check`` concerns what the learner answers: a protocol it supports (an adapter may
    answer one), in a label encoding that protocol has (the episodic one: one-hot)."""
    if check in EPISODIC_CHECKS:
        return "episodic" in learner_class.protocols and task.label_encoding == "one-hot"
    return check not in ONLINE_CHECKS or "online" in learner_class.protocols


def check_learner(name: str, hyperparameters: dict | None = None) -> None:
    """Runs every check on a registered learner (or ``package.module:Class``), for the protocols
    it answers (``Learner.protocols``), built with ``hyperparameters`` (default: its class's
    ``test_hyperparameters``)."""
    hyperparameters = resolve(name).test_hyperparameters if hyperparameters is None else hyperparameters
    pool = synthetic_pool()
    tasks = [TaskSpec(ways=3, image_shape=SMALL_IMAGE)]
    if resolve(name).supports_string_labels:
        tasks.append(TaskSpec(ways=3, label_encoding="string", image_shape=SMALL_IMAGE))
    for task in tasks:
        for check in CHECKS:
            if _applies(check, resolve(name), task):
                check(_build(name, task, hyperparameters), pool)
        check_run_override(_build(name, task, hyperparameters), pool)
    check_state_dict_round_trip(name, TaskSpec(ways=3, image_shape=SMALL_IMAGE), hyperparameters, pool)
