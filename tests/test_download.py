"""The real download code against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from fewshot_mem.data.download import download, file_digest
from fewshot_mem.data.omniglot import load_omniglot
from fewshot_mem.errors import DataNotFoundError, DownloadError
from omniglot_fixtures import TINY_LAYOUT, TINY_NAMES, make_tiny_omniglot


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/short/<name>`` promises more bytes than it sends, then hangs up."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(served folder, base URL, list of requested paths)."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Recording(Handler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Recording, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_good_download_is_verified_and_kept(server, tmp_path, algorithm):
    served, url, _ = server
    (served / "file.bin").write_bytes(bytes(range(256)) * 5000)  # > one read chunk
    target = tmp_path / "out" / "file.bin"
    checksum = digest(served / "file.bin", algorithm).upper()  # case does not matter
    assert download(url + "file.bin", target, checksum, algorithm, progress=False) == target
    assert target.read_bytes() == (served / "file.bin").read_bytes()
    assert file_digest(target, algorithm) == checksum.lower()
    assert listing(target.parent) == ["file.bin"]  # no .part left


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_wrong_checksum_leaves_nothing(server, tmp_path, algorithm):
    served, url, _ = server
    (served / "file.bin").write_bytes(b"tampered")
    wrong = digest(served / "file.bin", algorithm)[::-1]
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match=f"does not match its {algorithm}") as error:
        download(url + "file.bin", target, wrong, algorithm, progress=False)
    assert url + "file.bin" in str(error.value)
    assert not (tmp_path / "out").exists()  # not even the folder made for it


def test_a_failed_download_keeps_an_existing_file(server, tmp_path):
    served, url, _ = server
    (served / "file.bin").write_bytes(b"new")
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(DownloadError):
        download(url + "file.bin", target, "0" * 64, progress=False)
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["file.bin", "served"]


def test_missing_file_leaves_nothing(server, tmp_path):
    _, url, _ = server
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match="404") as error:
        download(url + "nothing.zip", target, "0" * 64, progress=False)
    assert url + "nothing.zip" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_connection_closed_mid_body_leaves_nothing(server, tmp_path):
    _, url, _ = server
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match="1000 of 100000 bytes|connection") as error:
        download(url + "short/file.bin", target, "0" * 64, progress=False, timeout=5)
    assert url + "short/file.bin" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_folder_that_cannot_be_made_is_reported_and_leaves_nothing(server, tmp_path):
    """The folders made on the way are taken back (paths.make_directories; download's own copy of it
    left them behind)."""
    _, url, requests = server
    target = tmp_path / "out" / ("x" * 300) / "file.bin"  # a name too long for the file system
    with pytest.raises(DownloadError, match="cannot create"):
        download(url + "file.bin", target, "0" * 64, progress=False)
    assert requests == [] and not (tmp_path / "out").exists()


def test_unknown_algorithm_is_refused_before_fetching(server, tmp_path):
    _, url, requests = server
    with pytest.raises(ValueError, match="sha1"):
        download(url + "file.bin", tmp_path / "out" / "file.bin", "0" * 40, "sha1", progress=False)
    assert requests == [] and not (tmp_path / "out").exists()


def test_omniglot_is_downloaded_verified_and_loaded_when_absent(server, tmp_path):
    served, url, requests = server
    zips = make_tiny_omniglot(served)
    checksums = {path.name: digest(path, "md5") for path in zips.values()}
    root = tmp_path / "root"
    data = load_omniglot(root, url_base=url, checksums=checksums, progress=False, workers=1, layout=TINY_LAYOUT)
    assert [c.name for c in data.characters] == TINY_NAMES
    assert sorted(requests) == ["/images_background.zip", "/images_evaluation.zip"]
    for path in zips.values():
        assert (root / "omniglot" / path.name).read_bytes() == path.read_bytes()
    assert listing(root / "omniglot") == ["cache", "images_background.zip", "images_evaluation.zip"]
    again = load_omniglot(root, url_base=url + "gone/", checksums=checksums, progress=False, layout=TINY_LAYOUT)
    assert len(requests) == 2  # found on disk: not fetched again
    assert np.array_equal(again.images(20), data.images(20))


def test_only_the_missing_part_is_downloaded(server, tmp_path):
    served, url, requests = server
    zips = make_tiny_omniglot(served)
    root = tmp_path / "root"
    (root / "omniglot").mkdir(parents=True)
    (root / "omniglot" / "images_background.zip").write_bytes(zips["background"].read_bytes())
    checksums = {"images_background.zip": "not used", "images_evaluation.zip": digest(zips["evaluation"], "md5")}
    load_omniglot(root, url_base=url, checksums=checksums, progress=False, workers=1, layout=TINY_LAYOUT)
    assert requests == ["/images_evaluation.zip"]


def test_omniglot_download_with_bad_checksum_keeps_nothing(server, tmp_path):
    served, url, _ = server
    zips = make_tiny_omniglot(served)
    checksums = {path.name: "0" * 32 for path in zips.values()}
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataNotFoundError, match="does not match its md5") as error:
        load_omniglot(root, url_base=url, checksums=checksums, progress=False, layout=TINY_LAYOUT)
    assert "Searched:" in str(error.value) and "--data-root" in str(error.value)
    assert listing(root) == []
