"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015): find, download, validate, cache, split.

The data set is 1623 handwritten characters from 50 alphabets (30 "background"
alphabets with 964 characters, 20 "evaluation" alphabets with 659), each drawn
once by 20 people as a 105×105 one-bit image: 32,460 images.

Finding. Under the data root ``R`` (``--data-root``, ``$FEWSHOT_MEM_DATA`` or
``data/``), for each part, the first of: the extracted official folders
``R/omniglot/images_<part>/``, torchvision's ``R/omniglot/omniglot-py/images_<part>/``
and ``R/omniglot-py/images_<part>/``; then the official zips in the same three
places (``R/omniglot/images_<part>.zip`` first). Symbolic links are followed.

Downloading. Only when a part is found nowhere, and only with ``download=True``:
the official zips go to ``R/omniglot/`` and must match their md5. Copies a user
supplies are accepted on structure instead (50 alphabets, 1623 characters, 20
drawers each, 105×105 images), because repackaged copies with identical pixels
have different bytes.

Caching. All images are decoded once into ``R/omniglot/cache/omniglot-v2/``
(see :data:`CACHE_VERSION`), built in a staging directory and renamed into place:

* ``images_105.npy``, ``images_28.npy``, ``images_20.npy``: uint8
  ``(1623, 20, size, size)``, ink = 255 and background = 0 (the official PNGs
  are the other way round); drawers in order 01..20; the small sizes are
  antialiased bilinear reductions of the 105×105 images, so they are not binary;
* ``meta.json``: the cache version, the key (a fingerprint of the sources: paths
  as found, sizes, mtimes; and the layout validated), the character metadata and
  each array's sha256 (with its size and times, so that checking it is cheap).

A changed source, a different cache version, or a damaged cache is rebuilt; so is
a cache whose arrays were changed after it was built (:func:`cache.changed_arrays`).

