"""mini-ImageNet (Vinyals et al. 2016) with the split of Ravi & Larochelle (2017): find, download,
validate, cache.

100 ImageNet classes with 600 colour images of 84×84 each: 64 training, 16 validation and 20 test
classes, named by their WordNet ids (:data:`.miniimagenet_files.SPLIT_WNIDS`, the split every
paper since Ravi & Larochelle uses).

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
or its CSV rows, which the published CSVs sort by file name). :meth:`MiniImageNet.pool` gives a
split's classes to the samplers.

Reading and validating the two forms is :mod:`.miniimagenet_files`; what every data set shares
(find or download, the cache, the command line) is :mod:`.dataset`.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DataNotFoundError
from ..paths import DATA_ROOT_VARIABLE
from . import cache
from .dataset import CachedDataset, first_present, prepare_from_command_line
from .download import download as fetch
from .episodes import ClassPool
from .miniimagenet_files import (CSVS, IMAGE_SIZE, IMAGES_FOLDER, OFFICIAL_LAYOUT, PICKLES, SPLITS, Layout, Source,
                                 csv_classes, decode_image, pickle_classes, read_pickle)

FOLDERS = ("miniimagenet", "mini-imagenet", "")  # below the data root, in search order; "" is the root
# Bump when the cache's files or their meaning change; older versions are then rebuilt and removed.
CACHE_VERSION = 1

URL_VARIABLE = "FEWSHOT_MEM_MINIIMAGENET_URL"  # a URL base serving the three pickles
SHA256_VARIABLE = "FEWSHOT_MEM_MINIIMAGENET_SHA256"  # "train=<hex>,validation=<hex>,test=<hex>"
# sha256 of each pickle at the download URL, by file name. Empty: there is no official host, so
# the bytes of "the" pickles are not known; a mirror's checksums come from SHA256_VARIABLE.
KNOWN_SHA256: dict[str, str] = {}

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def search_folders(root: Path) -> list[Path]:
    return [root / folder if folder else root for folder in FOLDERS]


def candidates(root: Path, split: str) -> list[Source]:
    """Where a split may be, in search order."""
    return [Source(split, folder / name, kind) for folder in search_folders(root)
            for name, kind in ((PICKLES[split], "pickle"), (CSVS[split], "csv"))]


def find_sources(root: Path) -> dict[str, Source]:
    """The source found for each split (splits found nowhere are left out)."""
    return first_present(SPLITS, lambda split: candidates(root, split))


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


# --------------------------------------------------------------------------- the data set


class MiniImageNet(CachedDataset):
    """The cached data set: each split's classes (wnids) and images. Obtain it with :func:`load_miniimagenet`."""

    title = "mini-ImageNet"
    folder = "miniimagenet"
    parts = SPLITS
    cache_version = CACHE_VERSION
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

    def pool(self, split: str, image_size: int = IMAGE_SIZE) -> ClassPool:
        """A split ("train", "val", "test"), each class named by its wnid.

        The pool is a view of the memory-mapped cache: images are read from disk as episodes
        gather them, so the 60,000 images need not sit in memory.
        """
        if image_size != self.image_size:
            raise ValueError(f"mini-ImageNet images are {self.image_size}x{self.image_size}, "
                             f"not {image_size}x{image_size}")
        with warnings.catch_warnings():
            # The map is read-only and torch warns that it cannot enforce that; pools are only
            # ever gathered from (which copies), and copying first would load up to 1.3 GB.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            images = torch.from_numpy(self.images(split))  # (C, 600, 3, 84, 84)
        return ClassPool(f"miniimagenet/{split}@{image_size}", images, tuple(self.classes[split]))

    # --------------------------------------------------------------------------- CachedDataset's hooks

    @classmethod
    def find(cls, root: Path) -> dict[str, Source]:
        return find_sources(root)

    @classmethod
    def name_parts(cls, parts: list[str]) -> str:
        return f"{', '.join(parts[:-1])} and {parts[-1]} splits" if len(parts) > 1 else f"{parts[0]} split"

    @classmethod
    def searched(cls, root: Path) -> list[str]:
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

    @classmethod
    def how_to_get(cls, root: Path, offer_download: bool) -> str:
        return ("Either form is accepted, in any of those folders:\n"
                f"  - learn2learn's pickles {', '.join(PICKLES.values())};\n"
                f"  - Ravi & Larochelle's layout: {IMAGES_FOLDER}/ with the 84x84 JPEGs (named like "
                "n0153282900000005.jpg) beside train.csv, val.csv and test.csv (header filename,label).\n"
                f"Put one in {root / 'miniimagenet'}, or point --data-root or {DATA_ROOT_VARIABLE} at a folder that "
                "holds one" + (f"; or set {URL_VARIABLE} to a URL base that serves the pickles (and {SHA256_VARIABLE} "
                               "to their sha256, as train=<hex>,validation=<hex>,test=<hex>) to download them."
                               if offer_download else "."))

    @classmethod
    def download(cls, root: Path, missing: list[str], url_base: str | None, checksums: Mapping[str, str],
                 progress: bool) -> dict[str, Source]:
        if not url_base:
            raise DataNotFoundError(cls.missing_message(root, missing, "mini-ImageNet has no official host, and no "
                                                        f"download URL is configured ({URL_VARIABLE})."))
        if unknown := [PICKLES[split] for split in missing if PICKLES[split] not in checksums]:
            raise DataNotFoundError(cls.missing_message(
                root, missing, f"Nothing was downloaded from {url_base}: no sha256 is configured for "
                f"{', '.join(unknown)} (set {SHA256_VARIABLE}=train=<hex>,validation=<hex>,test=<hex>).",
                offer_download=False))
        sources = {}
        for split in missing:
            name = PICKLES[split]
            target = fetch(f"{url_base.rstrip('/')}/{name}", root / "miniimagenet" / name, checksums[name], "sha256",
                           progress=progress)
            sources[split] = Source(split, target, "pickle")
        return sources

    @classmethod
    def index(cls, sources: Mapping[str, Source], layout: Layout) -> dict[str, dict[str, list[str]]]:
        # CSVs are checked on names first (cheap): a missing image fails before a pickle is read.
        return {split: csv_classes(s, layout) for split, s in sources.items() if s.kind == "csv"}

    @classmethod
    def write_cache(cls, stage: cache.Stage, sources: Mapping[str, Source], index: dict[str, dict[str, list[str]]],
                    layout: Layout, progress: bool) -> None:
        classes = {}
        for split in SPLITS:
            source = sources[split]
            wnids, read = _csv_reader(source, index[split]) if split in index else _pickle_reader(source, layout)
            _write_split(stage.path / f"{split}.npy", wnids, read, layout.images_per_class,
                         f"mini-ImageNet {split} ({source.path.name})", progress)
            classes[split] = wnids
        stage.meta["classes"] = classes
        stage.meta["sources"] = {split: str(source.path) for split, source in sources.items()}

    @classmethod
    def from_cache(cls, cache_dir: Path, meta: dict, layout: Layout) -> "MiniImageNet | None":
        classes = {split: tuple(meta["classes"][split]) for split in SPLITS}
        arrays = {split: cache.load_array(cache_dir, split, mmap=True) for split in SPLITS}
        shape = (layout.images_per_class, 3, IMAGE_SIZE, IMAGE_SIZE)
        if any(a.shape != (len(classes[s]), *shape) or a.dtype != np.uint8 for s, a in arrays.items()):
            return None
        return cls(cache_dir, classes, arrays)


