"""benchmarks/tsne.py runs every candidate it compares, and its scores mean what its table says."""

import numpy as np
import pytest

from benchmarks import tsne


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    """150 points in three well separated clusters of 8-d features, and their labels."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    return rng.normal(size=(150, 8)) + 12.0 * np.eye(8)[labels], labels


@pytest.mark.parametrize("name", list(tsne.CANDIDATES))
def test_every_candidate_maps_separated_clusters_apart(name, clusters):
    features, labels = clusters
    points = tsne.CANDIDATES[name](features, 0)
    assert points.shape == (150, 2) and np.isfinite(points).all()
    silhouette, accuracy, same_clusters = tsne.quality(points, labels, points)
    assert silhouette > 0.5 and accuracy == 1.0 and same_clusters == pytest.approx(1.0)


def test_scores_fall_for_a_map_that_mixes_the_classes(clusters):
    features, labels = clusters
    mixed = np.random.default_rng(1).normal(size=(150, 2))
    silhouette, accuracy, same_clusters = tsne.quality(mixed, labels, tsne.CANDIDATES["ours"](features, 0))
    assert silhouette < 0.1 and accuracy < 0.6 and same_clusters < 0.2
