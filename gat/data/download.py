"""Fetch raw dataset files into ``root/<name>/raw/`` and verify every byte.

Where a file comes from, in order:

1. already in the raw folder with the pinned SHA-256 -> used as is (a wrong hash counts as missing);
2. a mirror: the ``mirror=`` argument, else the ``GAT_DATA_MIRROR`` environment variable. A mirror is a local
   folder, a ``file://`` URL or an ``http(s)://`` URL holding the files under their usual names;
3. the file's public home (for Planetoid: ``PLANETOID_URL``).

Every copy is streamed into a temporary file inside the raw folder, hashed while it streams, and moved into
place with ``os.replace`` only once complete and verified, so an interrupted or tampered download never leaves
a half-written or wrong file where the loader would read it. If a file cannot be had from any source we raise a
single `GATError` that names the dataset, the files, the folder, why each source failed, and how to fix it.

`ensure_files` is generic (a list of ``(filename, sha256 or None)``) so other datasets can reuse it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from gat.errors import GATError
from gat.io import atomic_write, ensure_writable

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data/"
MIRROR_ENV = "GAT_DATA_MIRROR"
PLANETOID_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20

# SHA-256 of the files at PLANETOID_URL. Cora and CiteSeer were hashed from the project's local mirror
# (shared/datasets/planetoid/README.md); PubMed's come from three independent public projects that pin the
# kimiyoung/planetoid files and agree with each other and with our Cora/CiteSeer values.
PLANETOID_SHA256 = {
    "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "ind.pubmed.x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
    "ind.pubmed.y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
    "ind.pubmed.tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
    "ind.pubmed.ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
    "ind.pubmed.allx": "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
    "ind.pubmed.ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
    "ind.pubmed.graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
    "ind.pubmed.test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
}


class FetchError(Exception):
    """One source could not deliver one file. ``unreachable`` means the source itself is down, so the
    remaining files are not tried there (an offline machine should not wait out a timeout per file)."""

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    """The mirror to use: the argument if given, else ``$GAT_DATA_MIRROR``, else None."""
    chosen = os.fspath(mirror) if mirror else os.environ.get(MIRROR_ENV)
    if chosen and "://" in chosen:  # a URL: refuse a malformed one here, in one line, not deep in urllib
        try:
            parts = urllib.parse.urlsplit(chosen)
            parts.port  # noqa: B018 (reading it validates the port)
        except ValueError as error:
            raise GATError(f"data mirror {chosen!r} is not a valid URL ({error})") from None
        if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
            raise GATError(f"data mirror {chosen!r}: give a folder, a file:// URL or an http(s)://host/... URL")
    return chosen or None


def _open(source: str, filename: str) -> BinaryIO:
    """Open ``filename`` inside ``source`` (folder, file:// URL or http(s):// URL) for streaming."""
    scheme = urllib.parse.urlsplit(source).scheme
    try:
        if scheme in ("http", "https"):
            url = source.rstrip("/") + "/" + urllib.parse.quote(filename)
            return urllib.request.urlopen(url, timeout=TIMEOUT_S)
        folder = urllib.request.url2pathname(urllib.parse.urlsplit(source).path) if scheme == "file" else source
        if not os.path.isdir(folder):
            raise FetchError("no such folder", unreachable=True)
        return open(os.path.join(folder, filename), "rb")
    except urllib.error.HTTPError as error:  # the server answered: only this file is absent
        raise FetchError(f"HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:  # no answer at all: DNS failure, connection refused
        raise FetchError(f"unreachable ({error.reason})", unreachable=True) from error
    except TimeoutError as error:  # connected, but no answer within TIMEOUT_S
        raise FetchError(f"unreachable (no answer in {TIMEOUT_S:g} s)", unreachable=True) from error
    except FileNotFoundError as error:
        raise FetchError("file not found") from error
    except OSError as error:
        raise FetchError(error.strerror or str(error)) from error


def _read(stream: BinaryIO) -> bytes:
    try:
        return stream.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as error:  # a connection dropped mid-copy
        raise FetchError(f"copy failed ({error!r})") from error


def _fetch(source: str, filename: str, expected: str | None, raw_dir: Path) -> str:
    """Copy one file from ``source`` into ``raw_dir``, verified and atomically; return its SHA-256."""
    digest = hashlib.sha256()
    # A failed read is this source's fault (try the next one); a failed write is the disk's, and atomic_write
    # reports it as a one-line GATError naming the file.
    with _open(source, filename) as stream, atomic_write(raw_dir / filename) as file:
        while chunk := _read(stream):  # hash while streaming: the bytes are read only once
            digest.update(chunk)
            file.write(chunk)
        if expected is not None and digest.hexdigest() != expected:  # raising here discards the copy
            raise FetchError(
                f"SHA-256 mismatch for {filename} (got {digest.hexdigest()[:16]}..., expected {expected[:16]}...)"
            )
    if expected is None:
        warnings.warn(
            f"{filename} has no pinned SHA-256 checksum, so it was accepted unverified (its SHA-256 is "
            f"{digest.hexdigest()}); it is still loaded with the restricted unpickler",
            stacklevel=2,
        )
    return digest.hexdigest()


def ensure_files(
    dataset: str,
    files: Sequence[tuple[str, str | None]],
    raw_dir: str | Path,
    *,
    public_url: str | None,
    mirror: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Make sure every ``(filename, sha256)`` of ``files`` is in ``raw_dir`` and verified.

    Returns ``{filename: sha256}`` of the files now in place. A file whose ``sha256`` is None (no pinned
    checksum) is accepted as found, with a warning that prints its hash. Raises one `GATError` listing every
    file that could not be obtained.
    """
    raw_dir = Path(raw_dir)
    chosen_mirror = resolve_mirror(mirror)
    sources = [(f"mirror {chosen_mirror}", chosen_mirror)] if chosen_mirror else []
    if public_url:
        sources.append((public_url, public_url))

    hashes: dict[str, str] = {}
    failed: list[str] = []
    reasons: dict[str, None] = {}  # an ordered set: the same reason for eight files is reported once
    unreachable: set[str] = set()
    for filename, expected in files:
        path = raw_dir / filename
        if path.exists():
            actual = sha256_of(path)
            if expected is None or actual == expected:
                hashes[filename] = actual
                continue
            # A wrong file already in place: refetch it, and say so if that fails.
            label = f"{filename} (present but corrupt: SHA-256 mismatch)"
        else:
            label = filename
        ensure_writable(raw_dir)  # only now: a read-only folder that holds every file is fine
        for name, source in sources:
            if source in unreachable:
                continue
            try:
                hashes[filename] = _fetch(source, filename, expected, raw_dir)
                break
            except FetchError as error:
                reasons[" ".join(f"{name}: {error}".split())] = None
                if error.unreachable:
                    unreachable.add(source)
        else:
            failed.append(label)

    if failed:
        why = "; ".join(reasons) if reasons else "no mirror is set and the file has no public home"
        raise GATError(
            f"cannot get the {dataset} dataset: {', '.join(failed)} missing from {raw_dir} ({why}). "
            f"Fix: set {MIRROR_ENV} (or pass mirror=) to a folder or URL holding these files, "
            f"or copy them into {raw_dir}"
        )
    return hashes


def planetoid_files(name: str) -> list[tuple[str, str | None]]:
    """The eight raw files of Planetoid dataset ``name`` with their pinned SHA-256 (None if unknown)."""
    filenames = [f"ind.{name}.{suffix}" for suffix in PLANETOID_SUFFIXES]
    return [(filename, PLANETOID_SHA256.get(filename)) for filename in filenames]


def ensure_planetoid(name: str, raw_dir: str | Path, mirror: str | os.PathLike | None = None) -> dict[str, str]:
    """`ensure_files` for a Planetoid dataset (``cora``, ``citeseer``, ``pubmed``) from its public home."""
    return ensure_files(name, planetoid_files(name), raw_dir, public_url=PLANETOID_URL, mirror=mirror)
