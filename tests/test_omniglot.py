"""Omniglot: the real data set's counts, splits and resizing; caching; every bad input."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fewshot_mem.data import omniglot as omniglot_module
from fewshot_mem.data.omniglot import SPLITS, load_omniglot
from fewshot_mem.errors import CacheError, DataCorruptError, DataNotFoundError
from omniglot_fixtures import TINY_BACKGROUND, TINY_EXPECTED, make_fake_omniglot_zip, make_tiny_omniglot

# ------------------------------------------------------------------ the real data set


def test_real_omniglot_has_the_official_structure(omniglot):
    assert len(omniglot.characters) == 1623
    background = [c for c in omniglot.characters if c.background]
    assert len(background) == 964
    assert len({c.alphabet for c in background}) == 30
    assert len({c.alphabet for c in omniglot.characters if not c.background}) == 20
    assert sorted(c.official_id for c in omniglot.characters) == list(range(1, 1624))
    for size in (105, 28, 20):
        assert omniglot.images(size).shape == (1623, 20, size, size)
        assert omniglot.images(size).dtype == np.uint8


def test_canonical_order_is_background_then_evaluation_by_name(omniglot):
    keys = [(not c.background, c.alphabet, c.number) for c in omniglot.characters]
    assert keys == sorted(keys)


def read_split_file(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


@pytest.mark.parametrize("split", ["train", "val", "trainval", "test"])
def test_vinyals_split_matches_the_reference_files(omniglot, shared_data_dir, split):
    reference = read_split_file(shared_data_dir / "omniglot" / "splits" / "vinyals" / f"{split}.txt")
    ours = omniglot.split(f"vinyals/{split}").class_names(omniglot)
    assert len(ours) == len(set(ours))
    assert set(ours) == reference


def test_vinyals_split_sizes_and_disjointness(omniglot):
    characters = {name: set(omniglot.split(f"vinyals/{name}").characters.tolist())
                  for name in ("train", "val", "trainval", "test")}
    assert {k: len(v) for k, v in characters.items()} == {"train": 1028, "val": 172, "trainval": 1200, "test": 423}
    assert characters["train"] | characters["val"] == characters["trainval"]
    assert not characters["train"] & characters["val"]
    assert not characters["trainval"] & characters["test"]
    assert characters["trainval"] | characters["test"] == set(range(1623))


def test_lake_split_is_background_against_evaluation(omniglot):
    background, evaluation = omniglot.split("lake/background"), omniglot.split("lake/evaluation")
    assert len(background) == 964 and len(evaluation) == 659
    assert all(omniglot.characters[c].background for c in background.characters)
    assert not any(omniglot.characters[c].background for c in evaluation.characters)
    assert set(background.rotations.tolist()) == {0}


def test_every_class_keeps_its_metadata(omniglot):
    split = omniglot.split("vinyals/test")
    for name, character, rotation in zip(split.class_names(omniglot), split.characters, split.rotations):
        meta = omniglot.characters[character]
        assert name == f"{meta.alphabet}/character{meta.number:02d}/rot{rotation:03d}"
        assert 1 <= meta.official_id <= 1623


def test_images_are_ink_on_empty_background(omniglot):
    full = omniglot.images(105)[::50]
    assert set(np.unique(full).tolist()) == {0, 255}
    assert (full == 255).mean() < 0.2  # strokes are thin


def test_resized_images_match_an_independent_antialiased_resize(omniglot):
    full = omniglot.images(105)
    rng = np.random.default_rng(0)
    for character, drawer in zip(rng.integers(0, 1623, 8), rng.integers(0, 20, 8)):
        source = Image.fromarray(np.asarray(full[character, drawer]))
        for size in (28, 20):
            expected = np.asarray(source.resize((size, size), Image.Resampling.BILINEAR)).astype(float)
            ours = omniglot.images(size)[character, drawer].astype(float)
            assert np.abs(ours - expected).mean() < 3.0
    small = omniglot.images(20)
    grey = (small > 0) & (small < 255)
    assert grey.mean() > 0.05  # antialiased, not thresholded


def test_a_second_load_uses_the_cache_without_decoding(omniglot_root, omniglot, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(omniglot_module, "decode_images", refuse)
    again = load_omniglot(omniglot_root, download=False, progress=False)
    assert again.characters == omniglot.characters
    assert np.array_equal(again.images(20), omniglot.images(20))


# ------------------------------------------------------------------ tiny data sets


@pytest.fixture
def tiny_counts(monkeypatch):
    """Validates against the tiny data set's counts instead of the official ones."""
    monkeypatch.setattr(omniglot_module, "EXPECTED_ALPHABETS", TINY_EXPECTED["expected_alphabets"])
    monkeypatch.setattr(omniglot_module, "EXPECTED_CHARACTERS", TINY_EXPECTED["expected_characters"])


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_data_set_loads_from_zips(tmp_path, tiny_counts):
    make_tiny_omniglot(tmp_path / "omniglot")
    data = load_omniglot(tmp_path, download=False, progress=False, workers=1)
    assert [c.name for c in data.characters] == [
        "Alpha/character01", "Alpha/character02", "Beta/character01", "Gamma/character01",
        "Delta/character01", "Delta/character02", "Epsilon/character01"]
    assert data.images(105).shape == (7, 20, 105, 105)
    assert data.images(28).shape == (7, 20, 28, 28)


