"""Episode samplers on the real Omniglot: label offset, instance indices, balance,
string labels, split disjointness, determinism and fingerprints."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from fewshot_mem.data import counter_rng
from fewshot_mem.data.episodes import (ClassPool, EpisodeSampler, LabelOffsetSampler, correct_predictions,
                                       episodes_digest, string_characters)
from fewshot_mem.suites import get_suite, load_pools

SPLITS = ("vinyals/train", "vinyals/val", "vinyals/test")


@pytest.fixture(scope="module")
def pools(omniglot) -> dict[str, ClassPool]:
    return {split: omniglot.pool(split, 20) for split in SPLITS}


@pytest.fixture(scope="module")
def train_pool(pools) -> ClassPool:
    return pools["vinyals/train"]


def assert_batches_equal(a, b) -> None:
    for name, value in vars(a).items():
        other = getattr(b, name)
        assert (value is None and other is None) or torch.equal(value, other), name


def test_pool_rotations_are_counter_clockwise_copies(omniglot, train_pool):
    names = {name: i for i, name in enumerate(train_pool.class_names)}
    upright = train_pool.images[names["Arcadian/character01/rot000"]]
    for degrees in (90, 180, 270):
        rotated = train_pool.images[names[f"Arcadian/character01/rot{degrees:03d}"]]
        assert torch.equal(rotated, torch.rot90(upright, k=degrees // 90, dims=(-2, -1)))
    assert train_pool.num_classes == 4 * 1028  # Vinyals train characters, four rotations each


def test_label_offset_shows_previous_true_label(train_pool):
    batch = LabelOffsetSampler(train_pool, ways=5, instances_per_class=10).batch(range(16))
    assert batch.images.shape == (16, 50, 1, 20, 20)
    assert torch.equal(batch.previous_codes[:, 0], torch.zeros(16, 5))
    assert torch.equal(batch.previous_codes[:, 1:], batch.codes[:, :-1])
    assert torch.equal(batch.codes.argmax(-1), batch.labels)
    assert torch.equal(batch.targets, batch.labels)


def test_instance_index_counts_appearances_and_classes_are_balanced(train_pool):
    batch = LabelOffsetSampler(train_pool, ways=5, instances_per_class=10).batch(range(8))
    for labels, index in zip(batch.labels.tolist(), batch.instance_index.tolist()):
        seen = Counter()
        for label, position in zip(labels, index):
            seen[label] += 1
            assert position == seen[label]
        assert sorted(seen.values()) == [10] * 5


def test_a_length_keeps_the_first_steps_of_the_same_shuffle(train_pool):
    """Episodes cut to ``length`` steps are the first steps of the uncut episodes (the same
    classes, labels, instances, strings), so a class shows a varying number of times, at most K;
    the uncut sampler's config, and so the published fingerprints, do not change."""
    whole = LabelOffsetSampler(train_pool, ways=15, instances_per_class=20, encoding="string")
    cut = LabelOffsetSampler(train_pool, ways=15, instances_per_class=20, encoding="string", length=100)
    full, short = whole.batch(range(6)), cut.batch(range(6))
    assert short.images.shape == (6, 100, 1, 20, 20) and cut.steps == 100 and whole.steps == 300
    for name in ("labels", "instances", "images", "codes", "instance_index"):
        assert torch.equal(getattr(short, name), getattr(full, name)[:, :100]), name
    assert torch.equal(short.classes, full.classes) and torch.equal(short.strings, full.strings[:, :100])
    counts = [sorted(Counter(row).values()) for row in short.labels.tolist()]
    assert len({tuple(c) for c in counts}) > 1 and max(max(c) for c in counts) <= 20
    assert "length" not in whole.config() and cut.config()["length"] == 100
    with pytest.raises(ValueError, match="steps need 1 to 300"):
        LabelOffsetSampler(train_pool, ways=15, instances_per_class=20, length=301)


def test_images_are_the_labelled_classes_own_distinct_instances(train_pool):
    batch = LabelOffsetSampler(train_pool, ways=5, instances_per_class=10).batch(range(4))
    for b in range(4):
        assert len(set(batch.classes[b].tolist())) == 5
        shown = set()
        for t in range(50):
            cls = int(batch.classes[b, batch.labels[b, t]])
            inst = int(batch.instances[b, t])
            assert torch.equal(batch.images[b, t], train_pool.images[cls, inst])
            shown.add((cls, inst))
        assert len(shown) == 50  # no instance of a class repeats within an episode


def test_labels_are_assigned_to_classes_afresh_each_episode(train_pool):
    batch = LabelOffsetSampler(train_pool, ways=5, instances_per_class=10).batch(range(2000))
    first_label = torch.bincount(batch.labels[:, 0], minlength=5).float()
    assert (first_label / 2000 - 0.2).abs().max() < 0.05
    assert len({tuple(c) for c in batch.classes.tolist()}) > 1990


