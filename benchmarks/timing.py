"""Timing for the benchmarks: alternate the contenders (A B A B ...) after a warm-up, report medians and quartiles."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable

import torch


@dataclasses.dataclass
class Timing:
    """Milliseconds: median and quartiles of ``repeats`` samples."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median_ms:.2f} [{self.p25_ms:.2f}–{self.p75_ms:.2f}]"


def synchronize(device: torch.device) -> None:
    """Wait for ``device`` to finish what was queued on it (a no-op on CPU)."""
    if device.type == "cuda":  # kernels run asynchronously: wait for them, or we time only the launches
        torch.cuda.synchronize(device)


def time_interleaved(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device, budget_s: float = math.inf
) -> dict[str, Timing]:
    """Time each step ``repeats`` times, alternating between them (A B A B ...) after ``warmup`` calls each.

    So that huge graphs finish, warm-up stops (after one call) once it took a quarter of ``budget_s``, and the
    timed rounds stop (after three) once they took ``budget_s``.
    """
    started = time.perf_counter()
    for _ in range(warmup):
        for step in steps.values():
            step()
        if time.perf_counter() - started > budget_s / 4:
            break
    samples: dict[str, list[float]] = {name: [] for name in steps}
    started = time.perf_counter()
    for round_ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1000)
        if round_ >= 2 and time.perf_counter() - started > budget_s:
            break
    return {name: _timing(values) for name, values in samples.items()}


def _timing(values: list[float]) -> Timing:
    # "inclusive": quartiles within the samples (the default extrapolates, even below zero, for few samples)
    quartiles = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return Timing(statistics.median(values), quartiles[0], quartiles[2], len(values))
