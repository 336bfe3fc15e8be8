"""What every data set does the same way: find its sources under the data root (or download them),
validate and cache them once, open the cache, and prepare it from the command line.

A data set subclasses :class:`CachedDataset` and supplies its specifics: its parts, where each
may be (``find``), what to tell someone who has none (``name_parts``, ``searched``,
``how_to_get``), how to fetch a missing part (``download``), how to validate, write and read back
its cache (``index``, ``write_cache``, ``from_cache``), and the class pool of a split (``pool``),
which is all the samplers see of it. Loading is then one path for all
(:meth:`CachedDataset.prepare`):

    find (or download) -> key: the sources as found + the layout validated -> the cache if it is
    current and intact, else validate, build it in a staging directory, and open that.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol, TypeVar

from ..errors import CacheError, DataNotFoundError, DownloadError, FewshotMemError
from ..paths import DATA_ROOT_VARIABLE, resolve_data_root
from . import cache
from .episodes import ClassPool

Dataset = TypeVar("Dataset", bound="CachedDataset")


class Source(Protocol):
    """One part of a data set as found on disk."""

    def present(self) -> bool: ...

    def identity(self, root: Path) -> dict:
        """Cheap identity of the source (paths as found, sizes, mtimes): a change triggers a rebuild."""


def file_identity(kind: str, path: Path, root: Path) -> dict:
    """``{kind: path relative to root, "bytes": size, "mtime_ns": mtime}``: a cheap identity of one
    source file, for a source's ``identity``."""
    stat = path.stat()  # follows a symbolic link to the file itself
    return {kind: os.path.relpath(path, root), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def first_present(parts: Iterable[str], candidates: Callable[[str], Iterable[Source]]) -> dict[str, Source]:
    """For each part, the first of its ``candidates`` (in search order) that is present; parts
    found nowhere are left out."""
    found = {}
    for part in parts:
        source = next((s for s in candidates(part) if s.present()), None)
        if source is not None:
            found[part] = source
    return found


def layout_key(layout: Any) -> dict:
    """A layout dataclass as plain JSON data, for the cache key."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in asdict(layout).items()}


class CachedDataset(ABC):
    """A data set found (or downloaded) under the data root, validated and cached once.

    Subclasses set the class attributes and implement the hooks below; instances are the
    opened caches (made by :meth:`from_cache`).
    """

    title: ClassVar[str]  # "Omniglot": how messages name it
    folder: ClassVar[str]  # "omniglot": <data root>/<folder>/ receives downloads and cache/
    parts: ClassVar[tuple[str, ...]]  # what must be found, each on its own
    # Bump when the cache's files or their meaning change; older versions are then rebuilt and removed.
    cache_version: ClassVar[int]

    # --------------------------------------------------------------------------- hooks

    @classmethod
    @abstractmethod
    def find(cls, root: Path) -> dict[str, Source]:
        """The source found for each part (parts found nowhere are left out)."""

    @classmethod
    @abstractmethod
    def name_parts(cls, parts: list[str]) -> str:
        """How a message names the missing ``parts``: "images_background", "val split"."""

    @classmethod
    @abstractmethod
    def searched(cls, root: Path) -> list[str]:
        """One line per place searched, for the message when something is missing."""

    @classmethod
    @abstractmethod
    def how_to_get(cls, root: Path, offer_download: bool) -> str:
        """The end of that message: how to get the data set or point at a copy."""

    @classmethod
    @abstractmethod
    def download(cls, root: Path, missing: list[str], url_base: str | None, checksums: Mapping[str, str],
                 progress: bool) -> dict[str, Source]:
        """Fetches the ``missing`` parts; raises DownloadError, or DataNotFoundError when it cannot try."""

    @classmethod
    @abstractmethod
    def index(cls, sources: Mapping[str, Source], layout: Any) -> Any:
        """Validates the sources cheaply (names, not contents) before anything is written; returns
        what :meth:`write_cache` needs of them."""

    @classmethod
    @abstractmethod
    def write_cache(cls, stage: cache.Stage, sources: Mapping[str, Source], index: Any, layout: Any,
                    progress: bool, **options: Any) -> None:
        """Writes the arrays into ``stage.path`` and what else the cache records into ``stage.meta``."""

    @classmethod
    @abstractmethod
    def from_cache(cls: type[Dataset], cache_dir: Path, meta: dict, layout: Any) -> Dataset | None:
        """The data set read from a current, intact cache; None if its arrays do not fit ``layout``.
        May raise OSError, EOFError, ValueError, KeyError or TypeError for a damaged cache."""

    @abstractmethod
    def pool(self, split: str, image_size: int) -> ClassPool:
        """The classes of ``split`` at ``image_size``, ready for the samplers."""

    # --------------------------------------------------------------------------- the one path

    @classmethod
    def cache_name(cls) -> str:
        return f"{cls.folder}-v{cls.cache_version}"

    @classmethod
    def cache_dir(cls, root: Path) -> Path:
        return root / cls.folder / "cache" / cls.cache_name()

    @classmethod
    def missing_message(cls, root: Path, missing: list[str], reason: str = "", offer_download: bool = True) -> str:
        return (f"{cls.title} ({cls.name_parts(missing)}) was not found under the data root {root}."
                f"{' ' + reason if reason else ''}\n"
                "Searched:\n" + "\n".join(cls.searched(root)) + "\n" + cls.how_to_get(root, offer_download))

    @classmethod
    def describe_missing(cls, data_root: str | Path | None = None) -> str:
        """What is missing under the data root, where we looked and how to get it; "" if nothing is."""
        root = resolve_data_root(data_root)
        found = cls.find(root)
        missing = [part for part in cls.parts if part not in found]
        return cls.missing_message(root, missing) if missing else ""

    @classmethod
    def find_or_download(cls, root: Path, download: bool, progress: bool, url_base: str | None,
                         checksums: Mapping[str, str]) -> dict[str, Source]:
        sources = cls.find(root)
        missing = [part for part in cls.parts if part not in sources]
        if not missing:
            return sources
        if not download:
            raise DataNotFoundError(cls.missing_message(root, missing, "Downloading was turned off."))
        try:
            sources.update(cls.download(root, missing, url_base, checksums, progress))
        except DownloadError as error:
            raise DataNotFoundError(cls.missing_message(root, missing, f"Downloading failed: {error}",
                                                        offer_download=False)) from error
        return sources

    @classmethod
    def prepare(cls: type[Dataset], data_root: str | Path | None, *, download: bool, progress: bool,
                url_base: str | None, checksums: Mapping[str, str], layout: Any, **options: Any) -> Dataset:
        """Finds (or downloads) the sources, and returns the cache built from them (building it first
        unless it is current and intact). ``options`` go to :meth:`write_cache`.

        Raises:
            DataNotFoundError: a part is nowhere under the data root and cannot be downloaded.
            DataCorruptError: a copy is incomplete or damaged (nothing is cached then).
            CacheError: the cache directory cannot be written (nothing is changed).
        """
        root = resolve_data_root(data_root)
        sources = cls.find_or_download(root, download, progress, url_base, checksums)
        cache_dir = cls.cache_dir(root)
        key = {"sources": {part: sources[part].identity(root) for part in cls.parts}, "layout": layout_key(layout)}
        data = cls.open_cache(cache_dir, key, layout)
        if data is None:
            cls.build_cache(sources, cache_dir, key, layout, progress, **options)
            data = cls.open_cache(cache_dir, key, layout)
            if data is None:
                raise CacheError(f"the {cls.title} cache written to {cache_dir} cannot be read back; "
                                 "delete it, or choose another data root with --data-root or FEWSHOT_MEM_DATA.")
        return data

    @classmethod
    def open_cache(cls: type[Dataset], cache_dir: Path, key: dict, layout: Any) -> Dataset | None:
        """The cached data set if it is complete and built from ``key``; else None (rebuild it)."""
        if not cache.is_current(cache_dir, cls.cache_version, key) \
                or not cache.intact(cache_dir, f"the {cls.title} cache"):
            return None
        try:
            return cls.from_cache(cache_dir, cache.read_meta(cache_dir), layout)
        except (OSError, EOFError, ValueError, KeyError, TypeError):  # a damaged cache is rebuilt, not trusted
            return None

    @classmethod
    def build_cache(cls, sources: Mapping[str, Source], cache_dir: Path, key: dict, layout: Any, progress: bool,
                    **options: Any) -> None:
        """Validates, then writes everything into a staging directory and renames it into place."""
        index = cls.index(sources, layout)  # cheap checks first: they fail before anything is written
        with cache.staged(cache_dir, cls.cache_version, key) as stage:
            cls.write_cache(stage, sources, index, layout, progress, **options)
        cache.remove_other_versions(cache_dir, rf"{cls.folder}-v\d+")


def prepare_from_command_line(dataset: type[Dataset], argv: list[str] | None, module: str, description: str,
                              building: str,
                              add_arguments: Callable[[argparse.ArgumentParser], None],
                              load: Callable[[Path, argparse.Namespace], Dataset],
                              report: Callable[[Dataset, Path, float], None]) -> None:
    """The command line of a data set's module: prepares its cache (``--rebuild``: from scratch),
    then ``report``s what it holds and what it cost. ``building`` names the work ("decode")."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--data-root", default=None, help=f"default: ${DATA_ROOT_VARIABLE} or data/")
    parser.add_argument("--rebuild", action="store_true", help=f"{building} again even if the cache is current")
    parser.add_argument("--no-download", action="store_true")
    add_arguments(parser)
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    if args.rebuild:
        shutil.rmtree(dataset.cache_dir(root), ignore_errors=True)
    start = time.perf_counter()
    try:
        data = load(root, args)
    except (FewshotMemError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    report(data, root, time.perf_counter() - start)
