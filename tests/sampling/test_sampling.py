"""Neighbour sampling and layer-wise inference, checked against plain Python references and full-batch GAT."""

from collections import Counter

import pytest
import torch

from gat.data.synthetic import make_synthetic
from gat.nn.model import GAT
from gat.sampling.layerwise import layerwise_inference
from gat.sampling.sampler import NeighbourSampler, gather_rows


def random_graph(num_nodes: int = 60, num_edges: int = 400, seed: int = 0) -> torch.Tensor:
    """A directed graph with no self-loops or duplicates, some isolated nodes and one hub (node 0)."""
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, num_nodes - 5, (2, num_edges), generator=generator)  # the last 5 nodes are isolated
    hub = torch.stack([torch.arange(1, 40), torch.zeros(39, dtype=torch.long)])
    edges = torch.cat([pairs, hub], dim=1)
    edges = edges[:, edges[0] != edges[1]]
    return torch.unique(edges, dim=1)


def in_neighbour_sets(edge_index: torch.Tensor, num_nodes: int) -> list[set[int]]:
    sets = [set() for _ in range(num_nodes)]
    for source, target in edge_index.t().tolist():
        sets[target].add(source)
    return sets


def test_in_neighbours_all_and_sampled_are_distinct_real_neighbours():
    edge_index, num_nodes = random_graph(), 60
    expected = in_neighbour_sets(edge_index, num_nodes)
    sampler = NeighbourSampler(edge_index, num_nodes, fanouts=[3])
    nodes = torch.tensor([0, 5, 59, 7, 0])  # a hub, ordinary nodes, an isolated one, a repeat
    sources, targets = sampler.in_neighbours(nodes, fanout=None)
    for position, node in enumerate(nodes.tolist()):
        got = sources[targets == position].tolist()
        assert sorted(got) == sorted(expected[node])

    sources, targets = sampler.in_neighbours(nodes, fanout=3, generator=torch.Generator().manual_seed(1))
    for position, node in enumerate(nodes.tolist()):
        got = sources[targets == position].tolist()
        assert len(got) == len(set(got)) == min(3, len(expected[node]))
        assert set(got) <= expected[node]


def test_sampling_without_replacement_is_uniform():
    # node 0 has 39 in-neighbours; each must be kept with probability 4/39.
    edge_index = random_graph()
    sampler = NeighbourSampler(edge_index, 60, fanouts=[4])
    draws = 6000
    sources, _ = sampler.in_neighbours(torch.zeros(draws, dtype=torch.long), 4, torch.Generator().manual_seed(0))
    counts = Counter(sources.tolist())
    degree = len(in_neighbour_sets(edge_index, 60)[0])
    expected = draws * 4 / degree
    assert set(counts) == in_neighbour_sets(edge_index, 60)[0]
    # binomial standard deviation is ~sqrt(expected) ~ 25; 5 sigma
    assert all(abs(count - expected) < 5 * expected**0.5 for count in counts.values())


def test_batch_layout_and_reproducibility():
    edge_index, num_nodes = random_graph(), 60
    expected = in_neighbour_sets(edge_index, num_nodes)
    sampler = NeighbourSampler(edge_index, num_nodes, fanouts=[2, 3])
    seeds = torch.tensor([4, 0, 57])
    batch = sampler.sample(seeds, torch.Generator().manual_seed(3))
    again = sampler.sample(seeds, torch.Generator().manual_seed(3))
    assert batch.nodes.equal(again.nodes) and all(
        a.equal(b) for a, b in zip(batch.edge_index, again.edge_index, strict=True)
    )

    assert batch.seeds.equal(seeds) and batch.num_seeds == 3
    assert batch.nodes.unique().shape[0] == batch.nodes.shape[0]
    assert len(batch.edge_index) == 2 and batch.num_sampled_edges == sum(e.shape[1] for e in batch.edge_index)
    last, first = batch.edge_index[1], batch.edge_index[0]
    assert last[1].max() < 3  # the last layer's targets are the seeds
    needed = torch.cat([torch.arange(3), last[0]]).unique()  # what the last layer reads
    assert set(first[1].tolist()) <= set(needed.tolist())
    assert batch.num_targets == [needed.shape[0], 3] and needed.equal(torch.arange(needed.shape[0]))  # a prefix
    assert first[0].max() < batch.nodes.shape[0] and last[0].max() < batch.num_targets[0]
    for layer, fanout in ((first, 2), (last, 3)):
        for source, target in batch.nodes[layer].t().tolist():
            assert source in expected[target]
        per_target = Counter(layer[1].tolist())
        assert all(per_target[t] == min(fanout, len(expected[batch.nodes[t]])) for t in needed.tolist()[:3])


