"""The t-SNE worker process: its maps are the ones this process would make, and whatever goes wrong on its side,
the maps are still made (here)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import count_tsne_fits
from visualization.maps import MapWorker, tsne


def clusters(seed: int, points: int = 90, dimensions: int = 6) -> np.ndarray:
    """Three separated blobs of points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (3, dimensions))
    return centres[np.arange(points) % 3] + rng.normal(0, 1, (points, dimensions))


JOBS = [(clusters(0), 0), (clusters(1, dimensions=60), 5)]  # the second one wide: PCA first


def test_the_worker_makes_the_maps_this_process_would(monkeypatch):
    expected = [tsne(features, seed) for features, seed in JOBS]
    fitted = count_tsne_fits(monkeypatch)  # from here on, maps made in this process are counted
    with MapWorker() as worker:
        worker.request(JOBS)
        maps = worker.maps()
    assert fitted == [], "the worker made them, not this process"
    assert len(maps) == 2
    for points, wanted in zip(maps, expected, strict=True):
        np.testing.assert_array_equal(points, wanted)


@pytest.mark.parametrize(
    "command",
    [
        (sys.executable, "-c", "raise SystemExit(3)"),  # dies at once
        (sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.stdout.write('no maps')"),  # answers junk
        ("/nonexistent/python",),  # cannot start
        # answers one map of the wrong shape
        (sys.executable, "-c", "import sys, io, numpy as np; sys.stdin.buffer.read(); b = io.BytesIO(); "
                               "np.savez(b, map0=np.zeros((3, 2)), map1=np.zeros((3, 2))); "
                               "sys.stdout.buffer.write(b.getvalue())"),
    ],
    ids=["dies", "junk", "cannot-start", "wrong-shape"],
)  # fmt: skip
def test_a_failing_worker_leaves_the_maps_to_this_process(command, monkeypatch):
    monkeypatch.setattr(MapWorker, "command", command)
    fitted = count_tsne_fits(monkeypatch)
    with MapWorker() as worker:
        worker.request(JOBS)
        maps = worker.maps()
    assert len(fitted) == 2
    for points, (features, seed) in zip(maps, JOBS, strict=True):
        np.testing.assert_array_equal(points, tsne(features, seed))


def test_closing_stops_a_worker_still_at_work(monkeypatch):
    monkeypatch.setattr(MapWorker, "command", (sys.executable, "-c", "import time; time.sleep(60)"))
    worker = MapWorker()
    worker.request(JOBS[:1])
    worker.close()
    assert worker._process.poll() is not None, "the worker was stopped"
    assert worker.maps()[0].shape == (90, 2)  # and the map is made here


def test_a_worker_makes_one_set_of_maps():
    with MapWorker() as worker:
        worker.request(JOBS[:1])
        with pytest.raises(RuntimeError, match="one set"):
            worker.request(JOBS[1:])
