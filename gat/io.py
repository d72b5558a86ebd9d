"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the project writes goes to a temporary file in the destination's folder (same file system, so the
final rename is atomic), is flushed to disk, and only then replaces the destination with ``os.replace``. A crash,
Ctrl-C or full disk mid-write leaves the previous version intact.
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


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; move it into place on a clean exit, delete it if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
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


def save_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically. NaN and infinity (not valid JSON) are written as null."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"
    with atomic_write(path) as file:
        file.write(text.encode())
    return Path(path)


def save_torch(data: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (store only tensors and plain Python data so ``weights_only`` loads work)."""
    with atomic_write(path) as file:
        torch.save(data, file)
    return Path(path)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data