def test_gather_rows_of_sparse_csr_features():
    x = torch.rand(20, 9).mul(torch.rand(20, 9) < 0.3)
    rows = torch.tensor([3, 3, 0, 19, 7])
    gathered = gather_rows(x.to_sparse_csr(), rows)
    assert gathered.layout == torch.sparse_csr and gathered.to_dense().equal(x[rows])
    assert gather_rows(x, rows).equal(x[rows])


@pytest.fixture(scope="module")
def graph_and_model():
    graph = make_synthetic(num_nodes=1000, average_degree=4, num_classes=4, num_features=40, seed=2)
    torch.manual_seed(0)
    model = GAT(graph.num_features, graph.num_classes, heads=(3, 2, 1), num_layers=3, skip_connection=True)
    return graph, model.double().eval()


def test_minibatch_with_full_fanouts_equals_full_batch_float64(graph_and_model):
    graph, model = graph_and_model
    x = graph.x.to(torch.float64)
    max_degree = int(torch.bincount(graph.edge_index[1]).max())
    sampler = NeighbourSampler(graph.edge_index, graph.num_nodes, fanouts=[max_degree] * 3)
    with torch.no_grad():
        full = model(x, graph.edge_index)
        seeds = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(0))[:8]
        batch = sampler.sample(seeds, torch.Generator().manual_seed(0))
        logits = model(gather_rows(x, batch.nodes), batch.edge_index, batch.num_targets)
        every_row = model(gather_rows(x, batch.nodes), batch.edge_index)  # each layer computing all nodes
    assert batch.nodes.shape[0] < graph.num_nodes  # a real sub-graph, not the whole graph
    assert batch.num_targets[-1] == 8 and batch.num_targets == sorted(batch.num_targets, reverse=True)
    torch.testing.assert_close(logits, full[seeds], rtol=0, atol=1e-12)
    torch.testing.assert_close(every_row[: batch.num_seeds], full[seeds], rtol=0, atol=1e-12)

    smaller = NeighbourSampler(graph.edge_index, graph.num_nodes, fanouts=[2, 2, 2])
    with torch.no_grad():
        batch = smaller.sample(seeds, torch.Generator().manual_seed(0))
        sampled = model(gather_rows(x, batch.nodes), batch.edge_index, batch.num_targets)
    assert not torch.allclose(sampled, full[seeds])  # the check above can fail: dropping neighbours shows


def test_layerwise_inference_equals_full_batch(graph_and_model):
    graph, model = graph_and_model
    sampler = NeighbourSampler(graph.edge_index, graph.num_nodes, fanouts=[1, 1, 1])  # fan-outs unused here
    x = graph.x.to(torch.float64)
    with torch.no_grad():
        full = model(x, graph.edge_index)
    torch.testing.assert_close(layerwise_inference(model, x, sampler, edges_per_chunk=300), full, rtol=0, atol=1e-12)
    float32 = GAT(graph.num_features, graph.num_classes).eval()
    with torch.no_grad():
        expected = float32(graph.x, graph.edge_index)
    torch.testing.assert_close(
        layerwise_inference(float32, graph.x, sampler),
        expected,
        atol=1e-5,
        rtol=0,  # one chunk
    )


def test_layerwise_inference_with_chunks_smaller_than_a_hub():
    edge_index = random_graph()  # node 0 has 39 in-edges, more than a chunk's budget of 5
    torch.manual_seed(0)
    model = GAT(4, 3, hidden=2, heads=(2, 1)).double().eval()
    x = torch.randn(60, 4, dtype=torch.float64)
    sampler = NeighbourSampler(edge_index, 60, fanouts=[1, 1])
    with torch.no_grad():
        full = model(x, edge_index)
    torch.testing.assert_close(layerwise_inference(model, x, sampler, edges_per_chunk=5), full, rtol=0, atol=1e-12)
