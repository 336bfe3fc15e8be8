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

Splits are data (:data:`OMNIGLOT_SPLITS`): rules over the canonical order.
"""

from __future__ import annotations

import io
import os
import re
import time
import zipfile
import zlib
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import CacheError, DataCorruptError, DataNotFoundError, DownloadError
from ..paths import DATA_ROOT_VARIABLE, resolve_data_root
from . import cache
from .download import download as fetch

PARTS = ("background", "evaluation")
IMAGE_SIZE = 105
RESIZED = (28, 20)
SIZES = (IMAGE_SIZE, *RESIZED)
# Bump when the cache's files or their meaning change; older versions are then rebuilt and removed.
CACHE_VERSION = 2
CACHE_NAME = f"omniglot-v{CACHE_VERSION}"

OFFICIAL_URL_BASE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {"images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
                "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811"}

# "images_background/Gurmukhi/character41/0957_03.png", possibly below a folder.
_MEMBER = re.compile(r"(?:^|/)images_(background|evaluation)/([^/]+)/character(\d+)/(\d+)_(\d+)\.png$")


@dataclass(frozen=True)
class Layout:
    """What a complete copy holds. The defaults are the official data set's numbers;
    tests validate small generated copies against smaller ones."""

    alphabets: Mapping[str, int] = field(default_factory=lambda: {"background": 30, "evaluation": 20})
    characters: Mapping[str, int] = field(default_factory=lambda: {"background": 964, "evaluation": 659})
    drawers: int = 20


OFFICIAL_LAYOUT = Layout()


@dataclass(frozen=True)
class Character:
    """One Omniglot character (20 drawings of it)."""

    alphabet: str  # e.g. "Gurmukhi"
    number: int  # 1-based, from "characterNN"
    official_id: int  # 1..1623, from the image file names
    background: bool  # True if from images_background, else images_evaluation

    @property
    def name(self) -> str:
        """``"Gurmukhi/character41"``, as in the official folders and the split files."""
        return f"{self.alphabet}/character{self.number:02d}"


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitRule:
    """A split as a rule over the canonical character order.

    A character is kept if it comes from one of ``parts``, lies after the
    character named ``after`` and up to (including) ``through``, is in one of
    ``include_alphabets`` (when given) and in none of ``exclude_alphabets``.
    Each kept character gives one class per rotation, character-major.
    """

    parts: tuple[str, ...] = PARTS
    after: str | None = None
    through: str | None = None
    include_alphabets: tuple[str, ...] = ()
    exclude_alphabets: tuple[str, ...] = ()
    rotations: tuple[int, ...] = (0,)


FOUR_ROTATIONS = (0, 90, 180, 270)
VINYALS_LAST_TRAINVAL = "Gurmukhi/character41"  # the 1200th character in canonical order
VINYALS_VAL_ALPHABETS = ("Hebrew", "Mkhedruli_(Georgian)", "Armenian", "Early_Aramaic", "Bengali")

OMNIGLOT_SPLITS: dict[str, SplitRule] = {
    # Vinyals et al. (2016), as distributed with the prototypical-networks code (Snell et al. 2017).
    "vinyals/train": SplitRule(through=VINYALS_LAST_TRAINVAL, exclude_alphabets=VINYALS_VAL_ALPHABETS,
                               rotations=FOUR_ROTATIONS),
    "vinyals/val": SplitRule(through=VINYALS_LAST_TRAINVAL, include_alphabets=VINYALS_VAL_ALPHABETS,
                             rotations=FOUR_ROTATIONS),
    "vinyals/trainval": SplitRule(through=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    "vinyals/test": SplitRule(after=VINYALS_LAST_TRAINVAL, rotations=FOUR_ROTATIONS),
    # Lake et al. (2015): learn on the background set, test on the evaluation set.
    "lake/background": SplitRule(parts=("background",)),
    "lake/evaluation": SplitRule(parts=("evaluation",)),
}
SPLITS = OMNIGLOT_SPLITS  # shorter alias


@dataclass(frozen=True)
class OmniglotSplit:
    """Classes of one split: ``characters[i]`` rotated by ``rotations[i]`` degrees is class i."""

    name: str  # "vinyals/train", "lake/background", ...
    characters: np.ndarray  # (C,) int64 indices into Omniglot.characters
    rotations: np.ndarray  # (C,) int64 degrees in {0, 90, 180, 270}, counter-clockwise

    def __len__(self) -> int:
        return len(self.characters)

    def class_names(self, omniglot: "Omniglot") -> list[str]:
        """``"Alphabet/characterNN/rotDDD"`` for each class, as in the Vinyals split files."""
        return [f"{omniglot.characters[c].name}/rot{r:03d}" for c, r in zip(self.characters, self.rotations)]


def select_split(characters: tuple[Character, ...], name: str) -> OmniglotSplit:
    """Applies the rule ``OMNIGLOT_SPLITS[name]`` to characters in canonical order."""
    if name not in OMNIGLOT_SPLITS:
        raise KeyError(f"unknown Omniglot split {name!r}; choose from {', '.join(OMNIGLOT_SPLITS)}")
    rule = OMNIGLOT_SPLITS[name]
    names = [c.name for c in characters]
    first = _position(names, rule.after, name) + 1 if rule.after else 0
    last = _position(names, rule.through, name) + 1 if rule.through else len(names)
    kept = [i for i in range(first, last)
            if _part(characters[i]) in rule.parts
            and (not rule.include_alphabets or characters[i].alphabet in rule.include_alphabets)
            and characters[i].alphabet not in rule.exclude_alphabets]
    indices = np.repeat(np.array(kept, dtype=np.int64), len(rule.rotations))
    rotations = np.tile(np.array(rule.rotations, dtype=np.int64), len(kept))
    indices.setflags(write=False)  # splits are cached and shared
    rotations.setflags(write=False)
    return OmniglotSplit(name, indices, rotations)


def _position(names: list[str], character: str, split: str) -> int:
    try:
        return names.index(character)
    except ValueError:
        raise ValueError(f"split {split!r} is cut at {character}, which this copy of Omniglot lacks") from None


def _part(character: Character) -> str:
    return "background" if character.background else "evaluation"


def rotate(images, degrees: int):
    """Rotates (..., H, W) images (a numpy array or a torch tensor) ``degrees`` counter-clockwise.

    ``degrees`` must be a multiple of 90; this is the rotation convention of
    every split. Returns a view for numpy arrays.
    """
    if degrees % 90:
        raise ValueError(f"Omniglot rotations are multiples of 90 degrees, not {degrees}")
    k = (degrees // 90) % 4
    if isinstance(images, np.ndarray):
        return np.rot90(images, k=k, axes=(-2, -1))
    return images.rot90(k, dims=(-2, -1))  # a torch tensor; torch is not imported for numpy users


# --------------------------------------------------------------------------- finding


@dataclass(frozen=True)
class Source:
    """One part of the data set, as a zip or as an extracted folder."""

    part: str
    path: Path
    is_zip: bool

    def members(self) -> list[str]:
        """Paths of the PNGs, as in the zip: ``images_<part>/<Alphabet>/characterNN/<id>_<drawer>.png``."""
        if self.is_zip:
            with _open_zip(self.path) as archive:
                return [m for m in archive.namelist() if m.endswith(".png")]
        return sorted(p.relative_to(self.path.parent).as_posix() for p in self.path.rglob("*.png"))

    def fingerprint(self, root: Path) -> dict:
        """Cheap identity of the source (paths as found, sizes, mtimes): a change triggers a rebuild."""
        where = os.path.relpath(self.path, root)
        if self.is_zip:
            stat = self.path.stat()  # follows a symbolic link to the zip itself
            return {"zip": where, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        stats = list(_file_stats(self.path))
        return {"folder": where, "files": len(stats), "bytes": sum(s.st_size for s in stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}


def _file_stats(folder: Path) -> Iterator[os.stat_result]:
    """stat() of every file below ``folder``; os.scandir is several times faster than Path.rglob."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                yield from _file_stats(Path(entry.path))
            elif entry.is_file():
                yield entry.stat()


