"""How many CPU threads torch uses for one operation: chosen from the work, the CPUs this process may use, and
how busy other programs keep them.

A training step is a chain of many short operations, and each one that runs on several threads ends at a barrier
where every thread waits for the slowest. On an idle machine that costs little and two threads beat one even on a
Cora step; on a busy one (other programs, another training run, a laptop's browser) one descheduled thread stalls
all the others at every barrier, and a small step then takes 5-30x as long as on one thread. So the policy is:

    threads = clamp(min(work_size // WORK_PER_THREAD, round(available CPUs - CPUs busy elsewhere)), 1, ...)

where the work is the number of edge-feature values one step computes (edges x heads x features, summed over the
layers: `gat.training.loop.Run.work_size`; the paper's Cora step, 10^4 edges x 71), so tiny steps stay on one
thread; the available CPUs are those this process may run on: its affinity mask (``os.sched_getaffinity``, set by
``taskset``, Slurm, or a container's cpuset) and its cgroup CPU quota (Docker's ``--cpus``, Kubernetes' limits),
whichever is smaller; and the CPUs busy elsewhere are what other processes (and the hypervisor's steal) used of
them, read from ``/proc/stat`` minus this process's own CPU time. A training loop re-reads that every
``RECHECK_SECONDS`` (:class:`ThreadPolicy`), so a run that starts beside another experiment drops to fewer
threads and takes the cores back when the other ends. A ``torchrun`` rank plans for its share of the CPUs and
does not adapt (its sibling ranks would count as other load).

An explicit choice always wins: ``--threads N`` on the command lines, else ``$GAT_THREADS``, else
``$OMP_NUM_THREADS`` (except in a torchrun rank, where torchrun sets that variable itself).

A changing thread count never changes a run's numbers: a training step gives the same bits on any number of
threads (gat's kernels write each output from one thread, and MKL's matrix products do so in the strict
reproducibility mode that importing gat turns on, ``MKL_CBWR``; tests/test_threads.py checks it). Where that
cannot be assured (another BLAS, or ``MKL_CBWR`` set otherwise) the count is chosen once.

This module imports nothing heavy: the command lines read it before torch is imported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gat.errors import GATError

# Edge-feature values one step must give each thread before another thread pays for its barriers.
WORK_PER_THREAD = 250_000
# How often a training loop re-reads how busy the CPUs are (a read of /proc/stat costs microseconds), and how long
# it looks before its first step (/proc/stat counts in 10 ms ticks).
RECHECK_SECONDS = 1.0
FIRST_LOOK_SECONDS = 0.1
THREADS_VARIABLE = "GAT_THREADS"
MAX_THREADS = 1024  # more than any CPU has; torch's thread pool crashes the process on absurd counts
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_STAT = Path("/proc/stat")


def choose_threads(
    available_cpus: int, work_size: int, requested: int | None = None, busy_elsewhere: float = 0.0
) -> int:
    """The intra-op thread count for a step computing ``work_size`` edge-feature values on ``available_cpus``
    CPUs of which other processes keep ``busy_elsewhere`` busy; ``requested`` (an explicit choice: a flag or an
    environment variable) wins whatever the work and the load."""
    if requested is not None:
        if requested < 1:
            raise GATError(f"threads must be >= 1, got {requested}")
        return requested
    free_cpus = math.floor(available_cpus - busy_elsewhere + 0.5)  # a CPU counts as free while mostly idle
    return max(1, min(available_cpus, free_cpus, work_size // WORK_PER_THREAD))


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


@dataclass(frozen=True)
class CpuSample:
    """A reading of the clocks :func:`busy_elsewhere` compares: seconds of wall time, of busy time summed over
    this process's CPUs (every process's, from ``/proc/stat``), and of this process's own CPU time."""

    wall: float
    busy: float
    own: float


def sample_cpus(stat_path: Path = PROC_STAT) -> CpuSample | None:
    """Read the clocks now; None where ``/proc/stat`` does not exist or cannot be parsed (not Linux)."""
    try:
        lines = stat_path.read_text().splitlines()
    except OSError:
        return None
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    ticks, cpus_read = 0, 0
    for line in lines:
        name, *fields = line.split() or [""]
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            if allowed is not None and int(name[3:]) not in allowed:
                continue
            # user nice system idle iowait irq softirq steal (guest time is counted in user already)
            user, nice, system, _, _, irq, softirq, steal = (int(value) for value in fields[:8])
        except ValueError:
            return None
        ticks += user + nice + system + irq + softirq + steal
        cpus_read += 1
    if cpus_read == 0:
        return None
    return CpuSample(time.monotonic(), ticks / os.sysconf("SC_CLK_TCK"), time.process_time())