@pytest.mark.parametrize("layout", ["omniglot", "omniglot/omniglot-py", "omniglot-py"])
def test_extracted_folders_and_torchvision_layout_are_found(tmp_path, tiny_counts, layout):
    zips = make_tiny_omniglot(tmp_path / "zips")
    for path in zips.values():
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path / "root" / layout)
    from_folders = load_omniglot(tmp_path / "root", download=False, progress=False, workers=1)
    shutil.move(tmp_path / "zips", tmp_path / "zroot" / "omniglot")
    from_zips = load_omniglot(tmp_path / "zroot", download=False, progress=False, workers=1)
    assert from_folders.characters == from_zips.characters
    assert np.array_equal(from_folders.images(105), from_zips.images(105))


def test_changed_source_triggers_a_rebuild(tmp_path, tiny_counts, monkeypatch):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    first = load_omniglot(tmp_path, download=False, progress=False, workers=1).images(105).copy()
    make_fake_omniglot_zip(zips["background"], TINY_BACKGROUND, drawers=20)  # same layout, new bytes
    marker = zips["background"].stat()
    calls = []
    original = omniglot_module.decode_images
    monkeypatch.setattr(omniglot_module, "decode_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    load_omniglot(tmp_path, download=False, progress=False, workers=1)
    assert calls, f"the cache was reused after {zips['background']} changed ({marker.st_mtime_ns})"
    assert first.shape == (7, 20, 105, 105)


def test_no_data_without_download_lists_the_paths_searched(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_omniglot(tmp_path, download=False, progress=False)
    message = str(error.value)
    assert str(tmp_path / "omniglot" / "images_background.zip") in message
    assert str(tmp_path / "omniglot-py" / "images_evaluation") in message
    assert "--data-root" in message and "FEWSHOT_MEM_DATA" in message
    assert snapshot(tmp_path) == {} and not any(tmp_path.iterdir())


def test_no_data_and_no_network_says_why_and_changes_nothing(tmp_path):
    with pytest.raises(DataNotFoundError, match="Downloading failed"):
        load_omniglot(tmp_path, download=True, progress=False, url_base="http://127.0.0.1:9/")
    assert not any(tmp_path.iterdir())


def assert_rejected_and_unchanged(root: Path, match: str) -> None:
    before = snapshot(root)
    with pytest.raises(DataCorruptError, match=match):
        load_omniglot(root, download=False, progress=False, workers=1)
    assert snapshot(root) == before
    assert not (root / "omniglot" / "cache").exists() or not any((root / "omniglot" / "cache").iterdir())


def test_truncated_zip_is_rejected(tmp_path, tiny_counts):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    data = zips["evaluation"].read_bytes()
    zips["evaluation"].write_bytes(data[: len(data) // 2])
    assert_rejected_and_unchanged(tmp_path, "images_evaluation.zip is not a readable zip")


def test_corrupt_png_is_rejected(tmp_path, tiny_counts):
    make_tiny_omniglot(tmp_path / "omniglot", corrupt=("Beta/character01/0003_05.png",))
    assert_rejected_and_unchanged(tmp_path, "0003_05.png is not a readable PNG")


def test_missing_drawer_is_named(tmp_path, tiny_counts):
    make_tiny_omniglot(tmp_path / "omniglot", skip=("Alpha/character02/0002_07.png",))
    assert_rejected_and_unchanged(tmp_path, r"Alpha/character02 has 19 drawers, missing 0002_07\.png")


def test_missing_character_is_reported(tmp_path, tiny_counts):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], {"Alpha": 1, "Beta": 1, "Gamma": 1})
    assert_rejected_and_unchanged(tmp_path, "3 characters instead of 4")


def test_missing_alphabet_is_reported(tmp_path, tiny_counts):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], {"Alpha": 3, "Beta": 1})
    assert_rejected_and_unchanged(tmp_path, "2 alphabets instead of 3")


def test_wrong_image_size_is_rejected(tmp_path, tiny_counts):
    zips = make_tiny_omniglot(tmp_path / "omniglot")
    make_fake_omniglot_zip(zips["background"], TINY_BACKGROUND, size=84)
    assert_rejected_and_unchanged(tmp_path, "is 84x84, expected 105x105")


def test_official_counts_are_enforced_on_the_public_loader(tmp_path):
    make_tiny_omniglot(tmp_path / "omniglot")  # real counts are expected here
    assert_rejected_and_unchanged(tmp_path, "3 alphabets instead of 30")


def test_unwritable_cache_directory_is_reported(tmp_path, tiny_counts):
    make_tiny_omniglot(tmp_path / "omniglot")
    (tmp_path / "omniglot" / "cache").write_text("a file where the cache folder belongs")
    before = snapshot(tmp_path)
    with pytest.raises(CacheError, match="--data-root"):
        load_omniglot(tmp_path, download=False, progress=False, workers=1)
    assert snapshot(tmp_path) == before


def test_every_split_rule_names_real_alphabets(omniglot):
    alphabets = {c.alphabet for c in omniglot.characters}
    names = {c.name for c in omniglot.characters}
    for rule in SPLITS.values():
        assert set(rule.include_alphabets + rule.exclude_alphabets) <= alphabets
        assert all(cut in names for cut in (rule.through, rule.after) if cut)