def candidate_paths(root: Path, part: str) -> list[tuple[Path, bool]]:
    """Where a part may be, in search order, as (path, is_zip)."""
    folders = [root / "omniglot", root / "omniglot" / "omniglot-py", root / "omniglot-py"]
    return ([(folder / f"images_{part}", False) for folder in folders]
            + [(folder / f"images_{part}.zip", True) for folder in folders])


def find_sources(root: Path) -> tuple[dict[str, Source], list[Path]]:
    """The source found for each part, and every path that was searched, in order."""
    found, searched = {}, []
    for part in PARTS:
        for path, is_zip in candidate_paths(root, part):
            searched.append(path)
            if part not in found and (path.is_file() if is_zip else path.is_dir()):
                found[part] = Source(part, path, is_zip)
    return found, searched


def describe_missing(data_root: str | Path | None = None) -> str:
    """What is missing under the data root, where we looked and how to get it; "" if nothing is."""
    root = resolve_data_root(data_root)
    found, searched = find_sources(root)
    if len(found) == len(PARTS):
        return ""
    return _missing_message(root, searched, [p for p in PARTS if p not in found])


def _missing_message(root: Path, searched: Iterable[Path], missing: list[str], reason: str = "",
                     offer_download: bool = True) -> str:
    lines = [f"  {p}{'  (a broken symbolic link)' if p.is_symlink() and not p.exists() else ''}"
             for p in dict.fromkeys(searched)]
    parts = " and ".join(f"images_{p}" for p in missing)
    return (f"Omniglot ({parts}) was not found under the data root {root}."
            f"{(' ' + reason) if reason else ''}\n"
            "Searched:\n" + "\n".join(lines) + "\n"
            f"To get it, put the official images_background.zip and images_evaluation.zip "
            f"(https://github.com/brendenlake/omniglot, folder python/) in {root / 'omniglot'}, or point "
            f"--data-root or {DATA_ROOT_VARIABLE} at a folder that has them (extracted folders and "
            "torchvision's omniglot-py/ layout work too)"
            + ("; or allow downloading." if offer_download else "."))


