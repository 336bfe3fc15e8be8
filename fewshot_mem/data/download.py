"""Verified downloads: stream to a ``.part`` file beside the target, check the digest, rename.

A failed, interrupted or mismatching download leaves nothing behind (no
partial file, no folder it had to create), so the next attempt starts clean
and a half file is never mistaken for data.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from ..errors import DownloadError
from ..paths import make_directories, remove_empty_directories, write_atomically

CHUNK = 1 << 20
ALGORITHMS = ("md5", "sha256")
USER_AGENT = "fewshot-mem"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(_checked(algorithm))
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: str | os.PathLike, checksum: str, algorithm: str = "sha256", *,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Downloads ``url`` to ``target``, keeping it only if its ``algorithm`` digest is ``checksum``.

    Args:
        url: what to fetch (any scheme urllib handles).
        target: the final file; its folder is created if needed.
        checksum: expected hex digest (case-insensitive).
        algorithm: "md5" or "sha256".
        timeout: seconds to wait for the connection and for each read.
        progress: show a tqdm bar.

    Raises:
        DownloadError: on any network error, an HTTP error status, a short
            body, or a digest mismatch; the partial file (and any folder
            created for it) is removed first.
        ValueError: for an unknown ``algorithm`` (a programming error, raised
            before anything is fetched).
    """
    algorithm = _checked(algorithm)
    target = Path(target)
    expected = checksum.strip().lower()

    def stream_and_check(out: BinaryIO) -> None:
        actual = _stream(url, out, algorithm, timeout, progress, target.name)
        if actual != expected:
            raise DownloadError(f"download of {url} does not match its {algorithm}: "
                                f"expected {checksum}, got {actual}; nothing was kept")

    try:
        created = make_directories(target.parent)
    except OSError as error:
        raise DownloadError(f"cannot create {target.parent} for a download: {error.strerror or error}") from error
    try:  # a unique temporary file per download, renamed into place only once checked
        write_atomically(stream_and_check, target, suffix=".part")
    except DownloadError:
        remove_empty_directories(created)
        raise
    except Exception as error:
        remove_empty_directories(created)
        raise DownloadError(f"could not download {url}: {_reason(error)}") from error
    except BaseException:  # KeyboardInterrupt too: write_atomically left no half file, nor do we a folder
        remove_empty_directories(created)
        raise
    return target


def _stream(url: str, out, algorithm: str, timeout: float, progress: bool, label: str) -> str:
    """Copies the body of ``url`` into ``out``; returns its digest. Raises on a short body."""
    digest = hashlib.new(algorithm)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        expected = _content_length(response)
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the server hangs up early.
    if expected is not None and received != expected:
        raise DownloadError(f"download of {url} stopped after {received} of {expected} bytes "
                            "(the connection was closed); nothing was kept")
    return digest.hexdigest()


def _content_length(response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, http.client.IncompleteRead):
        return f"the connection was closed after {len(error.partial)} bytes"
    return f"{type(error).__name__}: {error}"


def _checked(algorithm: str) -> str:
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported checksum algorithm {algorithm!r}; use one of {ALGORITHMS}")
    return algorithm
