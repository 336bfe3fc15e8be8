"""mini-ImageNet: the split's facts, both published forms, caching, every bad input, downloads from
a local server, the Conv-4 encoder of the sequence models, and both suites end to end.

Copies are generated (tests/miniimagenet_fixtures.py): the real classes, a few images each.
"""

from __future__ import annotations

import importlib
import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from fewshot_mem import bench, suites
from fewshot_mem.budgets import recipe
from fewshot_mem.data.miniimagenet import (CACHE_NAME, CSVS, PICKLES, SHA256_VARIABLE, SPLITS, URL_VARIABLE,
                                           MiniImageNet, find_sources, load_miniimagenet, parse_checksums)
from fewshot_mem.data.miniimagenet_files import SPLIT_WNIDS, check_classes, read_csv
from fewshot_mem.errors import DataCorruptError, DataNotFoundError
from fewshot_mem.models import encoders
from fewshot_mem.models.contract import CHECKS, synthetic_pool
from fewshot_mem.models.learner import SequenceLearner, TaskSpec
from fewshot_mem.models.registry import builtins_of, create, resolve
from miniimagenet_fixtures import (SUITE_IMAGES_PER_CLASS, WRITERS, class_images, csv_rows, fixture_layout,
                                   image_file, pickle_payload, write_csv, write_pickle, write_pickles, write_ravi)
from test_download import digest, listing, server  # noqa: F401  (server is a fixture)

RAVI_CSVS = SHARED_DATA / "mini-imagenet" / "splits" / "ravi"
FORMS = ("pickle", "csv")
SUITES = ("miniimagenet-5way-1shot", "miniimagenet-5way-5shot")


@pytest.fixture(autouse=True)
def no_configured_download(monkeypatch):
    """Tests configure downloads themselves, whatever the environment says."""
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    monkeypatch.delenv(SHA256_VARIABLE, raising=False)


def make_copy(root: Path, form: str, images_per_class: int = 2, folder: str = "miniimagenet") -> Path:
    WRITERS[form](root / folder if folder else root, images_per_class)
    return root


def load(root: Path, images_per_class: int = 2, **options):
    return load_miniimagenet(root, progress=False, layout=fixture_layout(images_per_class), **options)


# ------------------------------------------------------------------ the split


def test_the_split_has_64_16_and_20_distinct_classes_in_wnid_order():
    assert {split: len(wnids) for split, wnids in SPLIT_WNIDS.items()} == {"train": 64, "val": 16, "test": 20}
    every = [wnid for wnids in SPLIT_WNIDS.values() for wnid in wnids]
    assert len(set(every)) == 100
    assert all(list(wnids) == sorted(wnids) for wnids in SPLIT_WNIDS.values())


@pytest.mark.parametrize("split", SPLITS)
def test_the_split_in_code_is_the_one_in_ravi_and_larochelles_csv_files(split):
    path = RAVI_CSVS / CSVS[split]
    if not path.is_file():
        pytest.skip(f"the Ravi & Larochelle split files are not in {RAVI_CSVS}")
    classes = read_csv(path)
    assert tuple(classes) == SPLIT_WNIDS[split]
    check_classes(path, split, {wnid: len(files) for wnid, files in classes.items()})  # 600 each: no error


# ------------------------------------------------------------------ both forms


def expected_image(form: str, root: Path, split: str, wnid: str, instance: int, images_per_class: int) -> np.ndarray:
    """What the source holds for ``instance`` of ``wnid``, channel-first, read independently."""
    if form == "pickle":
        payload = pickle_payload(split, images_per_class)
        return payload["image_data"][payload["class_dict"][wnid][instance]].transpose(2, 0, 1)
    path = root / "miniimagenet" / "images" / image_file(wnid, instance)
    return np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)


