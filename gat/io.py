"""The one writer: every file the project writes goes through here.

- Atomic: a file is written to a temporary ``.part`` file in the destination's folder (same file system, so the
  final rename is atomic), flushed to disk, and only then moved into place with ``os.replace``. A crash, Ctrl-C or
  full disk mid-write leaves the previous version intact and no temporary file behind; ``.part`` files of a
  process that was killed (SIGKILL skips every clean-up) are removed by the next write into the same folder.
- One line per failure: an ``OSError`` (a folder that is a file, a read-only file system, a full disk; torch's
  zip writer hides it behind a ``RuntimeError``) becomes a :class:`GATError` naming the path and the cause.
- Fail fast: :func:`ensure_writable` checks a folder before any work starts (training, drawing, downloading).
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

from gat.errors import GATError

PART_SUFFIX = ".part"


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
    probe = folder / f".write-test.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
    except OSError as error:
        raise os_error(folder, error) from None
    return folder


def remove_stale_parts(folder: str | os.PathLike) -> None:
    """Delete ``.part`` files in ``folder`` whose writing process no longer exists (killed mid-write)."""
    for part in Path(folder).glob(f".*{PART_SUFFIX}"):
        pid = _writer_pid(part.name)
        if pid is not None and not _alive(pid):
            part.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; move it into place on a clean exit, delete it if the block raises.

    Any ``OSError`` on the way (including those hidden in torch's ``RuntimeError``) is raised as a one-line
    `GATError` naming ``path``.
    """
    path = Path(path)
    # The writer's pid is in the name, so a later write can tell a dead process's leftovers from a live one's.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}")
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
    with atomic_write(path) as file:
        file.write(text.encode())
    return Path(path)


def save_torch(data: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (store only tensors and plain Python data so ``weights_only`` loads work)."""
    with atomic_write(path) as file:
        torch.save(data, file)
    return Path(path)


def _writer_pid(name: str) -> int | None:
    """The pid in ``.<name>.<pid>.<hex>.part``, or None for a name of another shape."""
    parts = name.removesuffix(PART_SUFFIX).split(".")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


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
