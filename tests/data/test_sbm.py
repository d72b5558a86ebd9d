"""The attention study's graphs: the homophily they promise, balanced classes, the split, determinism, and the
noisy-neighbours structure."""

from __future__ import annotations

import pytest
import torch

from gat.data.sbm import edge_homophily, make_noisy_neighbours, make_sbm
from gat.errors import GATError


def _assert_conventions(graph) -> None:
    src, dst = graph.edge_index
    key = dst * graph.num_nodes + src
    assert not (src == dst).any() and (key[1:] > key[:-1]).all()  # no loops, sorted by (target, source), no duplicates
    assert torch.equal(torch.sort(src * graph.num_nodes + dst).values, key)  # symmetric
    assert int(torch.stack([graph.train_mask, graph.val_mask, graph.test_mask]).sum(0).max()) == 1
    counts = torch.bincount(graph.y, minlength=graph.num_classes)
    assert counts.max() - counts.min() <= 1  # balanced classes
    assert torch.bincount(graph.y[graph.train_mask]).tolist() == [20] * graph.num_classes


@pytest.mark.parametrize("homophily", [0.05, 0.2, 0.5, 0.9])
def test_measured_edge_homophily_is_the_target(homophily: float) -> None:
    graph = make_sbm(num_nodes=2000, average_degree=10, homophily=homophily, seed=3)
    _assert_conventions(graph)
    assert graph.num_edges == 2 * 10_000
    # 10000 independent edges: the sampling std is sqrt(h (1 - h) / 10000) <= 0.005
    assert edge_homophily(graph.edge_index, graph.y) == pytest.approx(homophily, abs=0.02)


def test_features_are_the_class_block_plus_gaussian_noise() -> None:
    graph = make_sbm(num_nodes=5000, num_classes=5, num_features=50, noise=0.5, seed=0)
    assert graph.x.dtype == torch.float32 and graph.x.layout == torch.strided and graph.x.shape == (5000, 50)
    block = torch.arange(50) // 10  # the class that owns each feature
    means = torch.stack([graph.x[graph.y == c].mean(0) for c in range(5)])
    torch.testing.assert_close(means, (block[None, :] == torch.arange(5)[:, None]).float(), atol=0.05, rtol=0)
    noise = graph.x - (block[None, :] == graph.y[:, None]).float()
    assert noise.std().item() == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("make", [make_sbm, make_noisy_neighbours])
def test_same_seed_same_graph_other_seed_other_graph(make) -> None:
    first, again, other = make(num_nodes=300, seed=7), make(num_nodes=300, seed=7), make(num_nodes=300, seed=8)
    for name in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert first.edge_index.shape != other.edge_index.shape or not torch.equal(first.edge_index, other.edge_index)
    assert not torch.equal(first.x, other.x)


def test_noisy_neighbours_every_node_has_clean_same_class_neighbours_among_noisy_ones() -> None:
    graph = make_noisy_neighbours(num_nodes=1000, informative=3, noisy=12, clean_fraction=0.3, noise=0.1, seed=1)
    _assert_conventions(graph)
    block = torch.arange(graph.num_features) // (graph.num_features // graph.num_classes)
    own_block = (block[None, :] == graph.y[:, None]).float()
    clean = (graph.x - own_block).abs().max(1).values < 1.0  # noise 0.1: a clean node sits near its class block
    assert 0.25 < clean.float().mean() < 0.35
    src, dst = graph.edge_index
    informative = clean[src] & (graph.y[src] == graph.y[dst])
    per_node = torch.bincount(dst[informative], minlength=graph.num_nodes)
    degree = torch.bincount(dst, minlength=graph.num_nodes)
    assert per_node.min() >= 1  # every node drew clean same-class neighbours (3, fewer only if picks coincided)
    assert (degree[~clean] >= 12).float().mean() > 0.9  # ... among many noisy ones: most neighbours are noise
    assert (per_node.float() / degree).mean() < 0.3


@pytest.mark.parametrize(
    "arguments,message",
    [
        ({"homophily": 1.5}, "homophily must be in [0, 1]"),
        ({"num_nodes": 10, "num_classes": 5}, "num_nodes must be at least 4 per class"),
        ({"average_degree": 1000}, "average_degree must be in"),
    ],
)
def test_bad_sbm_arguments_are_one_line_errors(arguments: dict, message: str) -> None:
    with pytest.raises(GATError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_sbm(**arguments)