@pytest.mark.parametrize("form", FORMS)
def test_each_form_loads_into_memory_mapped_channel_first_pools(tmp_path, form):
    root = make_copy(tmp_path, form, images_per_class=3)
    data = load(root, 3)
    for split in SPLITS:
        pool = data.pool(split)
        assert pool.images.shape == (len(SPLIT_WNIDS[split]), 3, 3, 84, 84) and pool.images.dtype == torch.uint8
        assert pool.class_names == SPLIT_WNIDS[split] and pool.name == f"miniimagenet/{split}@84"
        assert isinstance(data.images(split), np.memmap) and not data.images(split).flags.writeable
        for c, i in ((0, 0), (len(pool.class_names) - 1, 2), (3, 1)):
            wnid = pool.class_names[c]
            assert np.array_equal(pool.images[c, i].numpy(), expected_image(form, root, split, wnid, i, 3))
    assert data.cache_dir == root / "miniimagenet" / "cache" / CACHE_NAME
    assert sorted(p.name for p in data.cache_dir.iterdir()) == ["meta.json", "test.npy", "train.npy", "val.npy"]
    assert [p.name for p in data.cache_dir.parent.iterdir()] == [CACHE_NAME]  # no staging left over
    with pytest.raises(ValueError, match="84x84"):
        data.pool("test", image_size=28)


def test_both_forms_of_the_same_images_give_the_same_pools(tmp_path):
    pools = {form: load(make_copy(tmp_path / form, form, 3), 3).pool("val") for form in FORMS}
    assert pools["pickle"].class_names == pools["csv"].class_names
    pickled, decoded = pools["pickle"].images.float().flatten(2), pools["csv"].images.float().flatten(2)
    distances = (pickled[:, :, None] - decoded[:, None]).abs().mean(-1)  # (C, I, I), JPEG's loss on the diagonal
    assert torch.equal(distances.argmin(-1), torch.arange(3).expand(16, 3))  # same instance order
    assert np.array_equal(pools["pickle"].images.numpy(), class_images("val", 3).transpose(0, 1, 4, 2, 3))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("folder", ["miniimagenet", "mini-imagenet", ""])
def test_every_search_folder_is_found_and_the_cache_goes_to_one_place(tmp_path, form, folder):
    root = make_copy(tmp_path, form, 1, folder)
    sources = find_sources(root)
    assert {s.kind for s in sources.values()} == {form}
    assert {s.path.parent for s in sources.values()} == {root / folder if folder else root}
    assert load(root, 1).cache_dir == root / "miniimagenet" / "cache" / CACHE_NAME


def test_splits_are_found_one_by_one_and_a_pickle_goes_before_a_csv(tmp_path):
    make_copy(tmp_path, "csv", 1, "mini-imagenet")
    write_ravi(tmp_path / "miniimagenet", 1)
    (tmp_path / "miniimagenet" / "train.csv").unlink()
    write_pickle(tmp_path / "miniimagenet" / PICKLES["val"], pickle_payload("val", 1))
    sources = find_sources(tmp_path)
    assert {split: (s.kind, s.path.parent.name) for split, s in sources.items()} == {
        "train": ("csv", "mini-imagenet"), "val": ("pickle", "miniimagenet"), "test": ("csv", "miniimagenet")}
    assert load(tmp_path, 1).classes["val"] == SPLIT_WNIDS["val"]


def test_a_second_load_uses_the_cache_and_a_changed_source_is_rebuilt(tmp_path, monkeypatch):
    root = make_copy(tmp_path, "pickle")
    first = load(root)
    builds = []
    original = MiniImageNet.build_cache
    monkeypatch.setattr(MiniImageNet, "build_cache", lambda *args: builds.append(args) or original(*args))
    again = load(root)
    assert builds == [] and np.array_equal(again.images("train"), first.images("train"))
    changed = root / "miniimagenet" / PICKLES["test"]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load(root)
    assert len(builds) == 1


