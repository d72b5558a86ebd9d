"""How many CPU threads torch uses for one operation: chosen from the work and the CPUs this process may use.

A training step is a chain of many short operations, and each one that runs on several threads ends at a barrier
where every thread waits for the slowest. On an idle machine that costs little; on a busy one (other programs,
another training run, a laptop's browser) one descheduled thread stalls all the others at every barrier, and a
small step then takes 5-30x as long as on one thread. More threads only pay when each one gets enough work to
amortise its barriers. So the policy is:

    threads = clamp(work_size // WORK_PER_THREAD, 1, available CPUs)

where the work is the number of edge-feature values one step computes (edges x heads x features, summed over the
layers: `gat.train.loop.Run.work_size`; the paper's Cora step, 10^4 edges x 71 -> 1 thread; the same model on
10^6 edges -> 3 threads at most; PPI's wide model on two graphs -> all the CPUs), and the available CPUs are those
this process may run on: its affinity mask (``os.sched_getaffinity``, set by ``taskset``, Slurm, or a container's
cpuset) and its cgroup CPU quota (Docker's ``--cpus``, Kubernetes' limits), whichever is smaller; a ``torchrun``
rank gets its share of them.

An explicit choice always wins: ``--threads N`` on the command lines, else ``$GAT_THREADS``, else
``$OMP_NUM_THREADS`` (except in a torchrun rank, where torchrun sets that variable itself).

This module imports nothing heavy: the command lines read it before torch is imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gat.errors import GATError

# Edge-feature values one step must give each thread before another thread pays for its barriers.
WORK_PER_THREAD = 20_000_000
THREADS_VARIABLE = "GAT_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def choose_threads(available_cpus: int, work_size: int, requested: int | None = None) -> int:
    """The intra-op thread count for a step computing ``work_size`` edge-feature values on ``available_cpus``
    CPUs; ``requested`` (an explicit choice: a flag or an environment variable) wins whatever the work."""
    if requested is not None:
        if requested < 1:
            raise GATError(f"threads must be >= 1, got {requested}")
        return requested
    return max(1, min(available_cpus, work_size // WORK_PER_THREAD))


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cpus, quota) if quota is not None else cpus)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> int | None:
    """The CPU quota of this process's cgroup as a whole number of CPUs (rounded up), or None when unlimited.

    cgroup v2 writes ``"<quota> <period>"`` (or ``"max <period>"``) to ``cpu.max``; v1 has ``cpu.cfs_quota_us``
    (-1: no limit) and ``cpu.cfs_period_us``. Inside a container the cgroup namespace makes ``root`` the
    container's own group."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


def requested_threads(
    flag: int | None, environ: Mapping[str, str] = os.environ, *, honour_omp: bool = True
) -> int | None:
    """The explicit thread count, if any: ``flag``, else ``$GAT_THREADS``, else (with ``honour_omp``)
    ``$OMP_NUM_THREADS``; None leaves the choice to :func:`choose_threads`. A malformed variable raises GATError."""
    if flag is not None:
        return flag
    names = (THREADS_VARIABLE, "OMP_NUM_THREADS") if honour_omp else (THREADS_VARIABLE,)
    for name in names:
        text = environ.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text.split(",")[0])  # OMP_NUM_THREADS may list a count per nesting level
        except ValueError:
            raise GATError(f"{name} must be a whole number of threads, got {text!r}") from None
        if value < 1:
            raise GATError(f"{name} must be >= 1, got {text!r}")
        return value
    return None


def apply_thread_policy(
    work_size: int, requested: int | None = None, cpus: int | None = None, *, honour_omp: bool = True
) -> int:
    """Set torch's intra-op thread count for steps of ``work_size`` edge-feature values (see the module docstring)
    and return it. ``requested`` is an explicit count (e.g. ``--threads``; None: the environment, then the policy);
    ``cpus`` the CPUs to plan for (default: :func:`available_cpus`); ``honour_omp=False`` ignores
    ``$OMP_NUM_THREADS``."""
    import torch  # here, not at the top: the command lines import this module before their flags are checked

    requested = requested_threads(requested, honour_omp=honour_omp)
    threads = choose_threads(available_cpus() if cpus is None else cpus, work_size, requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def thread_policy(
    work_size: int, requested: int | None = None, cpus: int | None = None, *, honour_omp: bool = True
) -> Iterator[int]:
    """:func:`apply_thread_policy` for the duration of a block, then the previous thread count again (a library
    call such as `gat.train.trainer.train` leaves its caller's setting as it found it)."""
    import torch

    previous = torch.get_num_threads()
    try:
        yield apply_thread_policy(work_size, requested, cpus, honour_omp=honour_omp)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
