"""mini-ImageNet (Vinyals et al. 2016) with the split of Ravi & Larochelle (2017): find, download,
validate, cache.

100 ImageNet classes with 600 colour images of 84×84 each: 64 training, 16 validation and 20 test
classes, named by their WordNet ids (:data:`SPLIT_WNIDS`, the split every paper since Ravi &
Larochelle uses).

Finding. Under the data root ``R`` (``--data-root``, ``$FEWSHOT_MEM_DATA`` or ``data/``) the
folders ``R/miniimagenet/``, ``R/mini-imagenet/`` and ``R/`` itself are searched in that order,
each split on its own, for either form people have:

* learn2learn's pickles ``mini-imagenet-cache-{train,validation,test}.pkl``: a dict with
  ``image_data`` (uint8, N×84×84×3, RGB) and ``class_dict`` (wnid -> list of row indices);
* Ravi & Larochelle's layout: ``images/`` holding ``<wnid><8 digits>.jpg`` (e.g.
  ``n0153282900000005.jpg``) beside ``train.csv``, ``val.csv`` and ``test.csv``, each with the
  header ``filename,label``.

In one folder a pickle is taken before the CSV (it needs no decoding). Symbolic links are followed.

Downloading. mini-ImageNet has no official host. Only when a split is found nowhere, only with
``download=True``, and only when a URL base is configured (:data:`URL_VARIABLE` or ``url_base``)
are learn2learn's pickles fetched into ``R/miniimagenet/``, each kept only if it matches its
sha256 (:data:`KNOWN_SHA256`, :data:`SHA256_VARIABLE` or ``checksums``; a file without a
configured checksum is not downloaded at all).

Validating. Copies are accepted on structure, not bytes: each split holds exactly its wnids
(64 / 16 / 20), 600 images per class, 84×84 RGB. Pickles are read with an allow-list of numpy's
own globals, so a pickle that is not plain arrays and lists is refused instead of run.

Caching. All images are copied once into ``R/miniimagenet/cache/miniimagenet-v1/`` (see
:data:`CACHE_VERSION`), built in a staging directory and renamed into place:

* ``train.npy``, ``val.npy``, ``test.npy``: uint8 ``(classes, 600, 3, 84, 84)``: channel-first,
  as the samplers use them, so a :class:`~fewshot_mem.data.episodes.ClassPool` is a view of the
  memory-mapped file and the 60,000 images (1.3 GB) need not sit in memory;
* ``meta.json``: the cache version, the key (the sources as found: paths, sizes, mtimes; and the
  layout validated), each split's wnids in the order of the arrays, and each array's sha256: a
  cache whose arrays were changed after it was built is rebuilt (:func:`cache.changed_arrays`).

Classes are in wnid order; a class's images are in the source's order (its ``class_dict`` list,
or its CSV rows, which the published CSVs sort by file name).
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import CacheError, DataCorruptError, DataNotFoundError, DownloadError, FewshotMemError
from ..paths import DATA_ROOT_VARIABLE, resolve_data_root
from . import cache
from .download import download as fetch

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84
PICKLES = {"train": "mini-imagenet-cache-train.pkl", "val": "mini-imagenet-cache-validation.pkl",
           "test": "mini-imagenet-cache-test.pkl"}
CSVS = {split: f"{split}.csv" for split in SPLITS}
CSV_HEADER = ["filename", "label"]
IMAGES_FOLDER = "images"
FOLDERS = ("miniimagenet", "mini-imagenet", "")  # below the data root, in search order; "" is the root
# Bump when the cache's files or their meaning change; older versions are then rebuilt and removed.
CACHE_VERSION = 1
CACHE_NAME = f"miniimagenet-v{CACHE_VERSION}"

URL_VARIABLE = "FEWSHOT_MEM_MINIIMAGENET_URL"  # a URL base serving the three pickles
SHA256_VARIABLE = "FEWSHOT_MEM_MINIIMAGENET_SHA256"  # "train=<hex>,validation=<hex>,test=<hex>"
# sha256 of each pickle at the download URL, by file name. Empty: there is no official host, so
# the bytes of "the" pickles are not known; a mirror's checksums come from SHA256_VARIABLE.
KNOWN_SHA256: dict[str, str] = {}

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
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Layout:
    """What a complete copy holds. The defaults are the data set's numbers; tests validate small
    generated copies (the real classes with a few images each) against smaller ones."""

    classes: Mapping[str, int] = field(default_factory=lambda: {s: len(SPLIT_WNIDS[s]) for s in SPLITS})
    images_per_class: int = 600


OFFICIAL_LAYOUT = Layout()


# --------------------------------------------------------------------------- finding


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

    def fingerprint(self, root: Path) -> dict:
        """Cheap identity of the source (path as found, size, mtime): a change triggers a rebuild.

        For a CSV the images folder counts too: its mtime changes when files are added,
        removed or renamed (images edited in place are not noticed).
        """
        stat = self.path.stat()  # follows a symbolic link to the file itself
        found = {self.kind: os.path.relpath(self.path, root), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if self.kind == "csv":
            found["images_mtime_ns"] = self.images_dir.stat().st_mtime_ns
        return found


def search_folders(root: Path) -> list[Path]:
    return [root / folder if folder else root for folder in FOLDERS]


def candidates(root: Path, split: str) -> list[Source]:
    """Where a split may be, in search order."""
    return [Source(split, folder / name, kind) for folder in search_folders(root)
            for name, kind in ((PICKLES[split], "pickle"), (CSVS[split], "csv"))]


def find_sources(root: Path) -> dict[str, Source]:
    """The source found for each split (splits found nowhere are left out)."""
    found = {}
    for split in SPLITS:
        source = next((s for s in candidates(root, split) if s.present()), None)
        if source is not None:
            found[split] = source
    return found


def _searched(root: Path) -> list[str]:
    """One line per form and folder searched, with what was there of an incomplete form."""
    lines = []
    for folder in search_folders(root):
        forms = ((f"{folder / 'mini-imagenet-cache-'}{{train,validation,test}}.pkl", list(PICKLES.values())),
                 (f"{folder / IMAGES_FOLDER}/ with {folder / '{train,val,test}.csv'}",
                  [IMAGES_FOLDER, *CSVS.values()]))
        for pattern, names in forms:
            there = [name for name in names if (folder / name).exists()]
            broken = [name for name in names if (folder / name).is_symlink() and not (folder / name).exists()]
            notes = ([f"found only {', '.join(there)}"] if 0 < len(there) < len(names) else []) \
                + ([f"broken symbolic links: {', '.join(broken)}"] if broken else [])
            lines.append(f"  {pattern}{'  (' + '; '.join(notes) + ')' if notes else ''}")
    return lines


def _missing_message(root: Path, missing: list[str], reason: str, offer_download: bool = True) -> str:
    splits = f"{', '.join(missing[:-1])} and {missing[-1]} splits" if len(missing) > 1 else f"{missing[0]} split"
    return (f"mini-ImageNet ({splits}) was not found under the data root {root}.{' ' + reason if reason else ''}\n"
            "Searched:\n" + "\n".join(_searched(root)) + "\n"
            "Either form is accepted, in any of those folders:\n"
            f"  - learn2learn's pickles {', '.join(PICKLES.values())};\n"
            f"  - Ravi & Larochelle's layout: {IMAGES_FOLDER}/ with the 84x84 JPEGs (named like "
            "n0153282900000005.jpg) beside train.csv, val.csv and test.csv (header filename,label).\n"
            f"Put one in {root / 'miniimagenet'}, or point --data-root or {DATA_ROOT_VARIABLE} at a folder that "
            "holds one" + (f"; or set {URL_VARIABLE} to a URL base that serves the pickles (and {SHA256_VARIABLE} "
                           "to their sha256, as train=<hex>,validation=<hex>,test=<hex>) to download them."
                           if offer_download else "."))


def describe_missing(data_root: str | Path | None = None) -> str:
    """What is missing under the data root, where we looked and how to get it; "" if nothing is."""
    root = resolve_data_root(data_root)
    missing = [split for split in SPLITS if split not in find_sources(root)]
    return _missing_message(root, missing, "") if missing else ""


# --------------------------------------------------------------------------- downloading


def parse_checksums(text: str) -> dict[str, str]:
    """``"train=<hex>,validation=<hex>,test=<hex>"`` (commas or white space between entries; a
    split name or the pickle's file name before each ``=``) -> {pickle file name: sha256}."""
    names = {**PICKLES, "validation": PICKLES["val"], **{name: name for name in PICKLES.values()}}
    checksums = {}
    for entry in re.split(r"[,\s]+", text.strip()):
        key, _, value = entry.partition("=")
        if not entry:
            continue
        if key not in names or not _SHA256.fullmatch(value):
            raise ValueError(f"{SHA256_VARIABLE}: {entry!r} is not <split>=<64 hex digits> "
                             "(splits: train, validation, test)")
        checksums[names[key]] = value.lower()
    return checksums


def configured_url() -> str | None:
    return os.environ.get(URL_VARIABLE) or None


def configured_checksums() -> dict[str, str]:
    return {**KNOWN_SHA256, **parse_checksums(os.environ.get(SHA256_VARIABLE, ""))}


def _find_or_download(root: Path, download: bool, progress: bool, url_base: str | None,
                      checksums: Mapping[str, str]) -> dict[str, Source]:
    sources = find_sources(root)
    missing = [split for split in SPLITS if split not in sources]
    if not missing:
        return sources
    if not download:
        raise DataNotFoundError(_missing_message(root, missing, "Downloading was turned off."))
    if not url_base:
        raise DataNotFoundError(_missing_message(
            root, missing, f"mini-ImageNet has no official host, and no download URL is configured ({URL_VARIABLE})."))
    if unknown := [PICKLES[split] for split in missing if PICKLES[split] not in checksums]:
        raise DataNotFoundError(_missing_message(
            root, missing, f"Nothing was downloaded from {url_base}: no sha256 is configured for "
            f"{', '.join(unknown)} (set {SHA256_VARIABLE}=train=<hex>,validation=<hex>,test=<hex>).",
            offer_download=False))
    try:
        for split in missing:
            name = PICKLES[split]
            target = fetch(f"{url_base.rstrip('/')}/{name}", root / "miniimagenet" / name, checksums[name], "sha256",
                           progress=progress)
            sources[split] = Source(split, target, "pickle")
    except DownloadError as error:
        raise DataNotFoundError(_missing_message(root, missing, f"Downloading failed: {error}",
                                                 offer_download=False)) from error
    return sources


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


# --------------------------------------------------------------------------- the data set


class MiniImageNet:
    """The cached data set: each split's classes (wnids) and images. Obtain it with :func:`load_miniimagenet`."""

    image_size = IMAGE_SIZE

    def __init__(self, cache_dir: Path, classes: Mapping[str, tuple[str, ...]],
                 arrays: Mapping[str, np.ndarray]) -> None:
        self.cache_dir = cache_dir
        self.classes = dict(classes)
        self._arrays = dict(arrays)

    def __repr__(self) -> str:
        counts = ", ".join(f"{split} {a.shape[0]}x{a.shape[1]}" for split, a in self._arrays.items())
        return f"MiniImageNet({counts} images of 84x84, cache {self.cache_dir})"

    def images(self, split: str) -> np.ndarray:
        """(classes, images per class, 3, 84, 84) uint8 RGB, read-only and memory-mapped; classes
        as in ``classes[split]``."""
        if split not in self._arrays:
            raise KeyError(f"unknown mini-ImageNet split {split!r}; choose from {', '.join(SPLITS)}")
        return self._arrays[split]


def load_miniimagenet(data_root: str | Path | None = None, *, download: bool = True, progress: bool = True,
                      url_base: str | None = None, checksums: Mapping[str, str] | None = None,
                      layout: Layout = OFFICIAL_LAYOUT) -> MiniImageNet:
    """Finds (or downloads), validates and caches mini-ImageNet; returns it ready to sample.

    Args:
        data_root: folder holding ``miniimagenet/`` (or ``mini-imagenet/``); default
            ``$FEWSHOT_MEM_DATA`` or ``data``.
        download: fetch learn2learn's pickles into ``<data_root>/miniimagenet/`` when a split is
            found nowhere, if a URL base is configured.
        progress: show progress bars (download, first build).
        url_base: where the pickles are (``url_base + "/mini-imagenet-cache-train.pkl"``);
            default ``$FEWSHOT_MEM_MINIIMAGENET_URL``, else nothing is downloaded.
        checksums: sha256 of each pickle by file name; default :data:`KNOWN_SHA256` updated
            from ``$FEWSHOT_MEM_MINIIMAGENET_SHA256``. Checked only for downloads.
        layout: what a complete copy must hold; the data set's numbers unless testing.

    Raises:
        DataNotFoundError: a split is nowhere under the data root and cannot be downloaded;
            the message names both forms, every folder searched and how to point at a copy.
        DataCorruptError: a copy is incomplete or damaged (nothing is cached then).
        CacheError: the cache directory cannot be written (nothing is changed).
    """
    root = resolve_data_root(data_root)
    url_base = configured_url() if url_base is None else url_base
    checksums = configured_checksums() if checksums is None else checksums
    sources = _find_or_download(root, download, progress, url_base, checksums)
    cache_dir = root / "miniimagenet" / "cache" / CACHE_NAME
    key = {"sources": {split: sources[split].fingerprint(root) for split in SPLITS},
           "layout": {"classes": dict(layout.classes), "images_per_class": layout.images_per_class}}
    data = _open_cache(cache_dir, key, layout)
    if data is None:
        _build_cache(sources, cache_dir, key, layout, progress)
        data = _open_cache(cache_dir, key, layout)
        if data is None:
            raise CacheError(f"the mini-ImageNet cache written to {cache_dir} cannot be read back; "
                             "delete it, or choose another data root with --data-root or FEWSHOT_MEM_DATA.")
    return data


def _open_cache(cache_dir: Path, key: dict, layout: Layout) -> MiniImageNet | None:
    """The cached data set if it is complete and built from ``key``; else None (rebuild it)."""
    if not cache.is_current(cache_dir, CACHE_VERSION, key) or not cache.intact(cache_dir, "the mini-ImageNet cache"):
        return None
    try:
        classes = {split: tuple(cache.read_meta(cache_dir)["classes"][split]) for split in SPLITS}
        arrays = {split: cache.load_array(cache_dir, split, mmap=True) for split in SPLITS}
    except (OSError, EOFError, ValueError, KeyError, TypeError):  # a damaged cache is rebuilt, not trusted
        return None
    shape = (layout.images_per_class, 3, IMAGE_SIZE, IMAGE_SIZE)
    if any(a.shape != (len(classes[s]), *shape) or a.dtype != np.uint8 for s, a in arrays.items()):
        return None
    return MiniImageNet(cache_dir, classes, arrays)


ClassReader = Callable[[str], np.ndarray]  # wnid -> (images per class, 3, 84, 84) uint8


def _pickle_reader(source: Source, layout: Layout) -> tuple[list[str], ClassReader]:
    images, rows = pickle_classes(read_pickle(source.path), source.path, source.split, layout)
    return sorted(rows), lambda wnid: images[rows[wnid]].transpose(0, 3, 1, 2)


def _csv_reader(source: Source, classes: Mapping[str, list[str]]) -> tuple[list[str], ClassReader]:
    return sorted(classes), lambda wnid: np.stack([decode_image(source.images_dir / name) for name in classes[wnid]])


def _build_cache(sources: Mapping[str, Source], cache_dir: Path, key: dict, layout: Layout, progress: bool) -> None:
    """Validates and copies every split into a staging directory, then renames it into place."""
    # CSVs are checked on names first (cheap): a missing image fails before a pickle is read.
    listed = {split: csv_classes(s, layout) for split, s in sources.items() if s.kind == "csv"}
    with cache.staged(cache_dir, CACHE_VERSION, key) as stage:
        classes = {}
        for split in SPLITS:
            source = sources[split]
            wnids, read = _csv_reader(source, listed[split]) if split in listed else _pickle_reader(source, layout)
            _write_split(stage.path / f"{split}.npy", wnids, read, layout.images_per_class,
                         f"mini-ImageNet {split} ({source.path.name})", progress)
            classes[split] = wnids
        stage.meta["classes"] = classes
        stage.meta["sources"] = {split: str(source.path) for split, source in sources.items()}
    cache.remove_other_versions(cache_dir, r"miniimagenet-v\d+")


def _write_split(path: Path, wnids: list[str], read: ClassReader, per_class: int, label: str,
                 progress: bool) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                    shape=(len(wnids), per_class, 3, IMAGE_SIZE, IMAGE_SIZE))
    for index, wnid in enumerate(tqdm(wnids, unit="class", desc=label, disable=not progress)):
        out[index] = read(wnid)
    out.flush()
    del out  # closes the memory map before the stage is renamed