def test_string_labels_are_distinct_five_character_codes(train_pool):
    batch = LabelOffsetSampler(train_pool, ways=15, instances_per_class=10, encoding="string").batch(range(32))
    assert batch.strings.shape == (32, 150, 5)
    assert batch.codes.shape == (32, 150, 25)
    assert torch.equal(batch.codes.sum(-1), torch.full((32, 150), 5.0))
    assert torch.equal(batch.codes.view(32, 150, 5, 5).argmax(-1), batch.strings)
    assert int(batch.strings.max()) <= 4
    for b in range(32):
        by_label = {}
        for label, string in zip(batch.labels[b].tolist(), map(tuple, batch.strings[b].tolist())):
            assert by_label.setdefault(label, string) == string  # a label keeps its string
        assert len(set(by_label.values())) == 15  # strings differ within an episode
    assert torch.equal(batch.targets, batch.strings)


def test_string_prediction_is_correct_only_when_all_characters_are(train_pool):
    targets = torch.tensor([[[0, 1, 2, 3, 4], [4, 4, 4, 4, 4]]])
    predictions = targets.clone()
    predictions[0, 1, 2] = 0
    assert correct_predictions(predictions, targets).tolist() == [[True, False]]
    assert correct_predictions(torch.tensor([[1, 2]]), torch.tensor([[1, 3]])).tolist() == [[True, False]]


def test_string_characters_are_base_five_digits():
    ids = np.array([0, 1, 5, 3124, 1 * 625 + 2 * 125 + 0 * 25 + 4 * 5 + 3])
    expected = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [4, 4, 4, 4, 4], [1, 2, 0, 4, 3]]
    assert string_characters(ids).tolist() == expected


