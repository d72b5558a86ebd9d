"""The visualization library: the numbers behind every picture, checked against independent computations."""

import math

import matplotlib.image
import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gat.data.registry import load_dataset
from gat.errors import GATError
from gat.nn.analysis import attention_entropy, kl_from_uniform, neighbourhood_sizes, uniform_attention
from gat.nn.model import GAT, Inspection
from gat.train.loop import inspect_model
from visualization.attention import draw_attention, neighbourhood_attention
from visualization.degrees import dataset_summary, degree_counts, degree_figure, top_degree_nodes
from visualization.embeddings import embedding_figure, tsne
from visualization.entropy import entropy_bins, entropy_figure, entropy_statistics
from visualization.graph_drawing import draw_graph, pack_components
from visualization.graphs import to_networkx, undirected_edges
from visualization.loading import load_trained
from visualization.style import save_figure


@pytest.fixture(scope="module")
def small_graph():
    return load_dataset("synthetic", num_nodes=150, average_degree=6, num_classes=3, num_features=40, seed=1)


@pytest.fixture(scope="module")
def small_model(small_graph):
    torch.manual_seed(0)  # two layers, several heads in each: the grid and the head choice are exercised
    return GAT(small_graph.num_features, small_graph.num_classes, hidden=4, heads=(3, 2)).eval()


@pytest.fixture(scope="module")
def small_inspection(small_graph, small_model):
    return inspect_model(small_model, small_graph)


@torch.no_grad()
def reference_attention(model: GAT, inputs: torch.Tensor, layer_index: int, node: int, neighbours: set[int]) -> dict:
    """The GAT paper's formula, from the layer's weights, in float64: {source: [heads]} for edges into ``node``."""
    layer = model.layers[layer_index]
    h = (inputs.double() @ layer.linear.weight.double().T).view(-1, layer.num_heads, layer.out_features)
    source_score = (h * layer.att_source.double()).sum(-1)
    target_score = (h * layer.att_target.double()).sum(-1)
    members = sorted(neighbours | {node})
    scores = F.leaky_relu(source_score[members] + target_score[node], layer.negative_slope)
    return dict(zip(members, torch.softmax(scores, dim=0), strict=True))


def test_degree_counts_sum_to_edges_and_match_networkx(cora):
    in_degree, out_degree = degree_counts(cora.edge_index, cora.num_nodes)
    assert in_degree.sum() == out_degree.sum() == cora.num_edges == 10556
    directed = nx.DiGraph(cora.edge_index.T.tolist())
    directed.add_nodes_from(range(cora.num_nodes))
    assert in_degree.tolist() == [directed.in_degree(n) for n in range(cora.num_nodes)]
    assert out_degree.tolist() == [directed.out_degree(n) for n in range(cora.num_nodes)]


def test_dataset_summary_matches_networkx(cora):
    summary = dataset_summary(cora)
    graph = to_networkx(cora)
    source, target = cora.edge_index.tolist()
    labels = cora.y.tolist()
    assert (summary["nodes"], summary["directed_edges"], summary["undirected_edges"]) == (2708, 10556, 5278)
    assert summary["undirected_edges"] == graph.number_of_edges()
    assert summary["isolated_nodes"] == nx.number_of_isolates(graph) == 0
    assert summary["connected_components"] == nx.number_connected_components(graph) == 78
    assert summary["largest_component_nodes"] == len(max(nx.connected_components(graph), key=len)) == 2485
    assert summary["average_clustering"] == pytest.approx(nx.average_clustering(graph), abs=1e-12)
    same_class = sum(labels[s] == labels[t] for s, t in zip(source, target, strict=True)) / len(source)
    assert summary["edge_homophily"] == pytest.approx(same_class, abs=1e-12)
    degrees = [d for _, d in graph.degree()]
    assert summary["max_degree"] == max(degrees) == 168
    assert summary["mean_degree"] == pytest.approx(np.mean(degrees))
    assert summary["median_degree"] == np.median(degrees)


def test_coras_best_connected_node_has_168_neighbours_and_169_attention_edges(cora):
    (hub,) = top_degree_nodes(cora, 1)
    inspection = inspect_model(GAT(cora.num_features, cora.num_classes), cora)
    neighbourhood = neighbourhood_attention(inspection, hub, layer=0)
    assert neighbourhood.degree == 168 and len(neighbourhood.sources) == 169  # the self-loop is the 169th
    assert np.count_nonzero(neighbourhood.sources == hub) == 1


