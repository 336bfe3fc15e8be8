"""Verified downloads: stream to a ``.part`` file, check the digest, then rename.

A failed, interrupted or mismatching download leaves nothing behind, so the
next attempt starts clean and a half file is never mistaken for data.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DownloadError

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, checksum: str, algorithm: str = "sha256", *,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Downloads ``url`` to ``target`` if its ``algorithm`` digest equals ``checksum``.

    Raises:
        DownloadError: on any network error, a short body, or a digest
            mismatch; the partial file is removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            expected = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=expected, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                received = 0
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise DownloadError(f"download of {url} stopped after {received} of {expected} bytes")
        if digest.hexdigest() != checksum.lower():
            raise DownloadError(f"{url} does not match its {algorithm}: expected {checksum}, "
                                f"got {digest.hexdigest()}")
        os.replace(partial, target)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: {error}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target