def _find_or_download(root: Path, download: bool, progress: bool, url_base: str,
                      checksums: Mapping[str, str]) -> dict[str, Source]:
    sources, searched = find_sources(root)
    missing = [part for part in PARTS if part not in sources]
    if not missing:
        return sources
    if not download:
        raise DataNotFoundError(_missing_message(root, searched, missing, "Downloading was turned off."))
    try:
        for part in missing:
            name = f"images_{part}.zip"
            target = fetch(url_base + name, root / "omniglot" / name, checksums[name], "md5", progress=progress)
            sources[part] = Source(part, target, is_zip=True)
    except DownloadError as error:
        raise DataNotFoundError(_missing_message(root, searched, missing, f"Downloading failed: {error}",
                                                 offer_download=False)) from error
    return sources


# --------------------------------------------------------------------------- validating


@dataclass
class Index:
    """The validated layout: characters in canonical order and their images, drawers 01..N."""

    characters: list[Character] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)  # per character, one member per drawer
    parts: list[str] = field(default_factory=list)  # per character


def index_members(sources: Mapping[str, Source], layout: Layout = OFFICIAL_LAYOUT) -> Index:
    """Checks every part's file names against ``layout`` and orders the characters canonically.

    Only names are read here (cheap); image contents are checked while decoding.

    Raises:
        DataCorruptError: naming the source and what is missing or extra.
    """
    index = Index()
    for part in PARTS:
        table = _group_members(sources[part])
        _check_layout(sources[part], table, layout)
        for alphabet, number in sorted(table):
            images = table[(alphabet, number)]
            official_id = next(iter(images.values()))[0]
            index.characters.append(Character(alphabet, number, official_id, part == "background"))
            index.members.append([images[d][1] for d in range(1, layout.drawers + 1)])
            index.parts.append(part)
    _check_unique_ids(sources, index)
    return index


