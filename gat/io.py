"""The one writer: every file the project writes goes through here.

- Atomic: a file is written to a temporary ``.part`` file in the destination's folder (same file system, so the
  final rename is atomic), flushed to disk, and only then moved into place with ``os.replace``. A crash, Ctrl-C or
  full disk mid-write leaves the previous version intact and no temporary file behind. A ``.part`` file is named
  after its writer (``.<name>.<host>.<pid>.<random>.part``), so the next write into the same folder can remove
  the leftovers of a process that was killed (SIGKILL skips every clean-up): see :func:`remove_stale_parts`.
- One line per failure: an ``OSError`` (a folder that is a file, a read-only file system, a full disk; torch's
  zip writer hides it behind a ``RuntimeError``) becomes a :class:`GATError` naming the path and the cause.
- Fail fast: :func:`ensure_writable` checks a folder before any work starts (training, drawing, downloading).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

from gat.errors import GATError

PART_SUFFIX = ".part"
# A temporary file older than this is a leftover whoever wrote it: no single write takes a day. It is the only
# rule for another machine's files on a shared (network) folder, whose pids this machine cannot check, and it
# also clears a file whose writer's pid was reused by a live process.
STALE_PART_SECONDS = 24 * 60 * 60


def os_error(path: str | os.PathLike, error: OSError) -> GATError:
    """``error`` as one line: ``cannot write <path>: <cause>``; a file standing where a folder must be is named."""
    if isinstance(error, FileExistsError | NotADirectoryError):
        in_the_way = next((parent for parent in (Path(path), *Path(path).parents) if parent.is_file()), None)
        if in_the_way is not None:
            return GATError(f"cannot write {os.fspath(path)}: {in_the_way} is a file, not a folder")
    return GATError(f"cannot write {os.fspath(path)}: {error.strerror or error}")


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it; else one `GATError` naming the cause.

    Called before work starts, so a read-only or mistyped output folder is found in a second, not after hours.
    """
    folder = Path(folder)
    probe = folder / part_name("write-test")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
    except OSError as error:
        raise os_error(folder, error) from None
    return folder


def part_name(name: str) -> str:
    """The temporary name for ``name``: ``.<name>.<host>.<pid>.<random>.part``, naming its writer."""
    return f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"


def remove_stale_parts(folder: str | os.PathLike) -> None:
    """Delete the ``.part`` files in ``folder`` left by writers that are gone.

    A file written on this machine goes as soon as its pid names no process. A file from another machine (a
    shared folder) stays, since its writer may be alive there, until it is `STALE_PART_SECONDS` old (by its
    modification time, which a live writer keeps fresh); so does one whose pid now names another live process.
    Files not named by :func:`part_name` are not ours and are never touched.
    """
    now = time.time()
    for part in Path(folder).glob(f".*{PART_SUFFIX}"):
        writer = _writer(part.name)
        if writer is None:
            continue
        host, pid = writer
        try:
            old = now - part.stat().st_mtime > STALE_PART_SECONDS
        except FileNotFoundError:  # its writer just finished or cleaned up
            continue
        if old or (host == _host() and not _alive(pid)):
            part.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; move it into place on a clean exit, delete it if the block raises.

    Any ``OSError`` on the way (including those hidden in torch's ``RuntimeError``) is raised as a one-line
    `GATError` naming ``path``.
    """
    path = Path(path)
    # Named after its writer, so a later write can tell a dead process's leftovers from a live one's.
    temporary = path.with_name(part_name(path.name))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(path.parent)
        # os.open with 0o666 so the usual umask applies (tempfile.mkstemp would make the file private, 0o600).
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)  # a no-op after os.replace
    except OSError as error:
        raise os_error(path, error) from None
    except RuntimeError as error:  # torch.save reports a failed write as "unexpected pos ..."; the cause is its context
        if isinstance(error.__context__, OSError):
            raise os_error(path, error.__context__) from None
        raise


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically. NaN and infinity (not valid JSON) are written as null."""
    return save_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n", path)


def save_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8), atomically."""
    return save_bytes(text.encode(), path)


def save_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data``, atomically."""
    with atomic_write(path) as file:
        file.write(data)
    return Path(path)


def save_torch(data: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (store only tensors and plain Python data so ``weights_only`` loads work)."""
    with atomic_write(path) as file:
        torch.save(data, file)
    return Path(path)


def _host() -> str:
    """This machine's name with dots made underscores, so a temporary name splits unambiguously on dots (host
    names never hold an underscore)."""
    return socket.gethostname().replace(".", "_") or "unknown-host"


def _writer(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of ``.<name>.<host>.<pid>.<hex>.part``, or None for a name of another shape."""
    parts = name.removesuffix(PART_SUFFIX).split(".")
    if len(parts) < 5 or not parts[-2].isdigit():
        return None
    return parts[-3], int(parts[-2])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data
