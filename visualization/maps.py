"""t-SNE maps, made here or in a worker process while this one goes on drawing.

A map of Cora's 2,708 nodes takes seconds of work that shares poorly between threads (openTSNE holds the GIL for
much of it, and a second thread gains it little), and openTSNE with scikit-learn takes another ~2 s to import. A
:class:`MapWorker` is a second Python process that imports them at once and makes the maps it is sent while this
process loads the model and draws the other pictures: on two cores the maps then cost the time of whichever of the
two takes longer, not of both (``--visualize-after`` on Cora: see docs/design.md).

This module imports nothing heavy (numpy), so the worker starts in a fraction of a second.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np

from gat.threads import threads_for_long_work
from gat.validate import Array, is_valid

PCA_DIMENSIONS = 50  # wider layers are reduced to this first: faster t-SNE, less noise (the usual recipe)
# A shorter schedule than openTSNE's default (250 early-exaggeration iterations, where clusters form, then 500,
# where they settle) and a coarser Barnes-Hut approximation (theta 0.8, default 0.5): a Cora map in a quarter of the
# time, with silhouette and 10-NN class accuracy within 0.02 of scikit-learn's defaults (benchmarks/tsne.py).
EARLY_EXAGGERATION_ITERATIONS, ITERATIONS, THETA = 100, 150, 0.8
EXACT_NEIGHBOURS_MAX = 10_000  # up to here exact nearest neighbours cost less than building an Annoy index
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding `visualization`: the worker imports it


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """``[N, 2]`` t-SNE of ``features`` ``[N, D]`` (PCA to 50 dimensions first when wider); seeded.

    openTSNE (Poličar et al.) rather than scikit-learn's TSNE: maps of the same quality for less CPU time, with its
    threads under our control (benchmarks/tsne.py measures both). It picks Barnes-Hut below 10,000 points, where it
    is faster than its FFT interpolation (whose grid grows with the map's extent, not the number of points), and FFT
    above. The map gets every CPU other programs leave free (``$GAT_THREADS``, ``--threads`` fix the count; see
    `gat.threads`), never more: on a busy CPU its threads would wait for each other at every iteration. The map is
    the same on any number of threads.
    """
    from openTSNE import TSNE  # openTSNE and scikit-learn take seconds to import: only when a map is made
    from sklearn.decomposition import PCA

    if features.shape[1] > PCA_DIMENSIONS:
        # PCA keeps at most as many components as there are points
        features = PCA(min(PCA_DIMENSIONS, features.shape[0]), random_state=seed).fit_transform(features)
    # perplexity must stay below the number of points; small graphs (tests, toy data) get a smaller one
    perplexity = min(perplexity, (features.shape[0] - 1) / 3)
    tsne_map = TSNE(
        perplexity=perplexity,
        initialization="pca",
        negative_gradient_method="auto",
        neighbors="exact" if features.shape[0] <= EXACT_NEIGHBOURS_MAX else "auto",
        theta=THETA,
        early_exaggeration_iter=EARLY_EXAGGERATION_ITERATIONS,
        n_iter=ITERATIONS,
        n_jobs=threads_for_long_work(),
        random_state=seed,
    )
    return np.asarray(tsne_map.fit(np.ascontiguousarray(features, dtype=np.float64)))


class MapWorker:
    """A second Python process that makes t-SNE maps: start it early (it imports openTSNE meanwhile), send it the
    maps to make with :meth:`request`, and :meth:`maps` waits for them. Use it as a context manager, or
    :meth:`close` it: a worker still running is stopped.

    Whatever fails on its side (it cannot start, it dies, its answer is not the maps asked for), the maps are made
    in this process instead: the same maps, only later, since t-SNE is seeded and gives the same bits on any
    number of threads.
    """

    command = (sys.executable, "-m", "visualization.maps")

    def __init__(self) -> None:
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        try:
            self._process: subprocess.Popen | None = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )  # fmt: skip
        except OSError:  # no process to be had (limits, a missing interpreter): maps() makes them here
            self._process = None
        self._jobs: list[tuple[np.ndarray, int]] = []
        self._answer = b""
        self._exchange: threading.Thread | None = None
        self._maps: list[np.ndarray] | None = None

    def request(self, jobs: list[tuple[np.ndarray, int]]) -> None:
        """Send the maps to make, once: ``(features [N, D], seed)`` each."""
        if self._jobs:
            raise RuntimeError("a MapWorker makes one set of maps")
        self._jobs = [(np.ascontiguousarray(features, dtype=np.float64), int(seed)) for features, seed in jobs]
        if self._process is None:
            return
        message = io.BytesIO()
        np.savez(message, seeds=np.array([seed for _, seed in self._jobs]),
                 **{f"features{k}": features for k, (features, _) in enumerate(self._jobs)})  # fmt: skip
        # A thread feeds and reads the pipes, so that this process goes on while the worker computes
        self._exchange = threading.Thread(target=self._communicate, args=(message.getvalue(),), daemon=True)
        self._exchange.start()

    def _communicate(self, message: bytes) -> None:
        try:
            self._answer = self._process.communicate(message)[0]
        except (OSError, ValueError):  # a broken pipe: the worker died; maps() makes the maps here
            self._answer = b""

    def maps(self) -> list[np.ndarray]:
        """The ``[N, 2]`` maps in the order requested (waits for the worker)."""
        if self._maps is None:
            if self._exchange is not None:
                self._exchange.join()
            self._maps = self._answered() or [tsne(features, seed) for features, seed in self._jobs]
        return self._maps

    def _answered(self) -> list[np.ndarray] | None:
        """The worker's maps, if it answered with one finite float64 ``[N, 2]`` array per job (checked as
        everything read back is: :mod:`gat.validate`)."""
        if self._process is None or self._process.returncode != 0:
            return None
        try:
            with np.load(io.BytesIO(self._answer)) as answer:  # allow_pickle stays False: arrays only
                arrays = {key: answer[key] for key in answer.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        schema = {f"map{k}": Array(("float64",), ndim=2, finite=True) for k in range(len(self._jobs))}
        if not is_valid(arrays, schema):
            return None
        maps = [arrays[f"map{k}"] for k in range(len(self._jobs))]
        expected = [(len(features), 2) for features, _ in self._jobs]
        return maps if [points.shape for points in maps] == expected else None

    def close(self) -> None:
        """Stop the worker if it still runs (the caller failed or no longer needs its maps)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> MapWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve() -> None:
    """The worker's side (``python -m visualization.maps``): import openTSNE while the caller gets ready, then read
    the request (an ``.npz`` on stdin: ``features<k>``, ``seeds``) and answer the maps (``map<k>``) on stdout."""
    import openTSNE  # noqa: F401  the slow import, made while the caller loads the model

    request = sys.stdin.buffer.read()
    if not request:  # the caller closed without asking: nothing to do
        return
    with np.load(io.BytesIO(request)) as jobs:
        maps = {f"map{k}": tsne(jobs[f"features{k}"], int(seed)) for k, seed in enumerate(jobs["seeds"])}
    answer = io.BytesIO()
    np.savez(answer, **maps)
    sys.stdout.buffer.write(answer.getvalue())


if __name__ == "__main__":
    serve()