def _group_members(source: Source) -> dict[tuple[str, int], dict[int, tuple[int, str]]]:
    """{(alphabet, number): {drawer: (official id, member)}}, ignoring other files."""
    table: dict[tuple[str, int], dict[int, tuple[int, str]]] = {}
    for member in source.members():
        match = _MEMBER.search(member.replace("\\", "/"))
        if match is None or match.group(1) != source.part:
            continue  # e.g. __MACOSX/ entries
        _, alphabet, number, official_id, drawer = match.groups()
        images = table.setdefault((alphabet, int(number)), {})
        if int(drawer) in images:
            raise DataCorruptError(f"{source.path}: {alphabet}/character{int(number):02d} has two images of "
                                   f"drawer {int(drawer):02d} ({images[int(drawer)][1]} and {member})")
        images[int(drawer)] = (int(official_id), member)
    return table


def _check_layout(source: Source, table, layout: Layout) -> None:
    problems = []
    alphabets = {alphabet for alphabet, _ in table}
    if len(alphabets) != layout.alphabets[source.part]:
        problems.append(f"{len(alphabets)} alphabets instead of {layout.alphabets[source.part]}")
    if len(table) != layout.characters[source.part]:
        problems.append(f"{len(table)} characters instead of {layout.characters[source.part]}")
    wanted = set(range(1, layout.drawers + 1))
    for (alphabet, number), images in sorted(table.items()):
        name = f"{alphabet}/character{number:02d}"
        ids = sorted({official_id for official_id, _ in images.values()})
        if len(ids) > 1:
            problems.append(f"{name} mixes character ids {ids}")
        if missing := sorted(wanted - set(images)):
            files = ", ".join(f"{ids[0]:04d}_{d:02d}.png" for d in missing)
            problems.append(f"{name} has {len(images)} drawers, missing {files}")
        if extra := sorted(set(images) - wanted):
            problems.append(f"{name} has unexpected drawers {', '.join(f'{d:02d}' for d in extra)}")
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DataCorruptError(f"{source.path} is not a complete Omniglot {source.part} set:\n  {shown}\n"
                               "Replace it with a complete copy (or remove it to download the official one).")


def _check_unique_ids(sources: Mapping[str, Source], index: Index) -> None:
    seen: dict[int, Character] = {}
    for character in index.characters:
        if character.official_id in seen:
            raise DataCorruptError(
                f"{sources[_part(character)].path}: {character.name} and {seen[character.official_id].name} "
                f"share the character id {character.official_id:04d}; the copy is inconsistent")
        seen[character.official_id] = character


# --------------------------------------------------------------------------- decoding


