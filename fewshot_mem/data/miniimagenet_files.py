"""mini-ImageNet's two published forms on disk, read and validated: learn2learn's pickles and
Ravi & Larochelle's CSVs with their JPEGs (see :mod:`fewshot_mem.data.miniimagenet`)."""

from __future__ import annotations

import csv
import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataCorruptError
from .dataset import file_identity

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84
PICKLES = {"train": "mini-imagenet-cache-train.pkl", "val": "mini-imagenet-cache-validation.pkl",
           "test": "mini-imagenet-cache-test.pkl"}
CSVS = {split: f"{split}.csv" for split in SPLITS}
CSV_HEADER = ["filename", "label"]
IMAGES_FOLDER = "images"

# Ravi & Larochelle's split (train.csv, val.csv, test.csv), classes in wnid order; a test checks
# these lists against the CSV files.
SPLIT_WNIDS: dict[str, tuple[str, ...]] = {
    "train": tuple("""
        n01532829 n01558993 n01704323 n01749939 n01770081 n01843383 n01910747 n02074367
        n02089867 n02091831 n02101006 n02105505 n02108089 n02108551 n02108915 n02111277
        n02113712 n02120079 n02165456 n02457408 n02606052 n02687172 n02747177 n02795169
        n02823428 n02966193 n03017168 n03047690 n03062245 n03207743 n03220513 n03337140
        n03347037 n03400231 n03476684 n03527444 n03676483 n03838899 n03854065 n03888605
        n03908618 n03924679 n03998194 n04067472 n04243546 n04251144 n04258138 n04275548
        n04296562 n04389033 n04435653 n04443257 n04509417 n04515003 n04596742 n04604644
        n04612504 n06794110 n07584110 n07697537 n07747607 n09246464 n13054560 n13133613
        """.split()),
    "val": tuple("""
        n01855672 n02091244 n02114548 n02138441 n02174001 n02950826 n02971356 n02981792
        n03075370 n03417042 n03535780 n03584254 n03770439 n03773504 n03980874 n09256479
        """.split()),
    "test": tuple("""
        n01930112 n01981276 n02099601 n02110063 n02110341 n02116738 n02129165 n02219486
        n02443484 n02871525 n03127925 n03146219 n03272010 n03544143 n03775546 n04146614
        n04149813 n04418357 n04522168 n07613480
        """.split()),
}

# "n0153282900000005.jpg": the class's wnid, then eight digits.
_FILE_NAME = re.compile(r"(n\d{8})\d{8}\.jpg")


@dataclass(frozen=True)
class Layout:
    """What a complete copy holds. The defaults are the data set's numbers; tests validate small
    generated copies (the real classes with a few images each) against smaller ones."""

    classes: Mapping[str, int] = field(default_factory=lambda: {s: len(SPLIT_WNIDS[s]) for s in SPLITS})
    images_per_class: int = 600


OFFICIAL_LAYOUT = Layout()


@dataclass(frozen=True)
class Source:
    """One split, as a learn2learn pickle or as a Ravi CSV with ``images/`` beside it."""

    split: str
    path: Path  # the pickle, or the CSV
    kind: str  # "pickle" or "csv"

    @property
    def images_dir(self) -> Path:
        """Where a CSV's images are."""
        return self.path.parent / IMAGES_FOLDER

    def present(self) -> bool:
        return self.path.is_file() and (self.kind == "pickle" or self.images_dir.is_dir())

    def identity(self, root: Path) -> dict:
        """Cheap identity of the source (path as found, size, mtime): a change triggers a rebuild.

        For a CSV the images folder counts too: its mtime changes when files are added,
        removed or renamed (images edited in place are not noticed).
        """
        found = file_identity(self.kind, self.path, root)
        if self.kind == "csv":
            found["images_mtime_ns"] = self.images_dir.stat().st_mtime_ns
        return found


# --------------------------------------------------------------------------- validating