def test_uniform_attention_has_entropy_log_degree_and_zero_kl(small_inspection):
    edge_index, num_nodes = small_inspection.edge_index, small_inspection.logits.shape[0]
    sizes = neighbourhood_sizes(edge_index, num_nodes).double()
    uniform = uniform_attention(edge_index, num_nodes)
    entropy = attention_entropy(uniform, edge_index, num_nodes)[:, 0]
    assert torch.allclose(entropy, torch.log(sizes), rtol=0, atol=1e-14)
    assert torch.allclose(
        kl_from_uniform(uniform, edge_index, num_nodes), torch.zeros(num_nodes, 1, dtype=torch.float64), atol=1e-14
    )

    # all attention on the self-loop: entropy 0, KL the largest possible, log d
    one_hot = (edge_index[0] == edge_index[1]).double().unsqueeze(1)
    assert torch.allclose(kl_from_uniform(one_hot, edge_index, num_nodes)[:, 0], torch.log(sizes), atol=1e-14)

    as_model = Inspection(small_inspection.logits, small_inspection.hidden, [uniform.float()], edge_index)
    (row,) = entropy_statistics(as_model)
    assert row["mean_kl"] == pytest.approx(0, abs=1e-6) and row["max_kl"] == pytest.approx(0, abs=1e-6)
    assert row["mean_entropy"] == pytest.approx(row["mean_uniform_entropy"], abs=1e-6)


def test_entropy_statistics_cover_every_layer_and_head(small_inspection, small_graph):
    rows = entropy_statistics(small_inspection)
    assert [(r["layer"], r["head"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert all(0 <= r["median_kl"] <= r["p90_kl"] <= r["max_kl"] and r["mean_kl"] >= 0 for r in rows)
    figure = entropy_figure(small_inspection)
    assert sum(ax.get_visible() for ax in figure.axes) == 5
    assert "mean KL from uniform" in figure.axes[0].get_legend().get_texts()[1].get_text()


def test_entropy_bins_keep_each_small_neighbourhood_size_apart():
    bins = entropy_bins(200)
    which = np.digitize(np.log(np.arange(1, 8)), bins)
    assert len(set(which.tolist())) == 7  # log 1 .. log 7, the common sizes: one bin each
    assert bins[0] == 0 and bins[-1] > math.log(200)


@pytest.mark.parametrize("layer", [0, 1])
def test_neighbourhood_attention_is_the_models_attention_and_sums_to_one(small_graph, small_model, small_inspection,
                                                                         layer):  # fmt: skip
    inputs = small_graph.dense_x() if layer == 0 else small_inspection.hidden[0]
    source, target = small_graph.edge_index.tolist()
    for node in (0, 7, top_degree_nodes(small_graph, 1)[0]):
        neighbours = {s for s, t in zip(source, target, strict=True) if t == node}
        expected = reference_attention(small_model, inputs, layer, node, neighbours)
        neighbourhood = neighbourhood_attention(small_inspection, node, layer)
        assert sorted(neighbourhood.sources.tolist()) == sorted(expected)
        assert neighbourhood.degree == len(neighbours)
        for source_node, attention in zip(neighbourhood.sources.tolist(), neighbourhood.attention, strict=True):
            np.testing.assert_allclose(attention, expected[source_node].numpy(), atol=1e-6)
        np.testing.assert_allclose(neighbourhood.attention.sum(axis=0), 1.0, atol=1e-6)


def test_drawn_attention_is_proportional_to_the_models_and_titled(small_graph, small_inspection):
    node = top_degree_nodes(small_graph, 1)[0]
    neighbourhood = neighbourhood_attention(small_inspection, node, layer=1)
    figure = draw_attention(small_inspection, small_graph, node, layer=1, heads=[1])
    (spokes,) = [c for c in figure.axes[0].collections if c.get_label() == "attention"]
    attention = neighbourhood.attention[:, 1]
    widths, opacity = np.asarray(spokes.get_linewidths()), spokes.get_colors()[:, 3]
    assert len(widths) == len(attention) == neighbourhood.degree + 1  # every incoming edge, the self-loop too
    np.testing.assert_allclose(widths / widths.max(), attention / attention.max(), rtol=1e-6)
    np.testing.assert_allclose(opacity, attention / attention.max(), rtol=1e-6)
    loop = spokes.get_paths()[int(np.flatnonzero(neighbourhood.sources == node)[0])]
    assert len(loop.vertices) > 2  # drawn as a loop, not a zero-length spoke
    title = figure.get_suptitle()
    assert f"node {node}" in title and f"degree {neighbourhood.degree}" in title and "layer 1" in title
    panel_title = figure.axes[0].get_title()
    assert panel_title.startswith("head 1") and f"max {attention.max():.3g}" in panel_title
    assert f"min {attention.min():.3g}" in panel_title


def test_attention_grid_has_a_panel_per_head_and_both_layouts_work(small_graph, small_inspection):
    for layout in ("circular", "kamada-kawai"):
        figure = draw_attention(small_inspection, small_graph, 3, layer=0, layout=layout)
        titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
        assert [t.split("  ·")[0] for t in titles] == ["head 0", "head 1", "head 2"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"node": 150, "layer": 0}, "node 150 does not exist: the graph has nodes 0..149"),
        ({"node": 0, "layer": 2}, "layer 2 does not exist: the model has layers 0..1"),
        ({"node": 0, "layer": 1, "heads": [2]}, "head 2 does not exist: layer 1 has heads 0..1"),
    ],
)
def test_bad_node_layer_or_head_is_one_clear_error(small_graph, small_inspection, arguments, message):
    with pytest.raises(GATError, match=f"^{message}$"):
        draw_attention(small_inspection, small_graph, **arguments)


