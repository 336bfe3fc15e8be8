"""MAML's one functional adaptation (``FunctionalMAML``) against learn2learn's ``MAML.clone()`` /
``adapt()``, which served the episodic protocol before: scores of both protocols and the
meta-gradient, in float64, on a tiny Conv-4. The reference is recomputed here with learn2learn,
so a change to the steps (sign, step size, a lost second-order term, batch norm statistics)
fails these tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.l2l import learn2learn as l2l
from fewshot_mem.models.learner import TaskSpec, images_to_float
from fewshot_mem.models.maml import MAMLLearner
from fewshot_mem.models.online import previous_labels

TASK = TaskSpec(ways=3, image_shape=SMALL_IMAGE)


def tiny_maml(first_order: bool = False) -> MAMLLearner:
    torch.manual_seed(0)
    return MAMLLearner(TASK, hidden_size=4, inner_steps=2, test_inner_steps=3, inner_lr=0.4,
                       first_order=first_order).double()


def learn2learn_clone(learner: MAMLLearner, images: torch.Tensor, labels: torch.Tensor):
    """The old path: a learn2learn clone of the learner's own module, adapted as the learner adapts."""
    maml = l2l.algorithms.MAML(learner.maml.module, lr=learner.maml.lr, first_order=learner.maml.first_order)
    inputs = images_to_float(images).double()
    with torch.enable_grad():
        clone = maml.clone(first_order=None if learner.training else True)
        for _ in range(learner.inner_steps if learner.training else learner.test_inner_steps):
            clone.adapt(F.cross_entropy(clone(inputs), labels))
    return clone


def learn2learn_episodic(learner: MAMLLearner, batch) -> torch.Tensor:
    return torch.stack([learn2learn_clone(learner, s, y)(images_to_float(q).double())
                        for s, y, q in zip(batch.support_images, batch.support_labels, batch.query_images)])


def learn2learn_seen_scores(learner: MAMLLearner, batch) -> torch.Tensor:
    """Episode by episode, step by step: a clone adapted on the prefix scores x_t with it."""
    images, labels = batch.images, previous_labels(batch.previous_codes)
    scores = torch.zeros(*images.shape[:2], TASK.ways, dtype=torch.float64)
    for b in range(images.shape[0]):
        for t in range(1, images.shape[1]):
            clone = learn2learn_clone(learner, images[b, :t], labels[b, :t])
            scores[b, t] = clone(images_to_float(images[b, : t + 1]).double())[-1]
    return scores


def episodes():
    return EpisodeSampler(synthetic_pool(), ways=3, shots=2, queries=2).batch([0, 1])


def sequences():
    return LabelOffsetSampler(synthetic_pool(), ways=3, instances_per_class=2).batch([0, 1])


def assert_same(new: torch.Tensor, old: torch.Tensor) -> None:
    torch.testing.assert_close(new, old, rtol=1e-10, atol=1e-12)


def test_evaluation_scores_of_both_protocols_equal_learn2learns_clones():
    learner = tiny_maml().eval()
    with torch.no_grad():
        assert_same(learner.episodic_logits(episodes().inputs()), learn2learn_episodic(learner, episodes()))
        assert_same(learner.seen_scores(sequences().inputs()), learn2learn_seen_scores(learner, sequences()))


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("protocol", ["episodic", "online"])
def test_meta_gradient_equals_learn2learns(protocol, first_order):
    """Second order through two inner steps (and first-order MAML), in training mode."""
    learner = tiny_maml(first_order).train()
    batch = episodes() if protocol == "episodic" else sequences()
    if protocol == "episodic":
        new, old = learner.episodic_logits(batch.inputs()), learn2learn_episodic(learner, batch)
    else:
        new, old = learner.seen_scores(batch.inputs()), learn2learn_seen_scores(learner, batch)
    assert_same(new, old)
    weights = list(learner.maml.module.parameters())
    target = torch.randn_like(new)  # a loss whose gradient weighs every score differently
    new_gradient = torch.autograd.grad((new * target).sum(), weights)
    old_gradient = torch.autograd.grad((old * target).sum(), weights)
    for n, o in zip(new_gradient, old_gradient):
        assert o.abs().sum() > 0
        assert_same(n, o)