def _listed(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _owner(wnid: str) -> str:
    """``"n01855672 (a val class)"``: where a class that is out of place belongs."""
    owner = next((split for split in SPLITS if wnid in SPLIT_WNIDS[split]), None)
    return f"{wnid} ({f'a {owner} class' if owner else 'not a mini-ImageNet class'})"


def check_classes(where: Path, split: str, counts: Mapping[str, int], layout: Layout = OFFICIAL_LAYOUT) -> None:
    """Checks a split's classes (wnid -> number of images) against the split and ``layout``.

    Raises:
        DataCorruptError: naming the source, what is missing, extra or of the wrong size.
    """
    expected, problems = SPLIT_WNIDS[split], []
    if len(counts) != layout.classes[split]:
        problems.append(f"{len(counts)} classes instead of {layout.classes[split]}")
    if foreign := sorted(set(counts) - set(expected)):
        problems.append(f"classes that are not {split} classes: {_listed([_owner(wnid) for wnid in foreign])}")
    if layout.classes[split] == len(expected) and (absent := sorted(set(expected) - set(counts))):
        problems.append(f"missing classes: {_listed(absent)}")
    if wrong := [f"{wnid} has {n}" for wnid, n in sorted(counts.items()) if n != layout.images_per_class]:
        problems.append(f"classes without {layout.images_per_class} images: {_listed(wrong)}")
    if problems:
        raise DataCorruptError(f"{where} is not a complete mini-ImageNet {split} split:\n  " + "\n  ".join(problems)
                               + "\nReplace it with a complete copy.")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: anything else a pickle names is refused,
    so a file from elsewhere cannot run code while it is read."""

    ALLOWED = {(module, name) for core in ("numpy.core", "numpy._core")
               for module, name in ((f"{core}.multiarray", "_reconstruct"), (f"{core}.multiarray", "scalar"),
                                    (f"{core}.numeric", "_frombuffer"))} \
        | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a mini-ImageNet pickle never does")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """The dict in a learn2learn pickle, read with :class:`_NumpyOnly`.

    Raises:
        DataCorruptError: the file cannot be read or unpickled (truncated, damaged, foreign).
    """
    try:
        with open(path, "rb") as handle:
            # latin1 decodes the arrays of pickles written by Python 2, as numpy recommends.
            return _NumpyOnly(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as error:
        raise DataCorruptError(f"{path} is not a readable mini-ImageNet pickle ({type(error).__name__}: {error}); "
                               "it may be truncated. Delete it and download or copy it again.") from error


def pickle_classes(payload: object, path: Path, split: str, layout: Layout = OFFICIAL_LAYOUT
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Validates a learn2learn pickle's dict: -> (image_data (N, 84, 84, 3), {wnid: row indices}).

    Raises:
        DataCorruptError: wrong keys or types, wrong classes or counts, rows out of range or shared.
    """
    if not isinstance(payload, dict) or not {"image_data", "class_dict"} <= payload.keys():
        found = sorted(map(str, payload.keys())) if isinstance(payload, dict) else type(payload).__name__
        raise DataCorruptError(f"{path} is not a mini-ImageNet pickle: it should hold a dict with the keys "
                               f"'image_data' and 'class_dict', not {found}")
    images, class_dict = payload["image_data"], payload["class_dict"]
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape:
        found = f"{images.dtype} of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataCorruptError(f"{path}: image_data is {found}, not uint8 of shape (N, 84, 84, 3)")
    rows = {str(wnid): _row_indices(indices) for wnid, indices in class_dict.items()} \
        if isinstance(class_dict, dict) else None
    if rows is None or any(r is None for r in rows.values()):
        raise DataCorruptError(f"{path}: class_dict should map each wnid to a list of row indices")
    check_classes(path, split, {wnid: len(r) for wnid, r in rows.items()}, layout)
    used = np.concatenate(list(rows.values()))
    if used.min() < 0 or used.max() >= len(images):
        raise DataCorruptError(f"{path}: class_dict points outside image_data's {len(images)} rows")
    if len(np.unique(used)) != len(used):
        raise DataCorruptError(f"{path}: class_dict lists some rows of image_data under two classes, or twice")
    return images, rows


def _row_indices(value: object) -> np.ndarray | None:
    """A class_dict entry as int64 row indices, or None if it is not a list of integers."""
    try:
        rows = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        return None
    return rows.astype(np.int64)


def read_csv(path: Path) -> dict[str, list[str]]:
    """The classes of a Ravi split file: {wnid: image file names, in row order}.

    Raises:
        DataCorruptError: unreadable file, another header, or a row that is not
            ``<wnid><8 digits>.jpg,<wnid>``, or a file listed twice.
    """
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))  # -sig: tolerate a BOM
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataCorruptError(f"{path} cannot be read as a CSV file ({error})") from error
    if not rows or rows[0] != CSV_HEADER:
        raise DataCorruptError(f"{path} should start with the header line 'filename,label', not "
                               f"{','.join(rows[0]) if rows else 'nothing'!r}")
    classes: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        match = _FILE_NAME.fullmatch(row[0]) if len(row) == 2 else None
        if match is None or match[1] != row[1]:
            raise DataCorruptError(f"{path}, line {line}: {','.join(row)!r} is not <wnid><8 digits>.jpg,<wnid> "
                                   "(like n0153282900000005.jpg,n01532829)")
        classes.setdefault(row[1], []).append(row[0])
    names = [name for files in classes.values() for name in files]
    if len(set(names)) != len(names):
        raise DataCorruptError(f"{path} lists some images twice")
    return classes


def csv_classes(source: Source, layout: Layout = OFFICIAL_LAYOUT) -> dict[str, list[str]]:
    """A Ravi split, validated on names: its CSV, and every image it lists is in ``images/``.

    Raises:
        DataCorruptError: see :func:`read_csv` and :func:`check_classes`; or images are missing.
    """
    classes = read_csv(source.path)
    check_classes(source.path, source.split, {wnid: len(files) for wnid, files in classes.items()}, layout)
    there = set(os.listdir(source.images_dir))
    if missing := [name for files in classes.values() for name in files if name not in there]:
        raise DataCorruptError(f"{len(missing)} images listed in {source.path} are missing from {source.images_dir}: "
                               f"{_listed(missing)}. Replace the folder with a complete copy.")
    return classes


def decode_image(path: Path) -> np.ndarray:
    """One image file as (3, 84, 84) uint8 RGB.

    Raises:
        DataCorruptError: not a readable image, or not 84×84.
    """
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))  # a few ImageNet JPEGs are greyscale or CMYK
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise DataCorruptError(f"{path} is not a readable image ({error}). Replace it with a good copy.") from error
    if rgb.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataCorruptError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]} pixels, not 84x84: mini-ImageNet's "
                               "images are the ImageNet images resized to 84x84 (this copy may hold the originals).")
    return rgb.transpose(2, 0, 1)