def test_tsne_is_seeded_and_reduces_wide_layers_first():
    features = np.random.default_rng(0).normal(size=(60, 64))
    points = tsne(features, seed=3)
    assert points.shape == (60, 2) and np.isfinite(points).all()
    np.testing.assert_array_equal(points, tsne(features, seed=3))


def test_embedding_figure_maps_the_last_hidden_layer_and_the_logits(small_graph, small_inspection):
    figure = embedding_figure(small_inspection, small_graph, max_nodes=80)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith("layer 0 output (12-d)") and titles[1].startswith("logits (3-d)")
    assert all("silhouette" in title for title in titles)
    assert [len(ax.collections[0].get_offsets()) for ax in figure.axes] == [80, 80]
    assert "80 of 150 nodes" in figure.get_suptitle()


@pytest.mark.parametrize(("layout", "backend"), [("kamada-kawai", "igraph"), ("drl", "igraph"),
                                                 ("fruchterman-reingold", "networkx")])  # fmt: skip
def test_graph_drawing_draws_every_node_and_edge(small_graph, layout, backend):
    figure = draw_graph(small_graph, layout, backend)
    edges, nodes = figure.axes[0].collections
    assert len(edges.get_segments()) == len(undirected_edges(small_graph))
    assert len(nodes.get_offsets()) == small_graph.num_nodes
    assert backend in figure.get_suptitle()


def test_networkx_has_no_drl_layout(small_graph):
    with pytest.raises(GATError, match="networkx has no DrL layout"):
        draw_graph(small_graph, "drl", "networkx")


def test_packed_components_do_not_overlap():
    components = [np.arange(0, 50), np.arange(50, 60), np.arange(60, 62), np.array([62]), np.arange(63, 70)]
    rng = np.random.default_rng(0)
    positions = pack_components(components, lambda members: rng.normal(size=(len(members), 2)), 70)
    boxes = [(positions[c].min(axis=0), positions[c].max(axis=0)) for c in components]
    for i, (low_a, high_a) in enumerate(boxes):
        for low_b, high_b in boxes[i + 1 :]:
            assert (high_a < low_b).any() or (high_b < low_a).any()  # separated along some axis


def test_saved_png_has_the_requested_size(small_graph, tmp_path):
    (path,) = save_figure(degree_figure(small_graph), tmp_path, "degrees", size=(640, 480))
    assert matplotlib.image.imread(path).shape[:2] == (480, 640)


def test_loading_a_model_checks_the_dataset_and_the_file(synthetic_binary, tmp_path):
    trained = load_trained(synthetic_binary, data_dir=tmp_path)
    assert trained.graph.name == "synthetic" and trained.run_dir.name == trained.run_id
    with pytest.raises(GATError, match="trained on synthetic, not cora: pass --dataset synthetic"):
        load_trained(synthetic_binary, dataset="cora", data_dir=tmp_path)
    with pytest.raises(GATError, match="no such file"):
        load_trained(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(synthetic_binary.read_bytes()[:500])
    with pytest.raises(GATError, match="truncated, corrupt or not ours"):
        load_trained(corrupt)
