"""Omniglot: the real data set's counts, splits and resizing; caching; every bad input."""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fewshot_mem.data import cache as cache_module
from fewshot_mem.data import omniglot as omniglot_module
from fewshot_mem.data.episodes import EpisodeSampler
from fewshot_mem.data.omniglot import (CACHE_NAME, CACHE_VERSION, Layout, Omniglot, find_sources, index_members,
                                       load_omniglot, rotate)
from fewshot_mem.data.omniglot_files import searched_paths
from fewshot_mem.data.omniglot_splits import OMNIGLOT_SPLITS
from fewshot_mem.errors import CacheError, DataCorruptError, DataNotFoundError, FewshotMemError
from fewshot_mem.paths import default_data_root, resolve_data_root
from omniglot_fixtures import (TINY_BACKGROUND, TINY_LAYOUT, TINY_NAMES, make_fake_omniglot_zip,
                               make_tiny_omniglot, png_bytes)

VINYALS = ("train", "val", "trainval", "test")

# ------------------------------------------------------------------ the real data set


def test_real_omniglot_has_the_official_structure(omniglot):
    assert len(omniglot) == len(omniglot.characters) == 1623
    background = [c for c in omniglot.characters if c.background]
    evaluation = [c for c in omniglot.characters if not c.background]
    assert (len(background), len(evaluation)) == (964, 659)
    assert len({c.alphabet for c in background}) == 30
    assert len({c.alphabet for c in evaluation}) == 20
    assert sorted(c.official_id for c in omniglot.characters) == list(range(1, 1624))
    for size in (105, 28, 20):
        images = omniglot.images(size)
        assert images.shape == (1623, 20, size, size) and images.dtype == np.uint8
        assert images.shape[0] * images.shape[1] == 32460
    with pytest.raises(ValueError, match="sizes"):
        omniglot.images(84)


def test_canonical_order_is_background_then_evaluation_by_name(omniglot):
    keys = [(not c.background, c.alphabet, c.number) for c in omniglot.characters]
    assert keys == sorted(keys)
    assert all(c.name == f"{c.alphabet}/character{c.number:02d}" for c in omniglot.characters)