CACHE_NAME = MiniImageNet.cache_name()  # "miniimagenet-v1"


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
    url_base = configured_url() if url_base is None else url_base
    checksums = configured_checksums() if checksums is None else checksums
    return MiniImageNet.prepare(data_root, download=download, progress=progress, url_base=url_base,
                                checksums=checksums, layout=layout)


ClassReader = Callable[[str], np.ndarray]  # wnid -> (images per class, 3, 84, 84) uint8


def _pickle_reader(source: Source, layout: Layout) -> tuple[list[str], ClassReader]:
    images, rows = pickle_classes(read_pickle(source.path), source.path, source.split, layout)
    return sorted(rows), lambda wnid: images[rows[wnid]].transpose(0, 3, 1, 2)


def _csv_reader(source: Source, classes: Mapping[str, list[str]]) -> tuple[list[str], ClassReader]:
    return sorted(classes), lambda wnid: np.stack([decode_image(source.images_dir / name) for name in classes[wnid]])


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
    prepare_from_command_line(MiniImageNet, argv, "fewshot_mem.data.miniimagenet", main.__doc__, "build",
                              _command_line_arguments, _load_from_command_line, _report_timings)


def _command_line_arguments(parser) -> None:
    parser.add_argument("--url", default=None, help=f"URL base serving the pickles (default: ${URL_VARIABLE})")
    parser.add_argument("--sha256", default=None, metavar="train=HEX,validation=HEX,test=HEX",
                        help=f"the pickles' sha256 (default: ${SHA256_VARIABLE})")


def _load_from_command_line(root: Path, args) -> MiniImageNet:
    checksums = None if args.sha256 is None else {**KNOWN_SHA256, **parse_checksums(args.sha256)}
    return load_miniimagenet(root, download=not args.no_download, url_base=args.url, checksums=checksums)


def _report_timings(data: MiniImageNet, root: Path, prepared: float) -> None:
    start = time.perf_counter()
    every = [np.array(data.images(split)) for split in SPLITS]  # every byte, in memory
    read = time.perf_counter() - start
    print(f"{data!r}")
    print(f"prepare (build unless cached): {prepared:.2f} s; "
          f"read all {sum(a.nbytes for a in every) >> 20} MiB of images from the cache: {read:.2f} s")


if __name__ == "__main__":
    main()
