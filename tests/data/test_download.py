"""Raw files are fetched from a mirror (folder, file://, http://) or the public home, always verified.

The public home is never contacted: conftest points `PLANETOID_URL` at a refused local port, and tests of the
URL path serve files from a local `http.server`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gat.data import download
from gat.data.download import PLANETOID_SHA256, ensure_files, ensure_planetoid, planetoid_files
from gat.errors import GATError

CORA = [name for name, _ in planetoid_files("cora")]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """``serve(folder) -> "http://127.0.0.1:<port>/"``: an HTTP server for ``folder`` for this test."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: any free port
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()  # fast shutdown
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_mirror_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


def _mirror_copy(source: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    """A mirror folder with the Cora files of ``source``, minus ``skip``."""
    target.mkdir()
    for name in CORA:
        if name not in skip:
            shutil.copy(source / name, target / name)
    return target


def _assert_verified(raw: Path, names: list[str]) -> None:
    for name in names:
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == PLANETOID_SHA256[name]
    assert not list(raw.glob(".*")), "a temporary file was left behind"


def _offline_error(raw: Path, **kwargs) -> str:
    with pytest.raises(GATError) as caught:
        ensure_planetoid("cora", raw, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_pinned_hashes_match_the_mirror_files(planetoid_folder: Path) -> None:
    names = [name for dataset in ("cora", "citeseer") for name, _ in planetoid_files(dataset)]
    assert len(names) == 16
    _assert_verified(planetoid_folder, names)
    assert all(sha is not None for _, sha in planetoid_files("pubmed"))


def test_mirror_as_folder(planetoid_folder: Path, tmp_path: Path) -> None:
    hashes = ensure_planetoid("cora", tmp_path / "raw", mirror=planetoid_folder)
    assert hashes == {name: PLANETOID_SHA256[name] for name in CORA}
    _assert_verified(tmp_path / "raw", CORA)


def test_mirror_as_file_url(planetoid_folder: Path, tmp_path: Path) -> None:
    ensure_planetoid("cora", tmp_path / "raw", mirror=planetoid_folder.as_uri())
    _assert_verified(tmp_path / "raw", CORA)


def test_mirror_as_http_url(planetoid_folder: Path, tmp_path: Path, serve) -> None:
    ensure_planetoid("cora", tmp_path / "raw", mirror=serve(planetoid_folder))
    _assert_verified(tmp_path / "raw", CORA)


def test_public_home_is_used_for_what_the_mirror_lacks(
    planetoid_folder: Path, tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = _mirror_copy(planetoid_folder, tmp_path / "mirror", skip=("ind.cora.allx",))
    monkeypatch.setattr(download, "PLANETOID_URL", serve(planetoid_folder))
    ensure_planetoid("cora", tmp_path / "raw", mirror=mirror)
    _assert_verified(tmp_path / "raw", CORA)


def test_present_files_are_not_fetched_again(planetoid_folder: Path, tmp_path: Path) -> None:
    raw = _mirror_copy(planetoid_folder, tmp_path / "raw")
    ensure_planetoid("cora", raw)  # no mirror, public home refused: must not need either
    _assert_verified(raw, CORA)


@pytest.mark.parametrize("as_url", [False, True])
def test_a_wrong_hash_in_the_mirror_is_rejected_and_leaves_nothing(
    planetoid_folder: Path, tmp_path: Path, serve, as_url: bool
) -> None:
    mirror = _mirror_copy(planetoid_folder, tmp_path / "mirror")
    (mirror / "ind.cora.tx").write_bytes(b"tampered" + (mirror / "ind.cora.tx").read_bytes())
    raw = tmp_path / "raw"
    message = _offline_error(raw, mirror=serve(mirror) if as_url else mirror)
    assert "ind.cora.tx" in message and "SHA-256 mismatch" in message
    assert not (raw / "ind.cora.tx").exists()
    _assert_verified(raw, [name for name in CORA if name != "ind.cora.tx"])


def test_a_corrupt_raw_file_is_replaced(planetoid_folder: Path, tmp_path: Path) -> None:
    raw = _mirror_copy(planetoid_folder, tmp_path / "raw")
    (raw / "ind.cora.graph").write_bytes(b"truncated")
    ensure_planetoid("cora", raw, mirror=planetoid_folder)
    _assert_verified(raw, CORA)


def test_a_corrupt_raw_file_that_cannot_be_replaced_is_named_corrupt(planetoid_folder: Path, tmp_path: Path) -> None:
    raw = _mirror_copy(planetoid_folder, tmp_path / "raw")
    (raw / "ind.cora.graph").write_bytes(b"truncated")
    message = _offline_error(raw)
    assert "ind.cora.graph (present but corrupt" in message and "ind.cora.x" not in message


def test_offline_error_is_one_helpful_line(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "cora" / "raw"
    message = _offline_error(raw)
    assert "cora" in message and str(raw) in message
    assert all(name in message for name in CORA)  # every missing file is named
    assert "Connection refused" in message  # why it failed
    assert "GAT_DATA_MIRROR" in message and "copy them into" in message  # how to fix it
    assert message.count("Connection refused") == 1  # the same reason is not repeated per file
    assert list(raw.iterdir()) == []


def test_a_mirror_lacking_files_says_so(tmp_path: Path, serve) -> None:
    (tmp_path / "empty").mkdir()
    assert "file not found" in _offline_error(tmp_path / "raw", mirror=tmp_path / "empty")
    assert "HTTP 404" in _offline_error(tmp_path / "raw", mirror=serve(tmp_path / "empty"))


def test_an_unreachable_mirror_is_tried_once(tmp_path: Path) -> None:
    message = _offline_error(tmp_path / "raw", mirror="http://127.0.0.1:9/mirror/")
    assert message.count("mirror http://127.0.0.1:9/mirror/: unreachable") == 1
    message = _offline_error(tmp_path / "raw", mirror=tmp_path / "nowhere")
    assert message.count(f"mirror {tmp_path / 'nowhere'}: no such folder") == 1


def test_a_mirror_that_never_answers_times_out_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (backlog) but never replies
    monkeypatch.setattr(download, "TIMEOUT_S", 0.2)
    start = time.perf_counter()
    with silent:
        message = _offline_error(tmp_path / "raw", mirror=f"http://127.0.0.1:{silent.getsockname()[1]}/")
    assert "unreachable (no answer in 0.2 s)" in message or "timed out" in message
    assert time.perf_counter() - start < 2  # given up after one timeout, not one per file


def test_environment_variable_is_used(planetoid_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(download.MIRROR_ENV, str(planetoid_folder))
    ensure_planetoid("cora", tmp_path / "raw")
    _assert_verified(tmp_path / "raw", CORA)


def test_argument_wins_over_environment_variable(
    planetoid_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(download.MIRROR_ENV, str(planetoid_folder))
    message = _offline_error(tmp_path / "raw", mirror=empty)  # the good env mirror must not be consulted
    assert f"mirror {empty}" in message and str(planetoid_folder) not in message

    monkeypatch.setenv(download.MIRROR_ENV, str(empty))
    ensure_planetoid("cora", tmp_path / "raw", mirror=planetoid_folder)
    _assert_verified(tmp_path / "raw", CORA)


def test_a_file_without_pinned_hash_is_accepted_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "edges.txt").write_bytes(b"0 1\n")
    sha = hashlib.sha256(b"0 1\n").hexdigest()
    with pytest.warns(UserWarning, match=f"no pinned SHA-256.*{sha}"):
        hashes = ensure_files(
            "toy", [("edges.txt", None)], tmp_path / "raw", public_url=None, mirror=tmp_path / "mirror"
        )
    assert hashes == {"edges.txt": sha}
    assert (tmp_path / "raw" / "edges.txt").read_bytes() == b"0 1\n"


def test_no_source_at_all_still_explains_the_fix(tmp_path: Path) -> None:
    with pytest.raises(GATError, match="toy dataset: edges.txt missing .*no mirror is set.*GAT_DATA_MIRROR"):
        ensure_files("toy", [("edges.txt", None)], tmp_path / "raw", public_url=None)
