"""MAML and prototypical networks: adaptation, prototypes, online adapters, novelty."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot_mem.data.episodes import ClassPool, EpisodeSampler, LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.learner import TaskSpec, images_to_float
from fewshot_mem.models.maml import MAMLLearner
from fewshot_mem.models.online import seen_counts, with_novelty
from fewshot_mem.models.protonet import ProtoNetLearner

TASK = TaskSpec(ways=3, image_shape=SMALL_IMAGE)


def test_maml_adaptation_lowers_the_support_loss():
    torch.manual_seed(0)
    learner = MAMLLearner(TASK, hidden_size=8, inner_lr=0.4, test_inner_steps=3).eval()
    batch = EpisodeSampler(synthetic_pool(), ways=3, shots=2, queries=1).batch([0])
    support, labels = batch.support_images[0], batch.support_labels[0]
    inputs = images_to_float(support)
    before = F.cross_entropy(learner.maml(inputs), labels)
    after = F.cross_entropy(learner.maml(inputs, learner.adapted(support, labels)), labels)
    assert after < before
    assert learner.maml.module[2].weight.grad is None  # adapting new weights leaves the learner's alone


def test_maml_meta_gradient_reaches_the_initial_weights():
    torch.manual_seed(0)
    learner = MAMLLearner(TASK, hidden_size=8).train()
    learner.loss(EpisodeSampler(synthetic_pool(), ways=3, shots=1, queries=2).batch([0, 1])).backward()
    assert learner.maml.module[0][0].conv.weight.grad.abs().sum() > 0


def test_prototypes_are_class_means_of_the_embeddings():
    torch.manual_seed(0)
    learner = ProtoNetLearner(TASK, hidden_size=8).eval()
    batch = EpisodeSampler(synthetic_pool(), ways=3, shots=3, queries=2).batch([0])
    with torch.no_grad():
        support, queries = learner.embed(batch.support_images)[0], learner.embed(batch.query_images)[0]
        means = torch.stack([support[batch.support_labels[0] == c].mean(0) for c in range(3)])
        expected = -torch.cdist(queries, means).pow(2)
        assert torch.allclose(learner.episodic_logits(batch)[0], expected, atol=1e-4)


def test_running_prototypes_equal_the_means_of_the_labelled_prefix():
    torch.manual_seed(0)
    learner = ProtoNetLearner(TASK, hidden_size=8).eval()
    batch = LabelOffsetSampler(synthetic_pool(), ways=3, instances_per_class=4).batch([0])
    with torch.no_grad():
        embedded = learner.embed(batch.images)[0]
        scores = learner.seen_scores(batch.inputs())[0]
    labels = batch.labels[0]
    for t in range(1, 12):
        for c in labels[:t].unique().tolist():
            prototype = embedded[:t][labels[:t] == c].mean(0)
            assert torch.allclose(scores[t, c], -(embedded[t] - prototype).pow(2).sum(), atol=1e-4)


def test_unseen_labels_get_the_novelty_score_and_seen_ones_their_own():
    codes = F.one_hot(torch.tensor([[0, 2, 0]]), 3).float()  # y_1 = 0, y_2 = 2, y_3 = 0
    previous = torch.cat([torch.zeros(1, 1, 3), codes[:, :-1]], 1)
    counts = seen_counts(previous)
    assert counts[0].tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 1]]
    scores = with_novelty(torch.full((1, 3, 3), 5.0), counts, torch.tensor(-1.0))
    assert scores[0].tolist() == [[-1, -1, -1], [5, -1, -1], [5, -1, 5]]


def real_pool(omniglot, split: str) -> ClassPool:
    return omniglot.pool(split, 20)


def test_online_adapters_predict_at_every_step_and_favour_unseen_labels_at_first_sight(omniglot):
    """After calibration on training classes, a class's first appearance is mostly given an unseen label."""
    torch.manual_seed(0)
    train = LabelOffsetSampler(real_pool(omniglot, "vinyals/train"), 5, 10, seed=0)
    test = LabelOffsetSampler(real_pool(omniglot, "vinyals/test"), 5, 10, seed=1)
    for learner in (ProtoNetLearner(TaskSpec(5), hidden_size=16), MAMLLearner(TaskSpec(5), hidden_size=8)):
        episodes = 40 if isinstance(learner, ProtoNetLearner) else 2
        learner.calibrate_novelty([train.batch(range(episodes))])
        batch = test.batch(range(episodes))
        with torch.no_grad():
            logits = learner.eval().online_logits(batch.inputs())
        assert logits.shape == (episodes, 50, 5) and torch.isfinite(logits).all()
        predicted = logits.argmax(-1)
        counts = seen_counts(batch.previous_codes)
        predicted_unseen = counts.gather(-1, predicted.unsqueeze(-1))[..., 0] == 0
        first = batch.instance_index == 1
        later = batch.instance_index > 1
        assert predicted_unseen[first & (batch.instance_index.cumsum(1) > 1)].float().mean() > 0.5
        assert predicted_unseen[first].float().mean() > predicted_unseen[later].float().mean()

