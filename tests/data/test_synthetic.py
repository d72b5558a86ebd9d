"""The synthetic generator: conventions, determinism, the homophily it promises, its split rule, its speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from gat.data.graph import Graph
from gat.data.synthetic import make_synthetic, undirected_edge_index
from gat.errors import GATError


def _edge_homophily(graph: Graph) -> float:
    src, dst = graph.edge_index
    return float((graph.y[src] == graph.y[dst]).float().mean())


def _assert_conventions(graph: Graph) -> None:
    src, dst = graph.edge_index
    key = dst * graph.num_nodes + src
    assert graph.edge_index.dtype == torch.int64 and not (src == dst).any()
    assert (key[1:] > key[:-1]).all()  # sorted by (target, source), no duplicates
    assert torch.equal(torch.sort(src * graph.num_nodes + dst).values, key)  # symmetric
    assert graph.x.layout == torch.sparse_csr and graph.x.dtype == torch.float32
    masks = torch.stack([graph.train_mask, graph.val_mask, graph.test_mask])
    assert int(masks.sum(dim=0).max()) == 1


def test_undirected_edge_index_symmetrises_dedupes_drops_loops_and_sorts() -> None:
    src, dst = np.array([2, 0, 1, 1, 3, 0]), np.array([0, 2, 1, 3, 1, 2])  # 2-0 thrice, a loop, 1-3 twice
    expected = [[2, 3, 0, 1], [0, 1, 2, 3]]  # (source, target) sorted by target, then source
    assert undirected_edge_index(src, dst, num_nodes=4).tolist() == expected


def test_default_graph_is_planetoid_like() -> None:
    graph = make_synthetic()
    _assert_conventions(graph)
    assert (graph.num_nodes, graph.num_features, graph.num_classes) == (2000, 500, 5)
    assert graph.num_edges == 2000 * 8  # exactly average_degree per node
    assert torch.bincount(graph.y).tolist() == [400] * 5
    assert [int(m.sum()) for m in (graph.train_mask, graph.val_mask, graph.test_mask)] == [100, 500, 1000]
    assert torch.bincount(graph.y[graph.train_mask]).tolist() == [20] * 5
    row_sums = graph.dense_x().sum(dim=1)
    assert torch.allclose(row_sums, torch.ones(2000))  # every node has words, each row sums to 1
    words_per_node = graph.x.crow_indices().diff().float()
    assert 17 <= words_per_node.mean() <= 20  # 20 drawn, a few repeats collapse


def test_same_seed_same_graph_other_seed_other_graph() -> None:
    a, b, c = make_synthetic(seed=3), make_synthetic(seed=3), make_synthetic(seed=4)
    for field in ("y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert torch.equal(a.dense_x(), b.dense_x())
    assert not torch.equal(a.y, c.y) and a.edge_index.shape == c.edge_index.shape
    assert not torch.equal(a.edge_index, c.edge_index)


@pytest.mark.parametrize("homophily", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_measured_homophily_matches_the_parameter(homophily: float) -> None:
    graph = make_synthetic(num_nodes=5000, average_degree=10, homophily=homophily, seed=1)
    assert abs(_edge_homophily(graph) - homophily) < 0.015


def test_features_follow_the_class_topics() -> None:
    graph = make_synthetic(num_nodes=3000, num_features=500, num_classes=5, feature_signal=0.7, seed=2)
    rows = torch.repeat_interleave(torch.arange(graph.num_nodes), graph.x.crow_indices().diff())
    topic_of_word = graph.x.col_indices() // (500 // 5)
    on_topic = float((topic_of_word == graph.y[rows]).float().mean())
    # 70% drawn from the class's 100 topic words, the other 30% from all 500 (a fifth land on topic anyway).
    assert abs(on_topic - (0.7 + 0.3 / 5)) < 0.02


def test_small_graphs_get_a_scaled_down_split() -> None:
    graph = make_synthetic(num_nodes=40, average_degree=2, num_classes=4, num_features=8, features_per_node=3)
    _assert_conventions(graph)
    # 10 per class -> min(20, 10 // 4) = 2 train per class; val min(500, 40 // 4); test min(1000, 40 // 2)
    assert torch.bincount(graph.y[graph.train_mask]).tolist() == [2] * 4
    assert (int(graph.val_mask.sum()), int(graph.test_mask.sum())) == (10, 20)


def test_no_edges_is_allowed() -> None:
    graph = make_synthetic(num_nodes=100, average_degree=0)
    assert graph.edge_index.shape == (2, 0)


def test_hundred_thousand_nodes_is_fast() -> None:
    start = time.perf_counter()
    graph = make_synthetic(num_nodes=100_000, average_degree=10, seed=5)
    elapsed = time.perf_counter() - start
    _assert_conventions(graph)
    assert graph.num_edges == 1_000_000
    assert abs(_edge_homophily(graph) - 0.8) < 0.005
    # Vectorised this takes ~0.4 s on 2 cores; a Python loop over nodes or edges would take minutes.
    assert elapsed < 15, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"homophily": 1.5}, "homophily must be in \\[0, 1\\], got 1.5"),
        ({"homophily": -0.1}, "homophily must be in"),
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"num_nodes": 19, "num_classes": 5}, "num_nodes=19 is too small"),
        ({"average_degree": 201}, r"average_degree must be in \[0, num_nodes / \(2 \* num_classes\)\] = \[0, 200\]"),
        ({"average_degree": -1}, "average_degree must be in"),
        ({"num_features": 4}, "num_features=4 must be at least num_classes=5"),
        ({"features_per_node": 0}, "features_per_node must be in \\[1, num_features=500\\]"),
        ({"feature_signal": 2}, "feature_signal must be in \\[0, 1\\]"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(GATError, match=f"make_synthetic: {message}"):
        make_synthetic(**kwargs)


def test_densest_allowed_graph_still_builds_exactly() -> None:
    # At the density limit half of the in-class pairs are used: duplicate rejection must still converge.
    graph = make_synthetic(num_nodes=200, average_degree=20, num_classes=5, homophily=1.0)
    _assert_conventions(graph)
    assert graph.num_edges == 200 * 20 and _edge_homophily(graph) == 1.0
    assert np.isclose(graph.x.values().sum().item(), 200)  # 200 rows, each summing to 1