def read_split_file(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.parametrize("split", VINYALS)
def test_vinyals_split_matches_the_reference_files(omniglot, shared_data_dir, split):
    reference = read_split_file(shared_data_dir / "omniglot" / "splits" / "vinyals" / f"{split}.txt")
    ours = omniglot.split(f"vinyals/{split}").class_names(omniglot)
    assert len(ours) == len(set(ours))
    assert set(ours) == reference, (sorted(set(ours) - reference)[:5], sorted(reference - set(ours))[:5])


def test_vinyals_split_sizes_disjointness_and_class_order(omniglot):
    splits = {name: omniglot.split(f"vinyals/{name}") for name in VINYALS}
    characters = {name: set(split.characters.tolist()) for name, split in splits.items()}
    assert {k: len(v) for k, v in characters.items()} == {"train": 1028, "val": 172, "trainval": 1200, "test": 423}
    assert characters["train"] | characters["val"] == characters["trainval"]
    assert not characters["train"] & characters["val"]
    assert not (characters["train"] | characters["val"]) & characters["test"]
    assert characters["trainval"] | characters["test"] == set(range(1623))
    assert characters["trainval"] == set(range(1200))  # the first 1200 in canonical order
    for split in splits.values():  # character-major: each character's four rotations in a row
        assert len(split) == 4 * len(set(split.characters.tolist()))
        assert np.array_equal(split.rotations.reshape(-1, 4), np.tile([0, 90, 180, 270], (len(split) // 4, 1)))
        assert np.all(split.characters.reshape(-1, 4) == split.characters[::4, None])
        assert split.characters.dtype == split.rotations.dtype == np.int64


def test_lake_split_is_background_against_evaluation(omniglot):
    background, evaluation = omniglot.split("lake/background"), omniglot.split("lake/evaluation")
    assert (len(background), len(evaluation)) == (964, 659)
    assert all(omniglot.characters[c].background for c in background.characters)
    assert not any(omniglot.characters[c].background for c in evaluation.characters)
    assert set(background.rotations.tolist()) == set(evaluation.rotations.tolist()) == {0}


@pytest.mark.parametrize("split", sorted(OMNIGLOT_SPLITS))
def test_every_class_keeps_its_metadata(omniglot, split):
    chosen = omniglot.split(split)
    assert chosen.name == split
    for name, character, rotation in zip(chosen.class_names(omniglot), chosen.characters, chosen.rotations):
        meta = omniglot.characters[character]
        assert name == f"{meta.alphabet}/character{meta.number:02d}/rot{rotation:03d}"
        assert 1 <= meta.official_id <= 1623 and meta.number >= 1


@pytest.mark.parametrize("split, size", [(split, 20) for split in sorted(OMNIGLOT_SPLITS)]
                         + [("vinyals/test", 28), ("lake/evaluation", 105)])
def test_a_pool_holds_each_named_character_rotated_and_episodes_show_it(omniglot, split, size):
    """Omniglot.pool against a derivation from the class names alone: class "Alphabet/characterNN/rotDDD"
    holds that character's 20 drawings at ``size`` turned DDD degrees counter-clockwise (np.rot90), and
    sampled episodes show exactly those images. Fails if a pool's classes, their order (checked against
    the split), their rotation or their pixels change; the README's suite fingerprints pin the order."""
    pool = omniglot.pool(split, size)
    position = {character.name: i for i, character in enumerate(omniglot.characters)}
    drawings = omniglot.images(size)
    expected = []
    for name in pool.class_names:
        character, degrees = name.rsplit("/rot", 1)
        expected.append(np.rot90(drawings[position[character]], k=int(degrees) // 90, axes=(-2, -1)))
    expected = torch.from_numpy(np.stack(expected)).unsqueeze(2)  # (C, 20, 1, S, S)
    assert pool.name == f"omniglot/{split}@{size}"
    assert pool.class_names == tuple(omniglot.split(split).class_names(omniglot))
    assert torch.equal(pool.images, expected)
    batch = EpisodeSampler(pool, ways=5, shots=1, queries=2, seed=7).batch(range(6))
    shown = expected[batch.classes.gather(1, batch.query_labels), batch.query_instances]
    assert torch.equal(batch.query_images, shown)


def test_images_are_ink_on_empty_background(omniglot):
    full = np.asarray(omniglot.images(105)[::40])
    assert set(np.unique(full).tolist()) == {0, 255}
    assert (full == 0).mean() > 0.8  # paper dominates: strokes are thin
    assert (full == 255).any(axis=(-2, -1)).all()  # and every drawing has ink


def test_resized_images_match_an_independent_antialiased_resize(omniglot):
    full = omniglot.images(105)
    rng = np.random.default_rng(0)
    picks = list(zip(rng.integers(0, 1623, 16), rng.integers(0, 20, 16)))
    originals = torch.from_numpy(np.stack([full[c, d] for c, d in picks])).float()[:, None]
    for size in (28, 20):
        expected = F.interpolate(originals, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        expected = expected[:, 0].round().clamp(0, 255).numpy()
        ours = np.stack([omniglot.images(size)[c, d] for c, d in picks]).astype(float)
        assert np.abs(ours - expected).max() <= 2
        assert np.abs(ours - expected).mean() < 0.5
        grey = (ours > 0) & (ours < 255)
        assert grey.mean() > 0.05  # antialiased, not thresholded


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_rotation_is_counter_clockwise_like_pil(omniglot, degrees):
    image = np.asarray(omniglot.images(105)[7, 3])
    expected = np.asarray(Image.fromarray(image).rotate(degrees))
    assert np.array_equal(rotate(image, degrees), expected)
    assert np.array_equal(rotate(torch.from_numpy(image.copy()), degrees).numpy(), expected)
    stacked = rotate(np.asarray(omniglot.images(20)[:2]), degrees)  # (..., H, W): leading axes kept
    assert stacked.shape == (2, 20, 20, 20)
    with pytest.raises(ValueError):
        rotate(image, degrees + 45)


def test_a_second_load_uses_the_cache_without_decoding(omniglot_root, omniglot, monkeypatch):
    """(How long loading takes is measured by the module's CLI, not asserted here: issue 21, item 7.)"""
    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(omniglot_module, "decode_images", refuse)
    monkeypatch.setattr(omniglot_module, "index_members", refuse)
    again = load_omniglot(omniglot_root, download=False, progress=False)
    every_size = [again.images(size) for size in (105, 28, 20)]
    assert again.characters == omniglot.characters
    assert np.array_equal(every_size[2], omniglot.images(20))
    assert not every_size[1].flags.writeable  # shared by every caller


def test_real_cache_layout(omniglot):
    cache_dir = omniglot.cache_dir
    assert cache_dir.name == CACHE_NAME and cache_dir.parent.name == "cache"
    assert {p.name for p in cache_dir.iterdir()} == {"images_105.npy", "images_28.npy", "images_20.npy", "meta.json"}
    meta = json.loads((cache_dir / "meta.json").read_text())
    assert meta["version"] == CACHE_VERSION and len(meta["characters"]) == 1623
    assert [p.name for p in cache_dir.parent.iterdir()] == [CACHE_NAME]  # no staging left over


# ------------------------------------------------------------------ tiny data sets


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (-1 for folders); links are not followed."""
    return {str(p.relative_to(root)): -1 if p.is_dir() and not p.is_symlink() else p.lstat().st_size
            for p in sorted(root.rglob("*"))}


def load_tiny(root: Path, **options):
    return load_omniglot(root, download=False, progress=False, workers=1, layout=TINY_LAYOUT, **options)


def expected_image(official_id: int, drawer: int, seed: int = 0) -> np.ndarray:
    paper = np.asarray(Image.open(io.BytesIO(png_bytes(105, seed * 100_003 + official_id * 100 + drawer))))
    return np.where(paper, 0, 255).astype(np.uint8)


def test_tiny_data_set_loads_from_zips(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    data = load_tiny(tmp_path)
    assert [c.name for c in data.characters] == TINY_NAMES
    assert [c.official_id for c in data.characters] == list(range(1, 8))
    assert [c.background for c in data.characters] == [True] * 4 + [False] * 3
    assert data.images(105).shape == (7, 20, 105, 105)
    for character, drawer in [(0, 0), (2, 19), (6, 6)]:  # ids are 1-based, drawers 01..20
        assert np.array_equal(data.images(105)[character, drawer], expected_image(character + 1, drawer + 1))
    assert data.images(28).shape == (7, 20, 28, 28) and data.images(20).shape == (7, 20, 20, 20)
    assert len(data.split("lake/background")) == 4 and len(data.split("lake/evaluation")) == 3
    with pytest.raises(ValueError, match="Gurmukhi/character41"):  # the cut of the Vinyals split is missing
        data.split("vinyals/train")
    with pytest.raises(KeyError, match="vinyals/train"):
        data.split("no/such/split")


def test_parallel_decoding_equals_serial_decoding(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    sources = find_sources(tmp_path)
    index = index_members(sources, TINY_LAYOUT)

    def decode(workers: int) -> dict[int, tuple[np.ndarray, ...]]:
        return dict(omniglot_module.decode_images(sources, index, workers=workers, chunk=9, progress=False))

    serial, parallel = decode(1), decode(2)
    assert sorted(serial) == sorted(parallel) == list(range(0, 80, 9)) + list(range(80, 140, 9))
    for start in serial:
        assert all(np.array_equal(a, b) for a, b in zip(serial[start], parallel[start]))


def test_a_worker_error_reaches_the_caller(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot", corrupt=("Gamma/character01/0004_20.png",))
    sources = find_sources(tmp_path)
    index = index_members(sources, TINY_LAYOUT)
    with pytest.raises(DataCorruptError, match="0004_20.png is not a readable PNG"):
        list(omniglot_module.decode_images(sources, index, workers=2, chunk=10, progress=False))


@pytest.mark.parametrize("layout", ["omniglot", "omniglot/omniglot-py", "omniglot-py"])
def test_extracted_folders_and_torchvision_layout_are_found(tmp_path, layout):
    zips = make_tiny_omniglot(tmp_path / "zips")
    for path in zips.values():
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path / "root" / layout)
    from_folders = load_tiny(tmp_path / "root")
    assert from_folders.cache_dir == tmp_path / "root" / "omniglot" / "cache" / CACHE_NAME
    (tmp_path / "zroot").mkdir()
    (tmp_path / "zips").rename(tmp_path / "zroot" / "omniglot")
    from_zips = load_tiny(tmp_path / "zroot")
    assert from_folders.characters == from_zips.characters
    for size in (105, 28, 20):
        assert np.array_equal(from_folders.images(size), from_zips.images(size))


def test_extracted_folders_are_preferred_to_zips(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    with zipfile.ZipFile(zips["background"]) as archive:
        archive.extractall(tmp_path / "omniglot")
    sources, searched = find_sources(tmp_path), searched_paths(tmp_path)
    assert not sources["background"].is_zip and sources["evaluation"].is_zip
    assert searched.index(tmp_path / "omniglot-py" / "images_background") < \
        searched.index(tmp_path / "omniglot" / "images_background.zip")


def test_symlinked_zips_are_followed(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "elsewhere")
    (tmp_path / "root" / "omniglot").mkdir(parents=True)
    for path in zips.values():
        (tmp_path / "root" / "omniglot" / path.name).symlink_to(path)
    assert [c.name for c in load_tiny(tmp_path / "root").characters] == TINY_NAMES


def test_changed_source_triggers_a_rebuild(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    first = np.array(load_tiny(tmp_path).images(105))
    make_fake_omniglot_zip(zips["background"], TINY_BACKGROUND, seed=1)  # same layout, other drawings
    second = load_tiny(tmp_path)
    assert np.array_equal(second.images(105)[0, 0], expected_image(1, 1, seed=1))
    assert not np.array_equal(second.images(105)[:4], first[:4])
    assert np.array_equal(second.images(105)[4:], first[4:])  # the evaluation part did not change


def images_at_every_size(data) -> dict[int, np.ndarray]:
    return {size: np.array(data.images(size)) for size in (105, 28, 20)}


def assert_same_images(data, expected: dict[int, np.ndarray]) -> None:
    for size, images in expected.items():
        assert np.array_equal(data.images(size), images), size


def test_a_damaged_cache_is_rebuilt_with_the_same_content(tmp_path):
    """Fails if the rebuilt cache differs from the first build (issue 21, item 8: the shape alone was checked)."""
    make_tiny_omniglot(tmp_path / "omniglot")
    first = load_tiny(tmp_path)
    built = images_at_every_size(first)
    (first.cache_dir / "images_20.npy").write_bytes(b"")  # e.g. a crash of the file system
    with pytest.warns(UserWarning, match="images_20.npy holds 0 bytes"):
        again = load_tiny(tmp_path)
    assert_same_images(again, built)


def invert_in_place(path: Path, keep_times: bool) -> None:
    """255 - every pixel, written into the file itself: the same size, the same header."""
    before = path.stat()
    pixels = np.load(path, mmap_mode="r+")
    pixels[...] = 255 - pixels
    pixels.flush()
    del pixels
    if keep_times:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


@pytest.mark.parametrize("keep_times", [False, True], ids=["touched", "mtime-restored"])
def test_an_array_changed_in_place_is_found_and_rebuilt(tmp_path, keep_times):
    """Issue 20.1: without the digests in meta.json, the inverted images were served (and every
    result computed from them) under the same cache key and suite fingerprint."""
    make_tiny_omniglot(tmp_path / "omniglot")
    first = load_tiny(tmp_path)
    built = images_at_every_size(first)
    invert_in_place(first.cache_dir / "images_20.npy", keep_times)
    with pytest.warns(UserWarning, match=r"images_20\.npy was modified after the cache was built"):
        again = load_tiny(tmp_path)
    assert_same_images(again, built)
    third = load_tiny(tmp_path)  # and the rebuilt cache is trusted again
    assert_same_images(third, built)


def built_cache(tmp_path: Path) -> Path:
    target = tmp_path / "cache" / "thing-v1"
    with cache_module.staged(target, 1, {"source": 1}) as stage:
        np.save(stage.path / "a.npy", np.arange(1000, dtype=np.uint8))
    return target


def test_a_file_only_touched_is_read_once_then_trusted_again(tmp_path, monkeypatch):
    target = built_cache(tmp_path)
    os.utime(target / "a.npy")  # new times, same bytes: e.g. copied with cp -r
    assert cache_module.changed_arrays(target) == []
    monkeypatch.setattr(cache_module, "_record", lambda path: pytest.fail(f"{path} was read again"))
    assert cache_module.changed_arrays(target) == []  # the new times were recorded


def test_a_cache_built_before_digests_gets_them_on_first_check(tmp_path):
    target = built_cache(tmp_path)
    meta = json.loads((target / "meta.json").read_text())
    del meta[cache_module.ARRAYS]
    (target / "meta.json").write_text(json.dumps(meta))
    assert cache_module.changed_arrays(target) == []  # trusted as it is, once
    assert cache_module.read_meta(target)[cache_module.ARRAYS]["a.npy"]["bytes"] == (target / "a.npy").stat().st_size
    invert_in_place(target / "a.npy", keep_times=True)
    assert cache_module.changed_arrays(target) == ["a.npy was modified after the cache was built (its sha256 differs)"]


def test_an_unreadable_cache_that_stays_unreadable_is_reported(tmp_path, monkeypatch):
    """The branch of load_omniglot for a cache that cannot be read back even after a rebuild."""
    make_tiny_omniglot(tmp_path / "omniglot")
    load_tiny(tmp_path)

    def unreadable(directory, name, mmap=False):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory / f"{name}.npy"))

    monkeypatch.setattr(cache_module, "load_array", unreadable)
    with pytest.raises(CacheError, match="cannot be read back") as error:
        load_tiny(tmp_path)
    assert str(tmp_path / "omniglot" / "cache" / CACHE_NAME) in str(error.value)
    assert "--data-root" in str(error.value)


def test_a_cache_with_unreadable_metadata_is_rebuilt_with_the_same_content(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    first = load_tiny(tmp_path)
    built = images_at_every_size(first)
    meta = json.loads((first.cache_dir / "meta.json").read_text())
    del meta["characters"]
    (first.cache_dir / "meta.json").write_text(json.dumps(meta))
    assert_same_images(load_tiny(tmp_path), built)
    (first.cache_dir / "meta.json").write_text("{not json")
    assert_same_images(load_tiny(tmp_path), built)


def test_older_cache_versions_are_replaced(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    old = tmp_path / "omniglot" / "cache" / "omniglot-v1"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"version": 1}))
    keep = tmp_path / "omniglot" / "cache" / "my-notes"
    keep.mkdir()
    load_tiny(tmp_path)
    assert {p.name for p in (tmp_path / "omniglot" / "cache").iterdir()} == {CACHE_NAME, "my-notes"}


def test_a_stage_abandoned_by_a_dead_process_is_cleaned_up(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    cache_parent = tmp_path / "omniglot" / "cache"
    host = cache_module._host()
    dead = cache_parent / f".{CACHE_NAME}.tmp-{host}-{2 ** 22 + 12345}-0abc"  # above Linux's pid_max
    alive = cache_parent / f".{CACHE_NAME}.tmp-{host}-{os.getpid()}-0abc"
    for stage in (dead, alive):
        stage.mkdir(parents=True)
        (stage / "images_105.npy").write_bytes(b"half")
    load_tiny(tmp_path)
    assert not dead.exists() and alive.exists()


def test_a_cache_committed_meanwhile_by_another_process_is_kept(tmp_path):
    target = tmp_path / "cache" / "thing-v1"
    with cache_module.staged(target, 1, {"source": 1}) as slow:
        np.save(slow.path / "a.npy", np.zeros(3))
        with cache_module.staged(target, 1, {"source": 1}) as fast:  # e.g. another process
            np.save(fast.path / "a.npy", np.ones(3))
        in_use = cache_module.load_array(target, "a", mmap=True)
    assert np.array_equal(cache_module.load_array(target, "a"), np.ones(3))
    assert np.array_equal(in_use, np.ones(3))
    assert [p.name for p in target.parent.iterdir()] == ["thing-v1"]
    with cache_module.staged(target, 1, {"source": 2}) as newer:  # an outdated cache is replaced
        np.save(newer.path / "a.npy", np.full(3, 2.0))
    assert cache_module.is_current(target, 1, {"source": 2}) and not cache_module.is_current(target, 1, {"source": 1})
    assert np.array_equal(cache_module.load_array(target, "a"), np.full(3, 2.0))
    assert [p.name for p in target.parent.iterdir()] == ["thing-v1"]


def test_no_data_without_download_lists_the_paths_searched(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_omniglot(tmp_path, download=False, progress=False)
    message = str(error.value)
    for part in ("background", "evaluation"):
        for folder in (tmp_path / "omniglot", tmp_path / "omniglot" / "omniglot-py", tmp_path / "omniglot-py"):
            assert str(folder / f"images_{part}") in message
            assert str(folder / f"images_{part}.zip") in message
    assert "--data-root" in message and "FEWSHOT_MEM_DATA" in message
    assert str(tmp_path / "omniglot") in message and "images_background.zip" in message
    # the same paths and advice
    assert Omniglot.describe_missing(tmp_path).split("Searched:")[1] == message.split("Searched:")[1]
    assert snapshot(tmp_path) == {}


def test_describe_missing_names_only_what_is_missing(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    assert Omniglot.describe_missing(tmp_path) == ""
    zips["evaluation"].unlink()
    (tmp_path / "omniglot" / "images_evaluation.zip").symlink_to(tmp_path / "gone.zip")
    message = Omniglot.describe_missing(tmp_path)
    assert "Omniglot (images_evaluation) was not found" in message
    assert "broken symbolic link" in message


def test_no_data_and_no_network_says_why_and_creates_nothing(tmp_path):
    with socket.socket() as probe:  # a local port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "new-root"
    with pytest.raises(DataNotFoundError, match="Downloading failed") as error:
        load_omniglot(root, download=True, progress=False, url_base=f"http://127.0.0.1:{port}/")
    assert f"127.0.0.1:{port}/images_background.zip" in str(error.value)
    assert not root.exists()


def assert_rejected_and_unchanged(root: Path, match: str, layout: Layout = TINY_LAYOUT) -> DataCorruptError:
    before = snapshot(root)
    with pytest.raises(DataCorruptError, match=match) as error:
        load_omniglot(root, download=False, progress=False, workers=1, layout=layout)
    assert snapshot(root) == before  # no cache, no staging folder, no cache/ folder
    return error.value


def test_truncated_zip_is_rejected(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    data = zips["evaluation"].read_bytes()
    zips["evaluation"].write_bytes(data[: len(data) // 2])
    error = assert_rejected_and_unchanged(tmp_path, "images_evaluation.zip is not a readable zip")
    assert "Delete" in str(error) and "download" in str(error)


def test_zip_with_a_damaged_member_is_rejected(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    data = bytearray(zips["background"].read_bytes())
    with zipfile.ZipFile(zips["background"]) as archive:
        info = archive.getinfo("images_background/Beta/character01/0003_05.png")
    body = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[body + info.compress_size // 2] ^= 0xFF  # stored uncompressed: the CRC no longer matches
    zips["background"].write_bytes(bytes(data))
    error = assert_rejected_and_unchanged(tmp_path, r"0003_05\.png")
    assert "images_background.zip" in str(error) and "Delete" in str(error)


def rewrite_zip(path: Path, members: dict[str, bytes | None], compression: int = zipfile.ZIP_STORED) -> None:
    """Writes the zip at ``path`` again: ``members`` replaces or adds (bytes) or drops (None) members."""
    with zipfile.ZipFile(path) as archive:
        contents: dict[str, bytes | None] = {name: archive.read(name) for name in archive.namelist()}
    contents.update(members)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in contents.items():
            if data is not None:
                archive.writestr(name, data)


def test_zip_with_a_damaged_deflate_stream_is_rejected_like_a_truncated_one(tmp_path):
    """Issue 20.6: without zlib.error among the read errors, this was a zlib.error traceback."""
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    member = "images_background/Beta/character01/0003_05.png"
    rewrite_zip(zips["background"], {}, zipfile.ZIP_DEFLATED)
    data = bytearray(zips["background"].read_bytes())
    with zipfile.ZipFile(zips["background"]) as archive:
        info = archive.getinfo(member)
    middle = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    data[middle : middle + 4] = b"\xff" * 4  # bytes overwritten in the middle of the compressed stream
    zips["background"].write_bytes(bytes(data))
    with zipfile.ZipFile(zips["background"]) as archive, pytest.raises(zlib.error):
        archive.read(member)  # the damage this test is about: zlib's, not the CRC check's
    error = assert_rejected_and_unchanged(tmp_path, r"images_background\.zip:.*0003_05\.png cannot be read")
    assert "Delete" in str(error) and "download" in str(error)


def test_truncated_png_is_rejected(tmp_path):
    """The second of _decode_png's two failures: a PNG that opens but ends early (the fixtures'
    corrupt members are the other: not a PNG at all)."""
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    rewrite_zip(zips["background"], {"images_background/Gamma/character01/0004_09.png": png_bytes(105)[:60]})
    assert_rejected_and_unchanged(tmp_path, r"0004_09\.png is not a readable PNG \(image file is truncated\)")


def test_duplicate_drawer_is_named(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    rewrite_zip(zips["background"], {"copy/images_background/Alpha/character01/0001_05.png": png_bytes(105)})
    assert_rejected_and_unchanged(tmp_path, r"Alpha/character01 has two images of drawer 05")


def test_a_character_with_mixed_ids_is_named(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    rewrite_zip(zips["background"], {"images_background/Alpha/character01/0001_03.png": None,
                                     "images_background/Alpha/character01/0009_03.png": png_bytes(105)})
    assert_rejected_and_unchanged(tmp_path, r"Alpha/character01 mixes character ids \[1, 9\]")


def test_corrupt_png_is_rejected(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot", corrupt=("Beta/character01/0003_05.png",))
    assert_rejected_and_unchanged(tmp_path, r"images_background\.zip:.*0003_05\.png is not a readable PNG")


def test_corrupt_png_in_an_extracted_folder_is_rejected(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "zips", corrupt=("Alpha/character02/0002_11.png",))
    for path in zips.values():
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path / "root" / "omniglot")
    assert_rejected_and_unchanged(tmp_path / "root", r"character02/0002_11\.png is not a readable PNG")


def test_missing_drawer_is_named(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot", skip=("Alpha/character02/0002_07.png",))
    assert_rejected_and_unchanged(tmp_path, r"Alpha/character02 has 19 drawers, missing 0002_07\.png")


def test_extra_drawer_is_named(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot", drawers=21)
    assert_rejected_and_unchanged(tmp_path, r"Alpha/character01 has unexpected drawers 21")


def test_missing_character_is_reported(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], {"Alpha": 1, "Beta": 1, "Gamma": 1})
    assert_rejected_and_unchanged(tmp_path, "3 characters instead of 4")


def test_missing_alphabet_is_reported(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], {"Alpha": 3, "Beta": 1})
    assert_rejected_and_unchanged(tmp_path, "2 alphabets instead of 3")


def test_duplicate_character_ids_are_reported(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["evaluation"], {"Delta": 2, "Epsilon": 1}, part="evaluation", start_id=4)
    assert_rejected_and_unchanged(tmp_path, "share the character id 0004")


def test_wrong_image_size_is_rejected(tmp_path):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], TINY_BACKGROUND, size=84)
    assert_rejected_and_unchanged(tmp_path, "is 84x84 pixels, expected 105x105")


def test_official_counts_are_enforced_by_the_public_loader(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")
    before = snapshot(tmp_path)
    with pytest.raises(DataCorruptError, match="3 alphabets instead of 30") as error:
        load_omniglot(tmp_path, download=False, progress=False)
    assert "4 characters instead of 964" in str(error.value)
    assert snapshot(tmp_path) == before


def test_unwritable_cache_directory_is_reported_before_decoding(tmp_path, monkeypatch):
    make_tiny_omniglot(tmp_path / "omniglot")
    (tmp_path / "omniglot" / "cache").write_text("a file where the cache folder belongs")
    monkeypatch.setattr(omniglot_module, "decode_images", lambda *a, **k: pytest.fail("decoded in vain"))
    before = snapshot(tmp_path)
    with pytest.raises(CacheError) as error:
        load_tiny(tmp_path)
    assert isinstance(error.value, FewshotMemError)
    assert str(tmp_path / "omniglot" / "cache") in str(error.value) and "--data-root" in str(error.value)
    assert snapshot(tmp_path) == before


def test_read_only_data_root_is_reported(tmp_path, monkeypatch):
    """Issue 21, item 4: a chmod-based version of this test was skipped as root (CI runs as root),
    so the folder refuses writes here as a read-only one does, whoever runs the test."""
    make_tiny_omniglot(tmp_path / "omniglot")
    read_only = tmp_path / "omniglot"
    real_mkdir = Path.mkdir

    def refuse_inside(self, *args, **kwargs):
        if self.is_relative_to(read_only) and self != read_only:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_inside)
    monkeypatch.setattr(omniglot_module, "decode_images", lambda *a, **k: pytest.fail("decoded in vain"))
    before = snapshot(tmp_path)
    with pytest.raises(CacheError, match="Permission denied") as error:
        load_tiny(tmp_path)
    assert str(read_only) in str(error.value) and "--data-root" in str(error.value)
    assert snapshot(tmp_path) == before


def test_a_full_disk_while_writing_leaves_nothing(tmp_path, monkeypatch):
    make_tiny_omniglot(tmp_path / "omniglot")
    before = snapshot(tmp_path)
    real_open_memmap = np.lib.format.open_memmap
    calls = []

    def fill_up(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:  # after one file was created in the staging folder
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))
        return real_open_memmap(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", fill_up)
    with pytest.raises(CacheError, match="No space left on device"):
        load_tiny(tmp_path)
    assert len(calls) == 2 and snapshot(tmp_path) == before


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    make_tiny_omniglot(tmp_path / "omniglot")
    before = snapshot(tmp_path)
    real_decode = omniglot_module.decode_images

    def interrupted(*args, **kwargs):
        blocks = real_decode(*args, **kwargs)
        yield next(blocks)
        raise KeyboardInterrupt

    monkeypatch.setattr(omniglot_module, "decode_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_tiny(tmp_path)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ data roots


def test_data_root_comes_from_the_argument_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FEWSHOT_MEM_DATA", raising=False)
    assert default_data_root() == Path("data")
    monkeypatch.setenv("FEWSHOT_MEM_DATA", str(tmp_path))
    assert default_data_root() == tmp_path == resolve_data_root(None)
    assert resolve_data_root("elsewhere") == Path("elsewhere")
    make_tiny_omniglot(tmp_path / "omniglot")
    assert [c.name for c in load_omniglot(download=False, progress=False, layout=TINY_LAYOUT).characters] == TINY_NAMES