def test_a_split_changed_in_place_in_the_cache_is_found_and_rebuilt(tmp_path):
    """Issue 20.1: without the digests in meta.json, the changed pixels were served as they were."""
    root = make_copy(tmp_path, "pickle")
    first = load(root)
    built = {split: np.array(first.images(split)) for split in SPLITS}
    path = first.cache_dir / "val.npy"
    times = path.stat()
    pixels = np.load(path, mmap_mode="r+")
    pixels[0, 0] = 255 - pixels[0, 0]  # one image inverted, in the file itself
    pixels.flush()
    del pixels
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))  # and its mtime set back
    with pytest.warns(UserWarning, match=r"val\.npy was modified after the cache was built"):
        again = load(root)
    for split in SPLITS:
        assert np.array_equal(again.images(split), built[split]), split


# ------------------------------------------------------------------ bad input


def drop_class(payload: dict) -> dict:
    return {**payload, "class_dict": {w: r for w, r in payload["class_dict"].items() if w != "n01532829"}}


def drop_image(payload: dict) -> dict:
    return {**payload, "class_dict": {**payload["class_dict"], "n01532829": payload["class_dict"]["n01532829"][1:]}}


def float_images(payload: dict) -> dict:
    return {**payload, "image_data": payload["image_data"].astype(np.float32)}


def row_out_of_range(payload: dict) -> dict:
    return {**payload, "class_dict": {**payload["class_dict"], "n01532829": [0, len(payload["image_data"])]}}


def shared_row(payload: dict) -> dict:
    rows = payload["class_dict"]
    return {**payload, "class_dict": {**rows, "n01532829": [rows["n01558993"][0], rows["n01532829"][1]]}}


PICKLE_DAMAGE = {
    "a class missing": (drop_class, r"63 classes instead of 64(.|\n)*missing classes: n01532829"),
    "an image missing": (drop_image, r"classes without 2 images: n01532829 has 1"),
    "another split's classes": (lambda _: pickle_payload("val", 2),
                                r"16 classes instead of 64(.|\n)*n01855672 \(a val class\)"),
    "other keys": (lambda p: {"data": p["image_data"], "labels": p["class_dict"]},
                   r"keys 'image_data' and 'class_dict', not \['data', 'labels'\]"),
    "float images": (float_images, r"image_data is float32 of shape \(128, 84, 84, 3\), not uint8"),
    "a row out of range": (row_out_of_range, r"points outside image_data's 128 rows"),
    "a row in two classes": (shared_row, r"under two classes"),
    "a list of images": (lambda p: list(p["image_data"]), r"not list"),
}


@pytest.mark.parametrize("damage", PICKLE_DAMAGE)
def test_a_damaged_pickle_is_named_and_nothing_is_cached(tmp_path, damage):
    change, complaint = PICKLE_DAMAGE[damage]
    root = make_copy(tmp_path, "pickle")
    path = write_pickle(root / "miniimagenet" / PICKLES["train"], change(pickle_payload("train", 2)))
    with pytest.raises(DataCorruptError, match=complaint) as error:
        load(root)
    assert str(path) in str(error.value)
    assert not (root / "miniimagenet" / "cache").exists()


def test_a_truncated_pickle_is_named_and_nothing_is_cached(tmp_path):
    root = make_copy(tmp_path, "pickle")
    path = root / "miniimagenet" / PICKLES["val"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataCorruptError, match=f"{path} is not a readable mini-ImageNet pickle.*truncated"):
        load(root)
    assert not (root / "miniimagenet" / "cache").exists()


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    root = make_copy(tmp_path, "pickle")
    marker = tmp_path / "was-run"
    write_pickle(root / "miniimagenet" / PICKLES["test"], {**pickle_payload("test", 2), "x": RunsCode(marker)})
    with pytest.raises(DataCorruptError, match="refers to (posix|os).mkdir, which a mini-ImageNet pickle never does"):
        load(root)
    assert not marker.exists()


def rewrite_rows(folder: Path, keep) -> None:
    write_csv(folder / "train.csv", [row for row in csv_rows("train", 2) if keep(row)])


def replace_image(folder: Path, data: bytes | None = None, size: int = 100) -> None:
    path = folder / "images" / image_file("n01532829", 1)
    if data is None:
        Image.new("RGB", (size, size)).save(path, format="JPEG")
    else:
        path.write_bytes(data)