def busy_elsewhere(before: CpuSample, after: CpuSample) -> float:
    """How many of this process's CPUs other processes kept busy between two samples, on average."""
    elapsed = after.wall - before.wall
    if elapsed <= 0:
        return 0.0
    return max(0.0, (after.busy - before.busy - (after.own - before.own)) / elapsed)


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
        if not 1 <= value <= MAX_THREADS:
            raise GATError(f"{name} must be in [1, {MAX_THREADS}], got {text!r}")
        return value
    return None


def thread_count_free_numbers() -> bool:
    """Whether a step gives the same bits on any thread count, so the count may change during a run without
    changing its numbers: true with MKL's strict reproducibility mode (``MKL_CBWR=...,STRICT``, which importing
    gat sets unless the variable is set already)."""
    import torch

    return torch.backends.mkl.is_available() and "STRICT" in os.environ.get("MKL_CBWR", "").upper()


def look_at_load() -> tuple[CpuSample | None, float]:
    """How many CPUs other processes keep busy now, from a ``FIRST_LOOK_SECONDS`` look while this process sleeps
    (the load average lags a minute); with the sample it ended on (None where /proc/stat cannot be read)."""
    first = sample_cpus()
    if first is None:
        return None, 0.0
    time.sleep(FIRST_LOOK_SECONDS)
    last = sample_cpus()
    return last, busy_elsewhere(first, last) if last is not None else 0.0


def threads_for_long_work(requested: int | None = None, cpus: int | None = None) -> int:
    """Threads for one long computation whose threads share its work well (a t-SNE map): the explicit count (see
    :func:`requested_threads`), else every CPU other processes leave free now."""
    requested = requested_threads(requested)
    if requested is not None:
        return requested
    cpus = available_cpus() if cpus is None else cpus
    return choose_threads(cpus, cpus * WORK_PER_THREAD, None, look_at_load()[1])  # work enough for every CPU


class ThreadPolicy:
    """Torch's intra-op thread count for a loop of steps of ``work_size`` edge-feature values (see the module
    docstring): set on creation, re-chosen by :meth:`update` from how busy the CPUs were since the last check.

    Args:
        work_size: edge-feature values one step computes.
        requested: an explicit count (e.g. ``--threads``; None: the environment, then the policy).
        cpus: the CPUs to plan for (default: :func:`available_cpus`).
        honour_omp: take ``$OMP_NUM_THREADS`` as an explicit count.
        adapt: follow the load of other processes (a torchrun rank does not: its siblings would count as load).
    """

    def __init__(
        self,
        work_size: int,
        requested: int | None = None,
        cpus: int | None = None,
        *,
        honour_omp: bool = True,
        adapt: bool = True,
    ) -> None:
        self.work_size, self.cpus = work_size, available_cpus() if cpus is None else cpus
        self.requested = requested_threads(requested, honour_omp=honour_omp)
        # The load can only lower the work's count: where that is one thread already there is nothing to follow.
        adapt = adapt and self.requested is None and choose_threads(self.cpus, work_size) > 1
        adapt = adapt and thread_count_free_numbers()
        self.last_sample, load = look_at_load() if adapt else (None, 0.0)
        self.threads = self._set(choose_threads(self.cpus, work_size, self.requested, load))

    def update(self) -> int:
        """Re-choose the thread count if ``RECHECK_SECONDS`` have passed since the last check; return it."""
        if self.last_sample is None or time.monotonic() - self.last_sample.wall < RECHECK_SECONDS:
            return self.threads
        sample = sample_cpus()
        if sample is not None:
            load = busy_elsewhere(self.last_sample, sample)
            self.last_sample = sample
            self.threads = self._set(choose_threads(self.cpus, self.work_size, None, load))
        return self.threads

    @staticmethod
    def _set(threads: int) -> int:
        import torch  # here, not at the top: the command lines import this module before their flags are checked

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads


def apply_thread_policy(
    work_size: int, requested: int | None = None, cpus: int | None = None, *, honour_omp: bool = True
) -> int:
    """Set torch's intra-op thread count once for work of ``work_size`` edge-feature values (see
    :class:`ThreadPolicy`) and return it."""
    return ThreadPolicy(work_size, requested, cpus, honour_omp=honour_omp).threads


@contextmanager
def thread_policy(
    work_size: int,
    requested: int | None = None,
    cpus: int | None = None,
    *,
    honour_omp: bool = True,
    adapt: bool = True,
) -> Iterator[ThreadPolicy]:
    """A :class:`ThreadPolicy` for the duration of a block, then the previous thread count again (a library call
    such as `gat.training.trainer.train` leaves its caller's setting as it found it)."""
    import torch

    previous = torch.get_num_threads()
    try:
        yield ThreadPolicy(work_size, requested, cpus, honour_omp=honour_omp, adapt=adapt)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
