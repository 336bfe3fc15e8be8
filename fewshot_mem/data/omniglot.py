"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015): find, download, verify, cache, split.

The data set is 1623 handwritten characters from 50 alphabets (30 "background",
20 "evaluation"), each drawn once by 20 people as a 105×105 one-bit image.

* Finding: under the data root, the official zips, the extracted official
  folders, or torchvision's ``omniglot-py/`` layout.
* Downloading: only when nothing is found; the official zips, md5-checked.
  Copies supplied by users are accepted on structure, not on checksum.
* Caching: all 32,460 images are decoded once into a versioned cache holding
  the 105×105 images and antialiased 28×28 and 20×20 versions, as uint8 with
  ink = 255 and background = 0.
* Splits are data (:data:`SPLITS`): rules over the canonical character order
  (the 30 background alphabets by name, then the 20 evaluation alphabets by
  name; characters by number). A (character, rotation) pair is one class;
  rotations are counter-clockwise, ``np.rot90(image, k=degrees // 90)``, the
  same as PIL's ``Image.rotate(degrees)`` in the prototypical-networks code.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import DataCorruptError, DataNotFoundError, DownloadError
from ..paths import DATA_ROOT_VARIABLE, resolve_data_root
from . import cache
from .download import download

PARTS = ("background", "evaluation")
EXPECTED_ALPHABETS = {"background": 30, "evaluation": 20}
EXPECTED_CHARACTERS = {"background": 964, "evaluation": 659}
DRAWERS = 20
IMAGE_SIZE = 105
RESIZED = (28, 20)
CACHE_VERSION = 1

OFFICIAL_URL_BASE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {"images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
                "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811"}

_MEMBER = re.compile(r"(?:^|/)images_(background|evaluation)/([^/]+)/character(\d+)/(\d+)_(\d+)\.png$")


@dataclass(frozen=True)
class Character:
    alphabet: str
    number: int  # 1-based, from "characterNN"
    official_id: int  # 1..1623, from the image file names
    background: bool  # from images_background (else images_evaluation)

    @property
    def name(self) -> str:
        return f"{self.alphabet}/character{self.number:02d}"


# --------------------------------------------------------------------------- splits

@dataclass(frozen=True)
class SplitRule:
    """A split as a rule over the canonical character order.

    Characters are kept if they belong to one of ``parts``, lie after
    ``after`` and up to ``through`` (inclusive) in the canonical order, and
    pass the alphabet filters. Each kept character gives one class per rotation.
    """

    parts: tuple[str, ...] = PARTS
    through: str | None = None
    after: str | None = None
    include_alphabets: tuple[str, ...] = ()
    exclude_alphabets: tuple[str, ...] = ()
    rotations: tuple[int, ...] = (0,)


FOUR_ROTATIONS = (0, 90, 180, 270)
VINYALS_LAST_TRAINVAL = "Gurmukhi/character41"
VINYALS_VAL_ALPHABETS = ("Hebrew", "Mkhedruli_(Georgian)", "Armenian", "Early_Aramaic", "Bengali")

SPLITS: dict[str, SplitRule] = {
    # Vinyals et al. (2016), as distributed with the prototypical-networks code.
    "vinyals/trainval": SplitRule(through=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    "vinyals/train": SplitRule(through=VINYALS_LAST_TRAINVAL, exclude_alphabets=VINYALS_VAL_ALPHABETS,
                               rotations=FOUR_ROTATIONS),
    "vinyals/val": SplitRule(through=VINYALS_LAST_TRAINVAL, include_alphabets=VINYALS_VAL_ALPHABETS,
                             rotations=FOUR_ROTATIONS),
    "vinyals/test": SplitRule(after=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    # Lake et al. (2015): the background set for learning, the evaluation set for testing.
    "lake/background": SplitRule(parts=("background",)),
    "lake/evaluation": SplitRule(parts=("evaluation",)),
}


@dataclass(frozen=True)
class OmniglotSplit:
    name: str
    characters: np.ndarray  # (C,) int64 indices into Omniglot.characters
    rotations: np.ndarray  # (C,) int64 degrees; (character, rotation) is one class

    def __len__(self) -> int:
        return len(self.characters)

    def class_names(self, omniglot: "Omniglot") -> list[str]:
        return [f"{omniglot.characters[c].name}/rot{r:03d}" for c, r in zip(self.characters, self.rotations)]


def select_split(characters: tuple[Character, ...], name: str) -> OmniglotSplit:
    if name not in SPLITS:
        raise KeyError(f"unknown Omniglot split {name!r}; choose from {', '.join(SPLITS)}")
    rule = SPLITS[name]
    names = [c.name for c in characters]
    first = names.index(rule.after) + 1 if rule.after else 0
    last = names.index(rule.through) + 1 if rule.through else len(names)
    kept = [i for i in range(first, last)
            if PARTS[not characters[i].background] in rule.parts
            and (not rule.include_alphabets or characters[i].alphabet in rule.include_alphabets)
            and characters[i].alphabet not in rule.exclude_alphabets]
    return OmniglotSplit(name, np.repeat(np.array(kept, dtype=np.int64), len(rule.rotations)),
                         np.tile(np.array(rule.rotations, dtype=np.int64), len(kept)))


# --------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class Source:
    """One part of the data set, as a zip or as an extracted folder."""

    part: str
    path: Path
    is_zip: bool

    def members(self) -> list[str]:
        if self.is_zip:
            with _open_zip(self.path) as archive:
                return [m for m in archive.namelist() if m.endswith(".png")]
        return [str(p.relative_to(self.path.parent)) for p in self.path.rglob("*.png")]

    def fingerprint(self) -> dict:
        """Cheap identity of the source: a changed file set or zip triggers a rebuild."""
        if self.is_zip:
            stat = self.path.stat()
            return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        stats = [p.stat() for p in self.path.rglob("*.png")]
        return {"path": str(self.path.resolve()), "files": len(stats),
                "size": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataCorruptError(f"{path} is not a readable zip ({error}). It may be truncated: "
                               "delete it and download or copy it again.") from error


def candidate_dirs(root: Path) -> list[Path]:
    return [root / "omniglot", root / "omniglot" / "omniglot-py", root / "omniglot-py"]


def find_sources(root: Path) -> tuple[dict[str, Source], list[Path]]:
    """The sources found for each part, and every path that was searched."""
    found, searched = {}, []
    for part in PARTS:
        for directory in candidate_dirs(root):
            folder, archive = directory / f"images_{part}", directory / f"images_{part}.zip"
            searched += [folder, archive]
            if part in found:
                continue
            if folder.is_dir():
                found[part] = Source(part, folder, is_zip=False)
            elif archive.is_file():
                found[part] = Source(part, archive, is_zip=True)
    return found, searched


def missing_data_message(root: Path, searched: Iterable[Path], reason: str = "") -> str:
    paths = "\n".join(f"  {p}" for p in dict.fromkeys(searched))
    return (f"Omniglot was not found under the data root {root}.{(' ' + reason) if reason else ''}\n"
            f"Searched:\n{paths}\n"
            f"To get it, put the official images_background.zip and images_evaluation.zip "
            f"(https://github.com/brendenlake/omniglot, python/) in {root / 'omniglot'}, or point "
            f"--data-root or {DATA_ROOT_VARIABLE} at a folder that has them (extracted folders and "
            f"torchvision's omniglot-py/ layout work too).")


def download_official(root: Path, parts: Iterable[str], url_base: str, checksums: dict[str, str],
                      progress: bool) -> dict[str, Source]:
    sources = {}
    for part in parts:
        name = f"images_{part}.zip"
        target = download(url_base + name, root / "omniglot" / name, checksums[name], "md5", progress=progress)
        sources[part] = Source(part, target, is_zip=True)
    return sources


# --------------------------------------------------------------------------- structure

@dataclass
class _Index:
    """Parsed member names: characters in canonical order and their 20 images each."""

    characters: list[Character] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)  # per character, drawers 01..20


def index_members(sources: dict[str, Source]) -> _Index:
    """Validates the layout of every part against the official counts and orders it canonically."""
    expected_alphabets, expected_characters, drawers = EXPECTED_ALPHABETS, EXPECTED_CHARACTERS, DRAWERS
    index = _Index()
    for part in PARTS:
        table: dict[tuple[str, int], dict[int, tuple[int, str]]] = {}
        for member in sources[part].members():
            match = _MEMBER.search(member.replace("\\", "/"))
            if match is None or match.group(1) != part:
                continue
            _, alphabet, number, official_id, drawer = match.groups()
            table.setdefault((alphabet, int(number)), {})[int(drawer)] = (int(official_id), member)
        _check_counts(sources[part], table, expected_alphabets[part], expected_characters[part], drawers)
        for alphabet, number in sorted(table):
            images = table[(alphabet, number)]
            ids = {official_id for official_id, _ in images.values()}
            if len(ids) != 1:
                raise DataCorruptError(f"{sources[part].path}: {alphabet}/character{number:02d} mixes "
                                       f"character ids {sorted(ids)}")
            index.characters.append(Character(alphabet, number, ids.pop(), part == "background"))
            index.members.append([images[d][1] for d in range(1, drawers + 1)])
    return index


def _check_counts(source: Source, table, alphabets: int, characters: int, drawers: int) -> None:
    found_alphabets = {alphabet for alphabet, _ in table}
    problems = []
    if len(found_alphabets) != alphabets:
        problems.append(f"{len(found_alphabets)} alphabets instead of {alphabets}")
    if len(table) != characters:
        problems.append(f"{len(table)} characters instead of {characters}")
    for (alphabet, number), images in sorted(table.items()):
        missing = sorted(set(range(1, drawers + 1)) - set(images))
        if missing:
            some_id = next(iter(images.values()))[0]
            names = ", ".join(f"{some_id:04d}_{d:02d}.png" for d in missing)
            problems.append(f"{alphabet}/character{number:02d} has {len(images)} drawers, missing {names}")
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DataCorruptError(f"{source.path} is not a complete Omniglot {source.part} set:\n  {shown}\n"
                               "Replace it with a complete copy (or delete it to download one).")


# --------------------------------------------------------------------------- decoding

def _decode_png(data: bytes, where: str, size: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataCorruptError(f"{where} is not a readable PNG ({error})") from error
    if pixels.shape != (size, size):
        raise DataCorruptError(f"{where} is {pixels.shape[1]}x{pixels.shape[0]}, expected {size}x{size}")
    return np.where(pixels < 128, 255, 0).astype(np.uint8)  # ink (black strokes) = 255


def _decode_chunk(source: Source, members: list[str], size: int) -> np.ndarray:
    """Decodes PNGs from one source; runs in worker processes, so it reopens the zip."""
    out = np.empty((len(members), size, size), dtype=np.uint8)
    if source.is_zip:
        with _open_zip(source.path) as archive:
            for i, member in enumerate(members):
                try:
                    data = archive.read(member)
                except (zipfile.BadZipFile, OSError, EOFError) as error:
                    raise DataCorruptError(f"{source.path}: cannot read {member} ({error}). The zip is damaged: "
                                           "delete it and download or copy it again.") from error
                out[i] = _decode_png(data, f"{source.path}:{member}", size)
    else:
        for i, member in enumerate(members):
            path = source.path.parent / member
            out[i] = _decode_png(path.read_bytes(), str(path), size)
    return out


def decode_images(sources: dict[str, Source], index: _Index, size: int = IMAGE_SIZE,
                  progress: bool = True, workers: int = 2, chunk: int = 1024) -> np.ndarray:
    """All images as (characters, drawers, size, size) uint8, decoded in parallel chunks."""
    jobs = []
    for character, members in zip(index.characters, index.members):
        source = sources[PARTS[not character.background]]
        jobs.extend((source, m) for m in members)
    batches = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    decoded = []
    with tqdm(total=len(jobs), unit="img", desc="decoding Omniglot", disable=not progress) as bar:
        if workers > 1 and len(batches) > 1:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(_decode_batch, batch, size) for batch in batches]
                for future in futures:
                    decoded.append(future.result())
                    bar.update(len(decoded[-1]))
        else:
            for batch in batches:
                decoded.append(_decode_batch(batch, size))
                bar.update(len(decoded[-1]))
    images = np.concatenate(decoded) if decoded else np.empty((0, size, size), np.uint8)
    return images.reshape(len(index.characters), -1, size, size)


def _decode_batch(batch: list[tuple[Source, str]], size: int) -> np.ndarray:
    """Decodes a chunk that may span both parts, keeping its order."""
    out, start = [], 0
    while start < len(batch):
        source = batch[start][0]
        stop = start
        while stop < len(batch) and batch[stop][0] == source:
            stop += 1
        out.append(_decode_chunk(source, [m for _, m in batch[start:stop]], size))
        start = stop
    return np.concatenate(out)


def resize(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """Antialiased bilinear resize of (..., H, W) uint8 images to (..., size, size) uint8."""
    flat = torch.from_numpy(np.ascontiguousarray(images)).reshape(-1, 1, *images.shape[-2:])
    out = torch.empty(flat.shape[0], 1, size, size, dtype=torch.uint8)
    for start in range(0, flat.shape[0], chunk):
        block = flat[start : start + chunk].float()
        small = F.interpolate(block, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = small.round().clamp(0, 255).to(torch.uint8)
    return out.numpy().reshape(*images.shape[:-2], size, size)


# --------------------------------------------------------------------------- the data set

class Omniglot:
    """The decoded data set: character metadata, images at each cached size, splits."""

    def __init__(self, characters: tuple[Character, ...], cache_dir: Path) -> None:
        self.characters = characters
        self.cache_dir = cache_dir
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.characters)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (IMAGE_SIZE, *RESIZED)

    def images(self, size: int = IMAGE_SIZE) -> np.ndarray:
        """(1623, 20, size, size) uint8, ink = 255; 105×105 is memory-mapped."""
        if size not in self.sizes:
            raise ValueError(f"Omniglot is cached at sizes {self.sizes}, not {size}")
        if size not in self._images:
            self._images[size] = cache.load_array(self.cache_dir, f"images_{size}", mmap=size == IMAGE_SIZE)
        return self._images[size]

    def split(self, name: str) -> OmniglotSplit:
        return select_split(self.characters, name)


def _source_fingerprint(sources: dict[str, Source]) -> dict:
    return {part: sources[part].fingerprint() for part in PARTS}


def _characters_from_meta(meta: dict) -> tuple[Character, ...]:
    return tuple(Character(**c) for c in meta["characters"])


def load_omniglot(data_root: str | Path | None = None, *, download: bool = True, progress: bool = True,
                  url_base: str = OFFICIAL_URL_BASE, checksums: dict[str, str] = OFFICIAL_MD5,
                  workers: int = 2) -> Omniglot:
    """Finds (or downloads), validates and caches Omniglot; returns it ready to sample.

    Raises:
        DataNotFoundError: nothing under the data root and no download possible.
        DataCorruptError: a copy is incomplete or damaged (nothing is cached then).
        CacheError: the cache directory cannot be written.
    """
    root = resolve_data_root(data_root)
    sources, searched = find_sources(root)
    missing = [part for part in PARTS if part not in sources]
    if missing:
        if not download:
            raise DataNotFoundError(missing_data_message(root, searched, "Downloading was turned off."))
        created = not (root / "omniglot").exists()
        try:
            sources.update(download_official(root, missing, url_base, checksums, progress))
        except DownloadError as error:
            if created:  # leave the data root as we found it
                shutil.rmtree(root / "omniglot", ignore_errors=True)
            raise DataNotFoundError(missing_data_message(root, searched, f"Downloading failed: {error}")) from error
    cache_dir = root / "omniglot" / "cache" / f"omniglot-v{CACHE_VERSION}"
    fingerprint = _source_fingerprint(sources)
    if not cache.is_current(cache_dir, CACHE_VERSION, fingerprint):
        _build_cache(sources, cache_dir, fingerprint, progress, workers)
    return Omniglot(_characters_from_meta(cache.read_meta(cache_dir)), cache_dir)


def _build_cache(sources: dict[str, Source], cache_dir: Path, fingerprint: dict, progress: bool,
                 workers: int) -> None:
    index = index_members(sources)
    images = decode_images(sources, index, progress=progress, workers=workers)
    arrays = {f"images_{IMAGE_SIZE}": images, **{f"images_{s}": resize(images, s) for s in RESIZED}}
    meta = {"characters": [vars(c) for c in index.characters]}
    cache.write_cache(cache_dir, CACHE_VERSION, fingerprint, arrays, meta)


def main(argv: list[str] | None = None) -> None:
    """Prepare the Omniglot cache and say how long decoding and loading take."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.data.omniglot", description=main.__doc__)
    parser.add_argument("--data-root", default=None, help=f"default: ${DATA_ROOT_VARIABLE} or data/")
    parser.add_argument("--rebuild", action="store_true", help="decode again even if the cache is current")
    parser.add_argument("--no-download", action="store_true")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    if args.rebuild:
        shutil.rmtree(root / "omniglot" / "cache" / f"omniglot-v{CACHE_VERSION}", ignore_errors=True)
    start = time.perf_counter()
    data = load_omniglot(root, download=not args.no_download)
    prepared = time.perf_counter() - start
    start = time.perf_counter()
    cached = load_omniglot(root, download=False, progress=False)
    images = {size: cache.load_array(cached.cache_dir, f"images_{size}") for size in cached.sizes}  # every byte
    loaded = time.perf_counter() - start
    count = sum(a.shape[0] * a.shape[1] for a in images.values()) // len(images)
    print(f"{len(data.characters)} characters, {count} images at sizes {cached.sizes} in {cached.cache_dir}")
    print(f"prepare (decode unless cached): {prepared:.2f} s; load every image from the cache: {loaded:.2f} s")


if __name__ == "__main__":
    main()