class _Reader:
    """Reads image bytes from one source; a zip is opened once, its index parsed once."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._archive = _open_zip(source.path) if source.is_zip else None
        self.advice = _damaged_advice(source)

    def read(self, member: str) -> bytes:
        try:
            if self._archive is not None:
                return self._archive.read(member)
            return (self.source.path.parent / member).read_bytes()
        # zlib.error: a damaged deflate stream (the CRC check comes after the whole member is read).
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError) as error:
            raise DataCorruptError(f"{self.where(member)} cannot be read ({error}). {self.advice}") from error

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()

    def where(self, member: str) -> str:
        return f"{self.source.path}:{member}" if self.source.is_zip else str(self.source.path.parent / member)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DataCorruptError(f"{path} is not a readable zip ({error}); it may be truncated. "
                               f"{_damaged_advice(Source('', path, True))}") from error


def _damaged_advice(source: Source) -> str:
    if source.is_zip:
        return f"Delete {source.path} and download or copy it again."
    return f"Replace {source.path} with a complete copy (or remove it to download the official zip)."


def _decode_png(data: bytes, where: str, advice: str = "", size: int = IMAGE_SIZE) -> np.ndarray:
    """One image as (size, size) uint8, ink = 255, background = 0."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.mode == "1":
                ink = ~np.asarray(image)  # one-bit: True is white paper
            else:  # tolerate re-encoded copies: dark is ink
                ink = np.asarray(image.convert("L")) < 128
    except UnidentifiedImageError as error:
        raise DataCorruptError(f"{where} is not a readable PNG (not a PNG image). {advice}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DataCorruptError(f"{where} is not a readable PNG ({error}). {advice}") from error
    if ink.shape != (size, size):
        raise DataCorruptError(f"{where} is {ink.shape[1]}x{ink.shape[0]} pixels, expected {size}x{size}")
    return ink.astype(np.uint8) * np.uint8(255)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear reduction of one (H, W) uint8 image to (size, size).

    PIL's bilinear filter widens with the reduction factor, so every source
    pixel contributes (the same filter as torch's
    ``interpolate(mode="bilinear", antialias=True)``, to within one grey level).
    """
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def _decode_members(reader: _Reader, members: list[str]) -> tuple[np.ndarray, ...]:
    """The images of ``members`` at every size of :data:`SIZES`, each (n, size, size) uint8."""
    out = tuple(np.empty((len(members), s, s), dtype=np.uint8) for s in SIZES)
    for i, member in enumerate(members):
        image = _decode_png(reader.read(member), reader.where(member), reader.advice)
        out[0][i] = image
        for array, size in zip(out[1:], RESIZED):
            array[i] = resize(image, size)
    return out


# Worker processes keep their own readers, so each opens every zip once, not once per task.
_WORKER_READERS: dict[str, _Reader] = {}


def _start_worker(sources: Mapping[str, Source]) -> None:
    _WORKER_READERS.update({part: _Reader(source) for part, source in sources.items()})


def _decode_in_worker(part: str, members: list[str]) -> tuple[np.ndarray, ...]:
    return _decode_members(_WORKER_READERS[part], members)


def default_workers() -> int:
    """Decoding processes: one per idle core (at most 8), judged by the 1-minute load average.

    On a busy machine extra processes only add overhead: measured on 2 cores
    with another job using both, 2 workers decoded 20% slower than 1.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        idle = cores - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        idle = cores
    return max(1, min(8, cores, round(idle)))


def decode_images(sources: Mapping[str, Source], index: Index, *, workers: int | None = None,
                  chunk: int = 1024, progress: bool = True) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """Decodes and resizes every image of ``index``, yielding ``(start, images)`` blocks as they finish.

    ``images`` holds one (n, size, size) uint8 array per size of :data:`SIZES`
    for the flat image positions ``start .. start + n`` in (character, drawer)
    order. Blocks of at most ``chunk`` images of one part are decoded by
    ``workers`` processes and come back in no particular order.

    Raises:
        DataCorruptError: for the first unreadable member or PNG, or a wrong size.
    """
    drawers = len(index.members[0]) if index.members else 0
    tasks = []
    for part in PARTS:
        positions = [i for i, p in enumerate(index.parts) if p == part]
        flat = [(i * drawers + d, m) for i in positions for d, m in enumerate(index.members[i])]
        for begin in range(0, len(flat), chunk):
            block = flat[begin : begin + chunk]
            tasks.append((block[0][0], part, [m for _, m in block]))  # a part's characters are contiguous
    workers = default_workers() if workers is None else workers
    with tqdm(total=drawers * len(index.characters), unit="img", desc="decoding Omniglot",
              disable=not progress) as bar:
        blocks = _decode_parallel(sources, tasks, workers) if workers > 1 and len(tasks) > 1 \
            else _decode_serial(sources, tasks)
        with closing(blocks):
            for start, images in blocks:
                bar.update(len(images[0]))
                yield start, images


def _decode_serial(sources, tasks) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    readers = {}
    try:
        for start, part, members in tasks:
            if part not in readers:
                readers[part] = _Reader(sources[part])
            yield start, _decode_members(readers[part], members)
    finally:
        for reader in readers.values():
            reader.close()


def _decode_parallel(sources, tasks, workers) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    for source in sources.values():  # a broken zip is reported once, here, not by every worker
        if source.is_zip:
            _open_zip(source.path).close()
    pool = ProcessPoolExecutor(min(workers, len(tasks)), initializer=_start_worker, initargs=(dict(sources),))
    try:
        pending = {pool.submit(_decode_in_worker, part, members): start for start, part, members in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                start = pending.pop(future)
                yield start, future.result()  # re-raises a worker's DataCorruptError
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the data set


class Omniglot:
    """The decoded data set: character metadata, images at each cached size, splits.

    Obtain it with :func:`load_omniglot`.
    """

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
        """The classes of split ``name`` (a key of :data:`OMNIGLOT_SPLITS`)."""
        if name not in self._splits:
            self._splits[name] = select_split(self.characters, name)
        return self._splits[name]


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
    root = resolve_data_root(data_root)
    sources = _find_or_download(root, download, progress, url_base, checksums)
    cache_dir = root / "omniglot" / "cache" / CACHE_NAME
    key = _cache_key(root, sources, layout)
    omniglot = _open_cache(cache_dir, key, layout)
    if omniglot is None:
        _build_cache(sources, cache_dir, key, layout, progress, workers)
        omniglot = _open_cache(cache_dir, key, layout)
        if omniglot is None:
            raise CacheError(f"the Omniglot cache written to {cache_dir} cannot be read back; "
                             "delete it, or choose another data root with --data-root or FEWSHOT_MEM_DATA.")
    return omniglot


def _cache_key(root: Path, sources: Mapping[str, Source], layout: Layout) -> dict:
    return {"sources": {part: sources[part].fingerprint(root) for part in PARTS},
            "layout": {k: dict(v) if isinstance(v, Mapping) else v for k, v in asdict(layout).items()}}


def _open_cache(cache_dir: Path, key: dict, layout: Layout) -> Omniglot | None:
    """The cached data set if it is complete and built from ``key``; else None (rebuild it)."""
    if not cache.is_current(cache_dir, CACHE_VERSION, key) or not cache.intact(cache_dir, "the Omniglot cache"):
        return None
    try:
        characters = tuple(Character(**c) for c in cache.read_meta(cache_dir)["characters"])
        arrays = {size: cache.load_array(cache_dir, f"images_{size}", mmap=True) for size in SIZES}
    except (OSError, EOFError, ValueError, KeyError, TypeError):  # a damaged cache is rebuilt, not trusted
        return None
    if any(a.shape != (len(characters), layout.drawers, s, s) or a.dtype != np.uint8 for s, a in arrays.items()):
        return None
    return Omniglot(characters, cache_dir, arrays)


def _build_cache(sources: Mapping[str, Source], cache_dir: Path, key: dict, layout: Layout,
                 progress: bool, workers: int | None) -> None:
    """Validates and decodes everything into a staging directory, then renames it into place."""
    index = index_members(sources, layout)  # names only: fails fast, before anything is written
    count = len(index.characters) * layout.drawers
    with cache.staged(cache_dir, CACHE_VERSION, key) as stage:
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
    cache.remove_other_versions(cache_dir, r"omniglot-v\d+")


def main(argv: list[str] | None = None) -> None:
    """Prepare the Omniglot cache and say how long decoding and loading take."""
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m fewshot_mem.data.omniglot", description=main.__doc__)
    parser.add_argument("--data-root", default=None, help=f"default: ${DATA_ROOT_VARIABLE} or data/")
    parser.add_argument("--rebuild", action="store_true", help="decode again even if the cache is current")
    parser.add_argument("--no-download", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per idle core)")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    if args.rebuild:
        shutil.rmtree(root / "omniglot" / "cache" / CACHE_NAME, ignore_errors=True)
    start = time.perf_counter()
    data = load_omniglot(root, download=not args.no_download, workers=args.workers)
    prepared = time.perf_counter() - start
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
