"""A copy of Omniglot on disk: its parts and layout, where each part may be, and the names of its
files validated (see :mod:`fewshot_mem.data.omniglot` for the whole story)."""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from ..errors import DataCorruptError
from .dataset import file_identity, first_present

PARTS = ("background", "evaluation")
IMAGE_SIZE = 105
RESIZED = (28, 20)
SIZES = (IMAGE_SIZE, *RESIZED)

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

    @property
    def part(self) -> str:
        return "background" if self.background else "evaluation"


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
            with open_zip(self.path) as archive:
                return [m for m in archive.namelist() if m.endswith(".png")]
        return sorted(p.relative_to(self.path.parent).as_posix() for p in self.path.rglob("*.png"))

    def present(self) -> bool:
        return self.path.is_file() if self.is_zip else self.path.is_dir()

    def identity(self, root: Path) -> dict:
        """Cheap identity of the source (paths as found, sizes, mtimes): a change triggers a rebuild."""
        if self.is_zip:
            return file_identity("zip", self.path, root)
        stats = list(_file_stats(self.path))
        return {"folder": os.path.relpath(self.path, root), "files": len(stats), "bytes": sum(s.st_size for s in stats),
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


def find_sources(root: Path) -> dict[str, Source]:
    """The source found for each part (parts found nowhere are left out)."""
    return first_present(PARTS, lambda part: [Source(part, *where) for where in candidate_paths(root, part)])


def searched_paths(root: Path) -> list[Path]:
    """Every path :func:`find_sources` searches, in order."""
    return [path for part in PARTS for path, _ in candidate_paths(root, part)]


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
                f"{sources[character.part].path}: {character.name} and {seen[character.official_id].name} "
                f"share the character id {character.official_id:04d}; the copy is inconsistent")
        seen[character.official_id] = character


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip at ``path``, or a DataCorruptError that says what to do about it."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DataCorruptError(f"{path} is not a readable zip ({error}); it may be truncated. "
                               f"{damaged_advice(Source('', path, True))}") from error


def damaged_advice(source: Source) -> str:
    """What to do about a damaged source."""
    if source.is_zip:
        return f"Delete {source.path} and download or copy it again."
    return f"Replace {source.path} with a complete copy (or remove it to download the official zip)."