CSV_DAMAGE = {
    "a class missing": (lambda f: rewrite_rows(f, lambda row: row[1] != "n01532829"),
                        r"63 classes instead of 64(.|\n)*missing classes: n01532829"),
    "an image missing": (lambda f: (f / "images" / image_file("n01532829", 1)).unlink(),
                         r"1 images listed in .*train.csv are missing from .*images: n0153282900000008.jpg"),
    "another header": (lambda f: (f / "train.csv").write_text("image,class\n"),
                       r"train.csv should start with the header line 'filename,label', not 'image,class'"),
    "a bad row": (lambda f: (f / "train.csv").write_text("filename,label\nn01532829_1.jpg,n01532829\n"),
                  r"train.csv, line 2: 'n01532829_1.jpg,n01532829' is not <wnid><8 digits>.jpg,<wnid>"),
    "a wrong label": (lambda f: write_csv(f / "train.csv", [(image_file("n01532829", 0), "n01558993")]),
                      r"line 2: 'n0153282900000005.jpg,n01558993' is not"),
    "a large image": (replace_image, r"n0153282900000008.jpg is 100x100 pixels, not 84x84"),
    "a broken image": (partial(replace_image, data=b"\xff\xd8\xff not a JPEG"),
                       r"n0153282900000008.jpg is not a readable image"),
}


@pytest.mark.parametrize("damage", CSV_DAMAGE)
def test_a_damaged_ravi_copy_is_named_and_nothing_is_cached(tmp_path, damage):
    change, complaint = CSV_DAMAGE[damage]
    root = make_copy(tmp_path, "csv")
    change(root / "miniimagenet")
    with pytest.raises(DataCorruptError, match=complaint):
        load(root)
    assert not (root / "miniimagenet" / "cache").exists()


