"""gat.training.allocator: after keep_freed_memory() a freed large tensor's memory stays in the process for reuse, until
release_freed_memory()."""

import subprocess
import sys

import pytest

from tests.helpers import REPO

MEASURE = """
import sys
import torch
from gat.training.allocator import keep_freed_memory, release_freed_memory

def resident_kib():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])

if sys.argv[1].startswith("keep"):
    assert keep_freed_memory()
before = resident_kib()
# 64 MiB is far above malloc's mmap threshold; 2.25 GiB also leaves a free top chunk above any trim threshold
# short of "never" (a 1e7-edge training step frees that much at once).
size = 2304 if sys.argv[1] == "keep-huge" else 64
block = torch.ones(size * 2**20 // 4)
del block
if sys.argv[1] == "keep-then-release":
    release_freed_memory()
print(resident_kib() - before)
"""


def resident_growth_kib(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", MEASURE, mode], cwd=REPO, capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_memory_stays_mapped_only_when_asked():
    assert resident_growth_kib("default") < 16 * 1024  # glibc unmapped the 64 MiB block when it was freed
    assert resident_growth_kib("keep") > 60 * 1024  # kept on the heap, ready for the next tensor
    assert resident_growth_kib("keep-huge") > 2300 * 1024  # however big the free block at the top of the heap
    assert resident_growth_kib("keep-then-release") < 16 * 1024  # handed back on request
