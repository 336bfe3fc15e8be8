"""The real download code against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from fewshot_mem.data import omniglot as omniglot_module
from fewshot_mem.data.download import download
from fewshot_mem.data.omniglot import load_omniglot
from fewshot_mem.errors import DataNotFoundError, DownloadError
from omniglot_fixtures import TINY_EXPECTED, make_tiny_omniglot


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):  # promises more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_good_download_is_verified_and_kept(server, tmp_path, algorithm):
    served, url = server
    (served / "file.bin").write_bytes(b"omniglot" * 1000)
    target = tmp_path / "out" / "file.bin"
    download(url + "file.bin", target, digest(served / "file.bin", algorithm), algorithm, progress=False)
    assert target.read_bytes() == (served / "file.bin").read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    served, url = server
    (served / "file.bin").write_bytes(b"tampered")
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match="does not match its md5"):
        download(url + "file.bin", target, "0" * 32, "md5", progress=False)
    assert not any(target.parent.iterdir())


def test_missing_file_leaves_nothing(server, tmp_path):
    _, url = server
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match="404"):
        download(url + "nothing.zip", target, "0" * 64, progress=False)
    assert not any(target.parent.iterdir())


def test_connection_closed_mid_body_leaves_nothing(server, tmp_path):
    _, url = server
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError):
        download(url + "short/file.bin", target, "0" * 64, progress=False, timeout=5)
    assert not any(target.parent.iterdir())


def test_omniglot_is_downloaded_verified_and_loaded_when_absent(server, tmp_path, monkeypatch):
    served, url = server
    zips = make_tiny_omniglot(served)
    checksums = {path.name: digest(path, "md5") for path in zips.values()}
    monkeypatch.setattr(omniglot_module, "EXPECTED_ALPHABETS", TINY_EXPECTED["expected_alphabets"])
    monkeypatch.setattr(omniglot_module, "EXPECTED_CHARACTERS", TINY_EXPECTED["expected_characters"])
    root = tmp_path / "root"
    data = load_omniglot(root, url_base=url, checksums=checksums, progress=False, workers=1)
    assert len(data.characters) == 7
    for path in zips.values():
        assert (root / "omniglot" / path.name).read_bytes() == path.read_bytes()


def test_omniglot_download_with_bad_checksum_keeps_nothing(server, tmp_path):
    served, url = server
    zips = make_tiny_omniglot(served)
    checksums = {path.name: "0" * 32 for path in zips.values()}
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataNotFoundError, match="does not match its md5"):
        load_omniglot(root, url_base=url, checksums=checksums, progress=False)
    assert not any(root.iterdir())