Classes and rotations. Characters are in canonical order: the 30 background
alphabets sorted by name, then the 20 evaluation alphabets sorted by name
(Python's ``sorted``), characters by number. A class is a (character, rotation)
pair; rotation by ``r`` degrees is counter-clockwise, ``np.rot90(image, k=r // 90)``
on (H, W) images, the same as PIL's ``Image.rotate(r)`` used by the
prototypical-networks code (:func:`rotate` applies it to arrays or tensors).

Splits are data (:data:`~fewshot_mem.data.omniglot_splits.OMNIGLOT_SPLITS`): rules over the
canonical order. :meth:`Omniglot.pool` gives a split's classes to the samplers.

The parts: :mod:`.omniglot_files` (layout, sources, names validated), :mod:`.omniglot_decode`
(images decoded), :mod:`.omniglot_splits` (splits, rotations); what every data set shares (find
or download, the cache, the command line) is :mod:`.dataset`.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..paths import DATA_ROOT_VARIABLE
from . import cache
from .dataset import CachedDataset, prepare_from_command_line
from .download import download as fetch
from .episodes import ClassPool
from .omniglot_decode import decode_images
from .omniglot_files import (IMAGE_SIZE, OFFICIAL_LAYOUT, PARTS, RESIZED, SIZES, Character, Index, Layout, Source,
                             find_sources, index_members, searched_paths)
from .omniglot_splits import OmniglotSplit, rotate, select_split

# Bump when the cache's files or their meaning change; older versions are then rebuilt and removed.
CACHE_VERSION = 2

OFFICIAL_URL_BASE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {"images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
                "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811"}


class Omniglot(CachedDataset):
    """The decoded data set: character metadata, images at each cached size, splits.

    Obtain it with :func:`load_omniglot`.
    """

    title = "Omniglot"
    folder = "omniglot"
    parts = PARTS
    cache_version = CACHE_VERSION

    def __init__(self, characters: tuple[Character, ...], cache_dir: Path,
                 arrays: Mapping[int, np.ndarray]) -> None:
        self.characters = characters
        self.cache_dir = cache_dir
        self._arrays = dict(arrays)
        self._splits: dict[str, OmniglotSplit] = {}

    def __len__(self) -> int:
        return len(self.characters)

    def __repr__(self) -> str:
        return f"Omniglot({len(self.characters)} characters, sizes {self.sizes}, cache {self.cache_dir})"

    @property
    def sizes(self) -> tuple[int, ...]:
        return SIZES

    def images(self, size: int = IMAGE_SIZE) -> np.ndarray:
        """(1623, 20, size, size) read-only uint8, ink = 255, background = 0; drawers 01..20.

        ``size`` is 105 (memory-mapped: pages are read as they are used), 28 or 20.
        """
        if size not in self._arrays:
            raise ValueError(f"Omniglot is cached at sizes {self.sizes}, not {size}")
        array = self._arrays[size]
        if isinstance(array, np.memmap) and size != IMAGE_SIZE:  # small sizes: read once, keep in memory
            array = self._arrays[size] = np.array(array)
            array.setflags(write=False)
        return array

    def split(self, name: str) -> OmniglotSplit:
        """The classes of split ``name`` (a key of :data:`.omniglot_splits.OMNIGLOT_SPLITS`)."""
        if name not in self._splits:
            self._splits[name] = select_split(self.characters, name)
        return self._splits[name]

    def pool(self, split: str, image_size: int) -> ClassPool:
        """Split ``split`` at ``image_size``, each (character, rotation) a class, rotated once."""
        chosen = self.split(split)
        base = np.asarray(self.images(image_size)[chosen.characters])  # (C, 20, S, S)
        rotated = np.empty_like(base)
        for degrees in np.unique(chosen.rotations):
            mask = chosen.rotations == degrees
            rotated[mask] = rotate(base[mask], int(degrees))
        images = torch.from_numpy(rotated).unsqueeze(2)  # (C, 20, 1, S, S)
        return ClassPool(f"omniglot/{split}@{image_size}", images, tuple(chosen.class_names(self)))

    # --------------------------------------------------------------------------- CachedDataset's hooks

    @classmethod
    def find(cls, root: Path) -> dict[str, Source]:
        return find_sources(root)

    @classmethod
    def name_parts(cls, parts: list[str]) -> str:
        return " and ".join(f"images_{p}" for p in parts)

    @classmethod
    def searched(cls, root: Path) -> list[str]:
        return [f"  {p}{'  (a broken symbolic link)' if p.is_symlink() and not p.exists() else ''}"
                for p in dict.fromkeys(searched_paths(root))]

    @classmethod
    def how_to_get(cls, root: Path, offer_download: bool) -> str:
        return ("To get it, put the official images_background.zip and images_evaluation.zip "
                f"(https://github.com/brendenlake/omniglot, folder python/) in {root / 'omniglot'}, or point "
                f"--data-root or {DATA_ROOT_VARIABLE} at a folder that has them (extracted folders and "
                "torchvision's omniglot-py/ layout work too)"
                + ("; or allow downloading." if offer_download else "."))

    @classmethod
    def download(cls, root: Path, missing: list[str], url_base: str | None, checksums: Mapping[str, str],
                 progress: bool) -> dict[str, Source]:
        sources = {}
        for part in missing:
            name = f"images_{part}.zip"
            target = fetch(url_base + name, root / "omniglot" / name, checksums[name], "md5", progress=progress)
            sources[part] = Source(part, target, is_zip=True)
        return sources

    @classmethod
    def index(cls, sources: Mapping[str, Source], layout: Layout) -> Index:
        return index_members(sources, layout)  # names only

    @classmethod
    def write_cache(cls, stage: cache.Stage, sources: Mapping[str, Source], index: Index, layout: Layout,
                    progress: bool, workers: int | None = None) -> None:
        count = len(index.characters) * layout.drawers
        shape = (len(index.characters), layout.drawers)
        arrays = {s: np.lib.format.open_memmap(stage.path / f"images_{s}.npy", mode="w+", dtype=np.uint8,
                                               shape=(*shape, s, s)) for s in SIZES}
        flat = [arrays[s].reshape(count, s, s) for s in SIZES]  # views: writes land in the files
        with closing(decode_images(sources, index, workers=workers, progress=progress)) as blocks:
            for start, images in blocks:
                for target, block in zip(flat, images):
                    target[start : start + len(block)] = block
        for array in arrays.values():
            array.flush()
        del flat, arrays
        stage.meta["characters"] = [asdict(c) for c in index.characters]

    @classmethod
    def from_cache(cls, cache_dir: Path, meta: dict, layout: Layout) -> "Omniglot | None":
        characters = tuple(Character(**c) for c in meta["characters"])
        arrays = {size: cache.load_array(cache_dir, f"images_{size}", mmap=True) for size in SIZES}
        if any(a.shape != (len(characters), layout.drawers, s, s) or a.dtype != np.uint8 for s, a in arrays.items()):
            return None
        return cls(characters, cache_dir, arrays)


CACHE_NAME = Omniglot.cache_name()  # "omniglot-v2"


def load_omniglot(data_root: str | Path | None = None, *, download: bool = True, progress: bool = True,
                  url_base: str = OFFICIAL_URL_BASE, checksums: Mapping[str, str] = OFFICIAL_MD5,
                  workers: int | None = None, layout: Layout = OFFICIAL_LAYOUT) -> Omniglot:
    """Finds (or downloads), validates and caches Omniglot; returns it ready to sample.

    Args:
        data_root: folder holding ``omniglot/``; default ``$FEWSHOT_MEM_DATA`` or ``data``.
        download: fetch the official zips into ``<data_root>/omniglot/`` if none is found.
        progress: show progress bars (download, first decode).
        url_base: where the official zips are (``url_base + "images_background.zip"``).
        checksums: md5 of each zip at ``url_base``; checked only for downloads.
        workers: processes for the first decode; default one per idle core (at most 8).
        layout: what a complete copy must hold; the official numbers unless testing.

    Raises:
        DataNotFoundError: nothing under the data root and no download possible;
            the message lists every path searched.
        DataCorruptError: a copy is incomplete or damaged (nothing is cached then).
        CacheError: the cache directory cannot be written (nothing is changed).
    """
    return Omniglot.prepare(data_root, download=download, progress=progress, url_base=url_base, checksums=checksums,
                            layout=layout, workers=workers)


def main(argv: list[str] | None = None) -> None:
    """Prepare the Omniglot cache and say how long decoding and loading take."""
    prepare_from_command_line(
        Omniglot, argv, "fewshot_mem.data.omniglot", main.__doc__, "decode",
        lambda parser: parser.add_argument("--workers", type=int, default=None,
                                           help="decoding processes (default: one per idle core)"),
        lambda root, args: load_omniglot(root, download=not args.no_download, workers=args.workers),
        _report_timings)


def _report_timings(data: Omniglot, root: Path, prepared: float) -> None:
    start = time.perf_counter()
    cached = load_omniglot(root, download=False, progress=False)
    small = [cached.images(size) for size in RESIZED]  # read into memory; 105×105 stays memory-mapped
    opened = time.perf_counter() - start
    start = time.perf_counter()
    full = np.array(cached.images(IMAGE_SIZE))  # every byte of the largest size, in memory
    read = time.perf_counter() - start
    count = full.shape[0] * full.shape[1]
    print(f"{len(data.characters)} characters, {count} images at sizes {cached.sizes} in {cached.cache_dir}")
    print(f"prepare (decode unless cached): {prepared:.2f} s; load from the cache: {opened:.2f} s "
          f"({sum(a.nbytes for a in small) >> 20} MiB read, 105x105 memory-mapped); "
          f"read all {full.nbytes >> 20} MiB of 105x105 images: {read:.2f} s")


if __name__ == "__main__":
    main()
