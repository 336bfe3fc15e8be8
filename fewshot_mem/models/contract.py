"""The learner contract: checks every registered model must pass, built-in or plug-in.

In the spirit of scikit-learn's ``check_estimator``: ``check_learner("mann")`` or
``check_learner("my_pkg.model:MyLearner")`` builds the learner for small tasks
and asserts what the benchmark relies on. Above all the online protocol must be
honest: the scores at step t may depend on x_1..x_t and y_1..y_{t-1} only.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.episodes import ClassPool, EpisodeSampler, LabelOffsetSampler
from .learner import Learner, TaskSpec
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
    logits = learner.online_logits(batch)
    assert logits.shape == (3, batch.labels.shape[1], *learner.task.output_shape), logits.shape
    loss = learner.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss), loss
    loss.backward()
    grads = [p.grad for p in learner.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reaches the parameters"


def check_online_is_causal(learner: Learner, pool: ClassPool) -> None:
    """Scores at step t are unchanged when x_{t+1..} and y_{t..} change."""
    sampler = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=3,
                                 encoding=learner.task.label_encoding)
    batch = sampler.batch(range(2))
    t = batch.labels.shape[1] // 2
    images = batch.images.clone()
    images[:, t + 1 :] = 255 - images[:, t + 1 :]
    codes = batch.previous_codes.clone()
    codes[:, t + 1 :] = codes[:, t + 1 :].flip(-1)  # the labels of steps t.. are shown from t+1 on
    altered = type(batch)(**{**vars(batch), "images": images, "previous_codes": codes})
    with torch.no_grad():
        before, after = learner.online_logits(batch), learner.online_logits(altered)
    assert torch.allclose(before[:, : t + 1], after[:, : t + 1]), "online scores look ahead in the sequence"


def check_episodic_shapes(learner: Learner, pool: ClassPool) -> None:
    batch = EpisodeSampler(pool, ways=learner.task.ways, shots=2, queries=2).batch(range(2))
    logits = learner.episodic_logits(batch)
    assert logits.shape == (2, 2 * learner.task.ways, learner.task.ways), logits.shape
    assert torch.isfinite(learner.loss(batch))


def check_episodes_are_independent(learner: Learner, pool: ClassPool) -> None:
    """An episode's scores do not depend on the other episodes in its batch."""
    online = LabelOffsetSampler(pool, ways=learner.task.ways, instances_per_class=2,
                                encoding=learner.task.label_encoding)
    together = learner.online_logits(online.batch(range(3)))
    alone = learner.online_logits(online.batch([1]))
    assert torch.allclose(together[1:2], alone, atol=1e-8), "online episodes interact within a batch"
    if learner.task.label_encoding == "one-hot":
        episodic = EpisodeSampler(pool, ways=learner.task.ways, shots=1, queries=2)
        together = learner.episodic_logits(episodic.batch(range(3)))
        alone = learner.episodic_logits(episodic.batch([2]))
        assert torch.allclose(together[2:3], alone, atol=1e-8), "episodic episodes interact within a batch"


def check_state_dict_round_trip(name: str, task: TaskSpec, hyperparameters: dict, pool: ClassPool) -> None:
    first = _build(name, task, hyperparameters)
    torch.manual_seed(123)
    second = resolve(name)(task, **hyperparameters).double().eval()
    second.load_state_dict(first.state_dict())
    batch = LabelOffsetSampler(pool, ways=task.ways, instances_per_class=2,
                               encoding=task.label_encoding).batch(range(2))
    with torch.no_grad():
        assert torch.allclose(first.online_logits(batch), second.online_logits(batch)), \
            "a learner is not determined by its state_dict"


CHECKS: tuple[Callable, ...] = (check_online_shapes_and_loss, check_online_is_causal,
                                check_episodic_shapes, check_episodes_are_independent)


def check_learner(name: str, hyperparameters: dict | None = None) -> None:
    """Runs every check on a registered learner (or ``package.module:Class``)."""
    hyperparameters = hyperparameters or {}
    pool = synthetic_pool()
    tasks = [TaskSpec(ways=3, image_shape=SMALL_IMAGE)]
    if resolve(name).supports_string_labels:
        tasks.append(TaskSpec(ways=3, label_encoding="string", image_shape=SMALL_IMAGE))
    for task in tasks:
        for check in CHECKS:
            if check is check_episodic_shapes and task.label_encoding != "one-hot":
                continue
            check(_build(name, task, hyperparameters), pool)
    check_state_dict_round_trip(name, TaskSpec(ways=3, image_shape=SMALL_IMAGE), hyperparameters, pool)