def main(argv: list[str] | None = None) -> None:
    """Prepare the mini-ImageNet cache and say how long building and loading take."""
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.data.miniimagenet", description=main.__doc__)
    parser.add_argument("--data-root", default=None, help=f"default: ${DATA_ROOT_VARIABLE} or data/")
    parser.add_argument("--rebuild", action="store_true", help="build again even if the cache is current")
    parser.add_argument("--no-download", action="store_true")
    parser.add_argument("--url", default=None, help=f"URL base serving the pickles (default: ${URL_VARIABLE})")
    parser.add_argument("--sha256", default=None, metavar="train=HEX,validation=HEX,test=HEX",
                        help=f"the pickles' sha256 (default: ${SHA256_VARIABLE})")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    if args.rebuild:
        shutil.rmtree(root / "miniimagenet" / "cache" / CACHE_NAME, ignore_errors=True)
    start = time.perf_counter()
    try:
        checksums = None if args.sha256 is None else {**KNOWN_SHA256, **parse_checksums(args.sha256)}
        data = load_miniimagenet(root, download=not args.no_download, url_base=args.url, checksums=checksums)
    except (FewshotMemError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    prepared = time.perf_counter() - start
    start = time.perf_counter()
    every = [np.array(data.images(split)) for split in SPLITS]  # every byte, in memory
    read = time.perf_counter() - start
    print(f"{data!r}")
    print(f"prepare (build unless cached): {prepared:.2f} s; "
          f"read all {sum(a.nbytes for a in every) >> 20} MiB of images from the cache: {read:.2f} s")


if __name__ == "__main__":
    main()
