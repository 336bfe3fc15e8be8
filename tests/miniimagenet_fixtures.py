"""mini-ImageNet in both published forms, generated: the real classes (64 / 16 / 20 wnids of Ravi &
Larochelle's split) with a few small synthetic 84×84 images each.

* learn2learn's pickles: ``mini-imagenet-cache-{train,validation,test}.pkl``, each a dict with
  exactly ``image_data`` (uint8 N×84×84×3) and ``class_dict`` (wnid -> list of int rows);
* Ravi & Larochelle's layout: ``images/<wnid><8 digits>.jpg`` and ``{train,val,test}.csv`` with the
  header ``filename,label``.

The loader checks copies against a :class:`Layout`; tests pass ``fixture_layout(n)`` (the real class
counts, ``n`` images per class) where the data set has 600.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from fewshot_mem.data.miniimagenet_files import CSVS, PICKLES, SPLIT_WNIDS, SPLITS, Layout

# 5-shot episodes with 15 queries per class, as the suites test, need 20 images of a class.
SUITE_IMAGES_PER_CLASS = 20


def fixture_layout(images_per_class: int) -> Layout:
    return Layout(images_per_class=images_per_class)


def class_images(split: str, images_per_class: int) -> np.ndarray:
    """(classes, images, 84, 84, 3) uint8: a colour per class, a stripe per image, a little noise."""
    classes = len(SPLIT_WNIDS[split])
    rng = np.random.default_rng(SPLITS.index(split))
    colours = rng.integers(0, 200, (classes, 1, 1, 1, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(colours, images_per_class, 1), 84, 2).repeat(84, 3)
    for instance in range(images_per_class):
        images[:, instance, :, 4 * (instance % 20) : 4 * (instance % 20) + 4] = 215  # + noise below 40: no overflow
    return images + rng.integers(0, 40, images.shape, dtype=np.uint8)


def image_file(wnid: str, instance: int) -> str:
    """``n0153282900000005.jpg``; the numbers are sparse, as in the real data."""
    return f"{wnid}{3 * instance + 5:08d}.jpg"


def pickle_payload(split: str, images_per_class: int) -> dict:
    """The dict of a learn2learn pickle; a class's rows are spread over ``image_data``, not contiguous."""
    images = class_images(split, images_per_class)
    classes, per_class = images.shape[:2]
    order = np.random.default_rng(7).permutation(classes * per_class)  # row r holds flat image order[r]
    rows = np.argsort(order)  # flat image i is at row rows[i]
    return {"image_data": images.reshape(-1, 84, 84, 3)[order],
            "class_dict": {wnid: [int(r) for r in rows[c * per_class : (c + 1) * per_class]]
                           for c, wnid in enumerate(SPLIT_WNIDS[split])}}


def write_pickle(path: Path, payload: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def write_pickles(folder: Path, images_per_class: int) -> dict[str, Path]:
    """The three pickles in ``folder``, by split."""
    return {split: write_pickle(folder / PICKLES[split], pickle_payload(split, images_per_class))
            for split in SPLITS}


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return path


def csv_rows(split: str, images_per_class: int) -> list[tuple[str, str]]:
    return [(image_file(wnid, i), wnid) for wnid in SPLIT_WNIDS[split] for i in range(images_per_class)]


def write_ravi(folder: Path, images_per_class: int) -> dict[str, Path]:
    """``images/`` and the three CSVs in ``folder``; returns the CSVs by split."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for wnid, instances in zip(SPLIT_WNIDS[split], class_images(split, images_per_class)):
            for i, image in enumerate(instances):
                Image.fromarray(image).save(folder / "images" / image_file(wnid, i), format="JPEG", quality=90)
    return {split: write_csv(folder / CSVS[split], csv_rows(split, images_per_class)) for split in SPLITS}


WRITERS = {"pickle": write_pickles, "csv": write_ravi}
