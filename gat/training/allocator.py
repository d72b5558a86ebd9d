"""Keep freed memory in the process, so big tensors are not re-mapped (and page-faulted in) on every step.

glibc's ``malloc`` hands every large block (by default from 128 KiB, adaptively up to 32 MiB) straight back to
the kernel when it is freed, and maps fresh pages for the next one; touching those pages for the first time
costs a page fault per 4 KiB. A training step frees and re-allocates the same large tensors over and over;
with mapping turned off every block comes from malloc's heap and is reused. (PyTorch's CPU performance guide
suggests the same cure by swapping in jemalloc or tcmalloc; this needs no extra library.) The price is a
somewhat higher peak, since the heap fragments and never shrinks. "Never" has to mean never: with any finite
trim threshold a big graph's step gives gigabytes back and faults them in again in the next step.
docs/design.md gives the measured gains and the command that measures them.

It changes the whole process, so only entry points call it (``training_script.py``, ``python -m gat.reproduce``
and the benchmarks), never the library on import.

When an allocation fails all the same, :func:`out_of_memory` says so in one line with what to try, instead of
torch's traceback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from gat.errors import GATError

# What to try when a training step (or the pictures after it) runs out of memory.
TRAINING_ADVICE = (
    "try a smaller --hidden or --heads, mini-batches (--fanouts 10,10 with a smaller --batch-size), or fewer --threads"
)
# How each allocator says how much it was asked for: torch's CPU allocator in bytes, torch's CUDA allocator and
# numpy with a unit.
_ASKED = re.compile(
    r"tried to allocate (\d+) bytes|Tried to allocate ([\d.]+ [KMGT]?i?B)|Unable to allocate ([\d.]+ [KMGT]?i?B)"
)

# mallopt(3) parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Serve every allocation from glibc's heap and never give freed heap memory back to the kernel.

    Returns whether it took effect: ``False`` (and nothing changed) where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # A trim threshold of -1 is glibc's "never" (any finite one is a size that big graphs reach: see above).
    return libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1


def release_freed_memory() -> None:
    """Give the heap's free pages back to the kernel now (``malloc_trim(0)``), e.g. between two big jobs in one
    process: the next job reuses the address space, but its pages no longer count twice. A no-op without glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def out_of_memory(error: BaseException, advice: str = TRAINING_ADVICE) -> GATError | None:
    """``error`` as one line if it is an allocation that failed, else None.

    Three shapes: Python's and numpy's ``MemoryError``, torch's ``OutOfMemoryError`` (the CUDA allocator), and
    the ``RuntimeError`` of torch's CPU allocator (``DefaultCPUAllocator: can't allocate memory``). The line says
    which memory ran out, how much was asked for when the message tells, and ``advice``.
    """
    import torch

    text = str(error)
    if isinstance(error, torch.OutOfMemoryError):
        memory = "GPU memory" if "CUDA" in text else "device memory"
    elif isinstance(error, RuntimeError) and "can't allocate memory" in text:
        memory = "CPU memory"
    elif isinstance(error, MemoryError):
        memory = "memory"
    else:
        return None
    match = _ASKED.search(text)
    asked = ""
    if match is not None:
        asked = f" (asked for {gib(int(match[1])) if match[1] else match[2] or match[3]})"
    return GATError(f"out of {memory}{asked}: {advice}")


@contextmanager
def memory_errors_in_one_line(advice: str = TRAINING_ADVICE) -> Iterator[None]:
    """Raise a failed allocation in the block as :func:`out_of_memory`'s `GATError`; other errors pass."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        converted = out_of_memory(error, advice)
        if converted is None:
            raise
        raise converted from None


def gib(num_bytes: int) -> str:
    """``num_bytes`` in GiB, one decimal: ``"4.0 GiB"``."""
    return f"{num_bytes / 2**30:.1f} GiB"


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # Only glibc has gnu_get_libc_version; musl has a mallopt that ignores these parameters.
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc
