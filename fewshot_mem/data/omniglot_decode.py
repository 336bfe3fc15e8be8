"""Omniglot's images decoded: each PNG read from its zip or folder, checked, inked (ink = 255) and
reduced to every cached size, in parallel processes when cores are idle."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import closing
from typing import Iterator, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..errors import DataCorruptError
from .omniglot_files import IMAGE_SIZE, PARTS, RESIZED, SIZES, Index, Source, damaged_advice, open_zip

class _Reader:
    """Reads image bytes from one source; a zip is opened once, its index parsed once."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._archive = open_zip(source.path) if source.is_zip else None
        self.advice = damaged_advice(source)

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
            open_zip(source.path).close()
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

