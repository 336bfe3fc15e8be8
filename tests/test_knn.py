"""The kNN baselines: votes from the labelled prefix alone, k larger than the prefix, their
predictions against a hand-written nearest neighbour, and a budget that trains nothing."""

from __future__ import annotations

import numpy as np
import torch

from fewshot_mem.budgets import recipe
from fewshot_mem.data.episodes import EpisodeSampler, LabelOffsetSampler
from fewshot_mem.models.contract import SMALL_IMAGE, synthetic_pool
from fewshot_mem.models.knn import KNNPixelsLearner, neighbour_votes, prefix_votes
from fewshot_mem.models.learner import TaskSpec, predictions
from fewshot_mem.suites import get_suite
from fewshot_mem.train import fit


def test_each_step_votes_from_its_prefix_alone():
    features = np.array([[0.0], [10.0], [0.5], [9.0], [0.2]])
    labels = np.array([1, 0, 1, 0])  # y_1..y_4
    votes = prefix_votes(features, labels, neighbours=1, symbols=2)[:, 0]
    assert votes[0].tolist() == [0, 0]  # no prefix: no votes
    assert votes[1].tolist() == [0, 1]  # only x_1 (label 1) is known, however far
    assert votes[2].tolist() == [0, 1] and votes[3].tolist() == [1, 0] and votes[4].tolist() == [0, 1]


def test_k_larger_than_the_prefix_lets_all_of_it_vote():
    votes = neighbour_votes(np.array([[0.0], [1.0]]), np.array([0, 1]), np.array([[0.1]]), neighbours=5, symbols=3)
    assert votes[0, 0].tolist() == [0.5, 0.5, 0.0]


def test_online_predictions_are_the_nearest_earlier_image_s_label():
    """Once every label has been seen the novelty score plays no part: each prediction is the label
    of the nearest earlier image in raw pixels (a hand-written 1-NN)."""
    pool = synthetic_pool()
    batch = LabelOffsetSampler(pool, ways=3, instances_per_class=4).batch(range(2))
    learner = KNNPixelsLearner(TaskSpec(3, image_shape=SMALL_IMAGE)).double()
    with torch.no_grad():
        predicted = predictions(learner.online_logits(batch.inputs()))
    pixels = batch.images.flatten(2).double() / 255
    for episode in range(2):
        for t in range(1, pixels.shape[1]):
            if len(set(batch.labels[episode, :t].tolist())) < 3:
                continue
            nearest = (pixels[episode, :t] - pixels[episode, t]).norm(dim=1).argmin()
            assert predicted[episode, t] == batch.labels[episode, nearest]


def test_episodic_queries_take_their_nearest_support_image_s_label():
    pool = synthetic_pool()
    batch = EpisodeSampler(pool, ways=3, shots=2, queries=2).batch(range(1))
    learner = KNNPixelsLearner(TaskSpec(3, image_shape=SMALL_IMAGE))
    predicted = predictions(learner.episodic_logits(batch.inputs()))[0]
    support, queries = (images[0].flatten(1).double() / 255 for images in (batch.support_images, batch.query_images))
    nearest = torch.cdist(queries, support).argmin(dim=1)
    assert predicted.tolist() == batch.support_labels[0, nearest].tolist()


def test_raw_pixel_knn_trains_nothing_and_still_leaves_its_weights(tmp_path):
    """Its recipe has zero steps; fit validates once and saves the weights as built (without the
    zero-step case fit saved no best.pt, and the bench could not evaluate the model)."""
    suite = get_suite("omniglot-5way")
    config = recipe("knn-pixels", suite, "smoke").config
    assert config.steps == 0 and config.episodes == 0
    learner = KNNPixelsLearner(suite.task())
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    summary = fit(learner, lambda ids: None, lambda learner: 0.5, config, tmp_path, progress=False)
    assert summary.steps == 0 and (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())


def test_deep_feature_knn_is_trained_as_protonet():
    suite = get_suite("omniglot-5way-1shot")
    assert recipe("knn-features", suite, "quick") == recipe("protonet", suite, "quick")