def test_splits_never_share_a_class_or_a_character(pools):
    names = {split: set(pool.class_names) for split, pool in pools.items()}
    characters = {split: {n.rsplit("/", 1)[0] for n in ns} for split, ns in names.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not names[a] & names[b]
                assert not characters[a] & characters[b]  # a rotated test character stays in test


@pytest.mark.parametrize("make", [
    lambda pool: LabelOffsetSampler(pool, ways=5, instances_per_class=10),
    lambda pool: LabelOffsetSampler(pool, ways=15, instances_per_class=10, encoding="string", augment=True),
    lambda pool: EpisodeSampler(pool, ways=20, shots=5, queries=5),
])
def test_episode_i_is_the_same_whatever_the_batching(train_pool, make):
    """Batches of several sizes at several offsets, and ids out of order, hold the rows of one big
    batch. Fails for a sampler that draws a batch from one random stream (episode i would then
    depend on where its batch starts and how big it is)."""
    whole = make(train_pool).batch(range(16))
    for start, size in ((0, 1), (7, 1), (15, 1), (0, 2), (5, 3), (1, 8), (9, 7), (0, 16)):
        assert_rows_equal(make(train_pool).batch(range(start, start + size)), whole, list(range(start, start + size)))
    assert_rows_equal(make(train_pool).batch([11, 3, 7, 3]), whole, [11, 3, 7, 3])


def assert_rows_equal(batch, whole, rows: list[int]) -> None:
    for name, value in vars(whole).items():
        if value is not None:
            assert torch.equal(value[rows], getattr(batch, name)), (name, rows)


def test_seed_changes_the_episodes(train_pool):
    a = LabelOffsetSampler(train_pool, seed=0).batch(range(4))
    b = LabelOffsetSampler(train_pool, seed=1).batch(range(4))
    assert not torch.equal(a.classes, b.classes)


def test_n_way_k_shot_support_and_query_are_disjoint_and_balanced(train_pool):
    sampler = EpisodeSampler(train_pool, ways=5, shots=5, queries=15)
    batch = sampler.batch(range(8))
    assert batch.support_images.shape == (8, 25, 1, 20, 20)
    assert batch.query_images.shape == (8, 75, 1, 20, 20)
    for b in range(8):
        assert torch.equal(torch.bincount(batch.support_labels[b], minlength=5), torch.full((5,), 5))
        assert torch.equal(torch.bincount(batch.query_labels[b], minlength=5), torch.full((5,), 15))
        support = set(zip(batch.support_labels[b].tolist(), batch.support_instances[b].tolist()))
        query = set(zip(batch.query_labels[b].tolist(), batch.query_instances[b].tolist()))
        assert len(support) == 25 and len(query) == 75 and not support & query
        for images, labels, instances in ((batch.support_images, batch.support_labels, batch.support_instances),
                                          (batch.query_images, batch.query_labels, batch.query_instances)):
            cls = batch.classes[b, labels[b, 0]]
            assert torch.equal(images[b, 0], train_pool.images[cls, instances[b, 0]])


def test_augmentation_perturbs_images_reproducibly(train_pool):
    plain = LabelOffsetSampler(train_pool).batch(range(4))
    augmented = LabelOffsetSampler(train_pool, augment=True).batch(range(4))
    assert torch.equal(plain.labels, augmented.labels) and torch.equal(plain.instances, augmented.instances)
    assert not torch.equal(plain.images, augmented.images)
    assert torch.equal(augmented.images, LabelOffsetSampler(train_pool, augment=True).batch(range(4)).images)
    # small perturbations: the ink mostly stays where it was
    overlap = (plain.images.float() * augmented.images.float()).sum() / plain.images.float().pow(2).sum()
    assert overlap > 0.3


def test_bad_sampler_arguments_are_refused(train_pool):
    with pytest.raises(ValueError, match="encoding"):
        LabelOffsetSampler(train_pool, encoding="binary")
    with pytest.raises(ValueError, match="instances per class"):
        LabelOffsetSampler(train_pool, instances_per_class=21)
    with pytest.raises(ValueError, match="exceed"):
        EpisodeSampler(train_pool, ways=5, shots=10, queries=15)
    with pytest.raises(ValueError, match="episode ids"):
        LabelOffsetSampler(train_pool).batch([-1])


def test_fingerprint_is_stable_and_sensitive(pools):
    test_pool = pools["vinyals/test"]
    sampler = LabelOffsetSampler(test_pool)
    reference = episodes_digest(sampler, 200)
    assert episodes_digest(sampler, 200, batch_size=17) == reference
    assert episodes_digest(LabelOffsetSampler(test_pool, seed=1), 200) != reference
    assert episodes_digest(sampler, 199) != reference
    assert episodes_digest(LabelOffsetSampler(pools["vinyals/val"]), 200) != reference


@pytest.mark.parametrize("field, make", [
    ("classes", lambda pool: LabelOffsetSampler(pool)),
    ("instances", lambda pool: LabelOffsetSampler(pool)),
    ("labels", lambda pool: LabelOffsetSampler(pool)),
    ("strings", lambda pool: LabelOffsetSampler(pool, ways=15, encoding="string")),
    ("support_instances", lambda pool: EpisodeSampler(pool)),
    ("query_labels", lambda pool: EpisodeSampler(pool)),
])
def test_fingerprint_changes_with_one_episodes_content_under_the_same_config(pools, monkeypatch, field, make):
    """One number of one episode (its class, an instance, a label, a string character) changed, the
    sampler's config and the episode ids kept: the fingerprint changes. Fails for a fingerprint of the
    config and ids alone, which every other fingerprint test accepts."""
    sampler = make(pools["vinyals/test"])
    reference = episodes_digest(sampler, 20, batch_size=8)
    honest = type(sampler).batch

    def tampered(self, episodes):
        batch = honest(self, episodes)
        rows = np.flatnonzero(np.asarray(episodes) == 13)  # episode 13 is in the second of three batches
        if len(rows):
            getattr(batch, field)[rows[0]].view(-1)[-1] += 1
        return batch

    monkeypatch.setattr(type(sampler), "batch", tampered)
    assert sampler.config() == make(pools["vinyals/test"]).config()
    assert episodes_digest(sampler, 20, batch_size=8) != reference


def test_fingerprint_is_the_same_in_a_fresh_process(omniglot_root, pools):
    sampler = EpisodeSampler(pools["vinyals/test"], ways=5, shots=1, queries=5)
    script = (
        "import torch; torch.set_num_threads(1)\n"
        "from fewshot_mem.data.omniglot import load_omniglot\n"
        "from fewshot_mem.data.episodes import EpisodeSampler, episodes_digest\n"
        f"o = load_omniglot({str(omniglot_root)!r}, download=False, progress=False)\n"
        "pool = o.pool('vinyals/test', 20)\n"
        "print(episodes_digest(EpisodeSampler(pool, ways=5, shots=1, queries=5), 100, batch_size=9))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == episodes_digest(sampler, 100)


@pytest.mark.parametrize("count, high", [(5, 4112), (60, 4112), (15, 3125), (30, 64)])
def test_distinct_integers_are_distinct_and_cover_the_range(count, high):
    draws = counter_rng.distinct_integers(seed=3, episodes=np.arange(400), stream=0, count=count, high=high)
    assert draws.shape == (400, count)
    assert all(len(set(row)) == count for row in draws.tolist())
    assert draws.min() >= 0 and draws.max() < high
    # roughly uniform: every decile of the range is hit about equally often
    deciles = np.bincount(draws.ravel() * 10 // high, minlength=10) / draws.size
    assert np.abs(deciles - 0.1).max() < 0.03


def test_the_readme_prints_the_real_suites_fingerprints(omniglot_root):
    """Every 'suite NAME@VERSION, fingerprint HEX' the README prints is that suite's fingerprint of the
    real Omniglot test episodes. Fails when a change to the samplers, the splits or the suite moves
    the episodes (or the hash) and the README was not measured again (checked with a changed seed)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    printed = re.findall(r"suite (\S+)@(\d+), fingerprint ([0-9a-f]{64})", readme)
    assert printed, "the README prints no suite fingerprint"
    for name, version, expected in printed:
        suite = get_suite(f"{name}@{version}")
        pools = load_pools(suite, omniglot_root, progress=False, download=False)
        assert suite.fingerprint(pools["test"]) == expected, f"{name}@{version}"