def test_missing_data_names_both_forms_every_folder_and_how_to_point_at_a_copy(tmp_path):
    (tmp_path / "mini-imagenet").mkdir()
    (tmp_path / "mini-imagenet" / "train.csv").write_text("filename,label\n")
    with pytest.raises(DataNotFoundError) as error:
        load_miniimagenet(tmp_path)
    message = str(error.value)
    assert "(train, val and test splits)" in message and "no official host" in message
    for folder in (tmp_path / "miniimagenet", tmp_path / "mini-imagenet", tmp_path):
        assert f"{folder}/mini-imagenet-cache-{{train,validation,test}}.pkl" in message
        assert f"{folder}/images/ with {folder}/{{train,val,test}}.csv" in message
    assert "found only train.csv" in message
    for needed in (*PICKLES.values(), "filename,label", "--data-root", "FEWSHOT_MEM_DATA", URL_VARIABLE,
                   SHA256_VARIABLE):
        assert needed in message
    with pytest.raises(DataNotFoundError, match="Downloading was turned off"):
        load_miniimagenet(tmp_path, download=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini-imagenet"]  # nothing written


def test_the_bench_says_how_to_get_mini_imagenet(tmp_path, capsys):
    assert bench.main(["--suite", SUITES[0], "--models", "mann", "--data-root", str(tmp_path / "empty"),
                       "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "mini-imagenet-cache-train.pkl" in error and URL_VARIABLE in error


# ------------------------------------------------------------------ downloads


def served_pickles(served: Path) -> dict[str, str]:
    """Serves the pickles (1 image per class); returns the SHA256_VARIABLE value that matches them."""
    paths = write_pickles(served, 1)
    return {name: digest(paths[split], "sha256") for split, name in zip(SPLITS, ("train", "validation", "test"))}


def as_variable(checksums: dict[str, str]) -> str:
    return ",".join(f"{split}={value}" for split, value in checksums.items())


def test_pickles_are_downloaded_from_the_configured_url_and_verified(server, tmp_path, monkeypatch):
    served, url, requests = server
    monkeypatch.setenv(URL_VARIABLE, url)
    monkeypatch.setenv(SHA256_VARIABLE, as_variable(served_pickles(served)))
    root = tmp_path / "root"
    data = load(root, 1)
    assert data.classes == SPLIT_WNIDS
    assert sorted(requests) == sorted(f"/{name}" for name in PICKLES.values())
    assert listing(root / "miniimagenet") == sorted(["cache", *PICKLES.values()])
    for name in PICKLES.values():
        assert (root / "miniimagenet" / name).read_bytes() == (served / name).read_bytes()
    monkeypatch.setenv(URL_VARIABLE, url + "gone/")
    load(root, 1)
    assert len(requests) == 3  # found on disk: not fetched again


def test_only_the_missing_splits_are_downloaded(server, tmp_path):
    served, url, requests = server
    checksums = served_pickles(served)
    write_ravi(tmp_path / "root" / "mini-imagenet", 1)
    (tmp_path / "root" / "mini-imagenet" / "test.csv").unlink()
    load(tmp_path / "root", 1, url_base=url, checksums={PICKLES["test"]: checksums["test"]})
    assert requests == [f"/{PICKLES['test']}"]


@pytest.mark.parametrize("where, wrong, complaint", [
    ("short/", False, "stopped after 1000 of 100000 bytes"),
    ("", True, "does not match its sha256"),
])
def test_a_truncated_or_mismatching_download_leaves_nothing(server, tmp_path, where, wrong, complaint):
    served, url, _ = server
    checksums = parse_checksums(as_variable(served_pickles(served)))
    if wrong:
        checksums = {name: value[::-1] for name, value in checksums.items()}
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataNotFoundError, match=complaint) as error:
        load(root, 1, url_base=url + where, checksums=checksums)
    assert "Searched:" in str(error.value) and "--data-root" in str(error.value)
    assert listing(root) == []


def test_nothing_is_downloaded_without_a_checksum(server, tmp_path):
    served, url, requests = server
    served_pickles(served)
    with pytest.raises(DataNotFoundError, match=f"no sha256 is configured for {PICKLES['train']}.*{SHA256_VARIABLE}"):
        load(tmp_path / "root", 1, url_base=url, checksums={})
    assert requests == [] and not (tmp_path / "root").exists()


def test_checksums_are_read_by_split_or_file_name():
    a, b, c = "a" * 64, "B" * 64, "0123456789" * 6 + "abcd"
    assert parse_checksums(f"train={a}, val={b}\n{PICKLES['test']}={c}") == {
        PICKLES["train"]: a, PICKLES["val"]: b.lower(), PICKLES["test"]: c}
    assert parse_checksums(f"validation={a}") == {PICKLES["val"]: a} and parse_checksums("") == {}
    for bad in ("train=abc", f"training={a}", a):
        with pytest.raises(ValueError, match=SHA256_VARIABLE):
            parse_checksums(bad)


# ------------------------------------------------------------------ models and recipes


def test_conv4_gives_1600_features_at_84x84_and_evaluates_in_chunks(monkeypatch):
    encoder = encoders.build_encoder("conv4", (3, 84, 84)).eval()
    images = torch.randint(0, 256, (2, 3, 3, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        whole = encoder(images)
        monkeypatch.setattr(encoders, "EVAL_PIXELS_PER_PASS", 84 * 84 * 2)  # two images a pass
        chunked = encoder(images)
    assert whole.shape == (2, 3, 1600) == (2, 3, encoder.output_size)
    assert torch.allclose(whole, chunked, atol=1e-5)
    with pytest.raises(ValueError, match="16x16"):
        encoders.build_encoder("conv4", (3, 8, 8))


SEQUENCE_MODELS = builtins_of(SequenceLearner)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sequence_models_with_conv4_honour_the_learner_contract(name):
    shape = (3, 20, 20)  # small colour images keep the checks fast; the code path is that of 84x84
    pool = synthetic_pool(image_shape=shape)
    small = resolve(name).test_hyperparameters
    for check in CHECKS:
        torch.manual_seed(0)
        check(create(name, TaskSpec(3, image_shape=shape), image_encoder="conv4", **small).double().eval(), pool)


@pytest.mark.parametrize("suite", SUITES)
def test_recipes_use_the_papers_settings_on_mini_imagenet(suite):
    suite = suites.get_suite(suite)
    omniglot = suites.get_suite("omniglot-5way")
    for model in SEQUENCE_MODELS:
        assert recipe(model, suite, "quick").hyperparameters["image_encoder"] == "conv4"
        assert "image_encoder" not in recipe(model, omniglot, "quick").hyperparameters  # raw pixels
    maml = recipe("maml", suite, "paper")
    assert maml.hyperparameters["hidden_size"] == 32
    assert maml.config.batch_size == (4 if suite.shots == (1,) else 2)
    assert recipe("protonet", suite, "paper").train_ways == (30 if suite.shots == (1,) else 20)
    assert recipe("protonet", suite, "smoke").train_ways == suite.ways  # smoke: a few hundred images
    protonet = create("protonet", suite.task())
    assert protonet.embed(torch.zeros(1, 1, 3, 84, 84, dtype=torch.uint8)).shape == (1, 1, 1600)


# ------------------------------------------------------------------ the suites end to end


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory) -> Path:
    """A Ravi copy with the 20 images per class a 5-shot episode with 15 queries needs."""
    return make_copy(tmp_path_factory.mktemp("data"), "csv", SUITE_IMAGES_PER_CLASS)


@pytest.fixture
def fixture_sized(monkeypatch):
    """The suites load the generated copy, which has 20 images per class, not 600."""
    monkeypatch.setattr(suites, "load_miniimagenet",
                        partial(load_miniimagenet, layout=fixture_layout(SUITE_IMAGES_PER_CLASS)))


def test_load_pools_gives_each_suite_its_classes(suite_root, fixture_sized):
    pools = suites.load_pools(suites.get_suite(SUITES[0]), suite_root, progress=False)
    assert {role: pool.class_names for role, pool in pools.items()} == SPLIT_WNIDS
    assert all(pool.images.shape[1:] == (SUITE_IMAGES_PER_CLASS, 3, 84, 84) for pool in pools.values())


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_each_suite_runs_end_to_end_at_the_smoke_budget(suite, suite_root, fixture_sized, tmp_path, capsys,
                                                         monkeypatch):
    # ProtoNet's novelty score is fitted on 64 online episodes (3,200 Conv-4 passes at 84x84, most
    # of a minute here); a few show that the path works.
    monkeypatch.setattr(importlib.import_module("fewshot_mem.evaluate"), "CALIBRATION_EPISODES", 4)
    out = tmp_path / "runs"
    assert bench.main(["--suite", suite, "--models", "protonet,mann", "--budget", "smoke", "--data-root",
                       str(suite_root), "--out", str(out), "--quiet", "--test-episodes", "4"]) == 0
    printed = capsys.readouterr().out
    shots = suites.get_suite(suite).shots[0]
    assert "online protocol" in printed and f"5-way-{shots}-shot" in printed
    for model in ("protonet", "mann"):
        result = json.loads((out / f"{suite}@1" / "results" / f"{model}-smoke-seed0.json").read_text())
        assert result["suite"] == f"{suite}@1" and result["fingerprint"] in printed
        assert set(result["tables"]) == {"online", f"5-way-{shots}-shot"}
        accuracies = result["tables"][f"5-way-{shots}-shot"]["per_episode"][f"5-way-{shots}-shot"]
        # Each an episode's share of right queries (k out of N·Q), and the estimate their mean; an
        # accuracy in [0, 1], asserted before, held for a loss or a mis-scaled count too.
        queries = 5 * suites.get_suite(suite).queries
        assert len(accuracies) == 4 and all(round(a * queries) == pytest.approx(a * queries) for a in accuracies)
        estimate = result["tables"][f"5-way-{shots}-shot"]["estimates"][f"5-way-{shots}-shot"]
        assert estimate["mean"] == pytest.approx(np.mean(accuracies))
    mann = json.loads((out / f"{suite}@1" / "results" / "mann-smoke-seed0.json").read_text())
    assert mann["hyperparameters"] == {"image_encoder": "conv4"}
