"""The visualization library: the numbers behind every picture, checked against independent computations."""

import dataclasses
import io
import math

import matplotlib
import matplotlib.image
import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gat.data.registry import load_dataset
from gat.errors import GATError
from gat.nn.analysis import attention_entropy, kl_from_uniform, neighbourhood_sizes, uniform_attention
from gat.nn.model import GAT, Inspection
from gat.training.loop import inspect_model
from tests.helpers import count_tsne_fits
from visualization.attention import MIN_WIDTH, POINTS_PER_UNIT, draw_attention, neighbourhood_attention
from visualization.degrees import dataset_summary, degree_counts, degree_figure, top_degree_nodes
from visualization.embeddings import embedding_figure, layer_map
from visualization.entropy import entropy_bins, entropy_figure, entropy_statistics
from visualization.graph_drawing import draw_graph, pack_components
from visualization.graphs import to_networkx, undirected_edges
from visualization.loading import load_trained
from visualization.maps import tsne
from visualization.style import class_colours, render, save_figure


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
    histograms = [ax for ax in figure.axes if ax.get_visible() and ax.get_xscale() == "linear"]
    assert len(histograms) == 5  # one per head; beside them one log-axis panel per layer
    assert "mean KL from uniform" in histograms[0].get_legend().get_texts()[1].get_text()


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
    np.testing.assert_allclose(widths, np.maximum(POINTS_PER_UNIT * attention, MIN_WIDTH), rtol=1e-6)
    np.testing.assert_allclose(opacity, 0.3 + 0.7 * np.minimum(attention / 0.5, 1), rtol=1e-6)
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
    edges, nodes, _hub_ring = figure.axes[0].collections
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


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (2600, 920)])
def test_saved_png_has_the_requested_size_at_the_same_layout(small_graph, size, tmp_path, recwarn):
    figure = degree_figure(small_graph)
    width_inches = figure.get_figwidth()
    (path,) = save_figure(figure, tmp_path, "degrees", size=size)
    assert matplotlib.image.imread(path).shape[:2] == size[::-1]
    # the width in inches is kept, so text and layout scale with the picture; PNG stores pixels per metre, a whole
    # number: the dpi read back is within a rounding of the figure's
    assert figure.get_figwidth() == pytest.approx(width_inches)
    assert Image.open(path).info["dpi"] == pytest.approx((size[0] / width_inches,) * 2, abs=0.02)
    assert not [warning for warning in recwarn if "constrained_layout" in str(warning.message)]  # everything fits


def test_a_picture_too_small_for_its_text_is_still_written(small_graph, tmp_path):
    with pytest.warns(UserWarning, match="constrained_layout"):  # matplotlib says that the layout does not fit
        (path,) = save_figure(degree_figure(small_graph), tmp_path, "degrees", size=(16, 16))
    assert matplotlib.image.imread(path).shape[:2] == (16, 16)


@pytest.mark.parametrize("facecolor", ["white", (1, 1, 1, 0), (0.2, 0.4, 0.6, 0.5)])
def test_a_picture_drawn_once_has_the_pixels_savefig_writes_on_white(small_graph, facecolor):
    figure = degree_figure(small_graph)
    figure.set_facecolor(facecolor)  # replaced by white, as savefig's facecolor replaces it
    saved = io.BytesIO()
    figure.savefig(saved, format="png", dpi=figure.dpi, facecolor="white")
    expected = np.asarray(Image.open(saved).convert("RGB"), dtype=int)
    assert (render(figure) == expected).all()


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


def kl_by_loops(attention: np.ndarray, targets: np.ndarray, num_nodes: int) -> np.ndarray:
    """``[N, heads]`` KL(attention || uniform) = sum_j a_j log(a_j d), node by node, in float64."""
    kl = np.zeros((num_nodes, attention.shape[1]))
    for node in range(num_nodes):
        incoming = attention[targets == node].astype(np.float64)
        kl[node] = (incoming * np.log(incoming * len(incoming))).sum(axis=0)
    return kl


def cielab(colour: str) -> np.ndarray:
    """sRGB colour -> CIELAB (D65 white)."""
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = to_xyz @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_degree_figure_of_an_undirected_graph_has_one_degree_integer_bars_and_a_rank_plot(small_graph):
    figure = degree_figure(small_graph)
    linear, loglog, rank = figure.axes
    texts = " ".join(text.get_text() for ax in figure.axes for text in ax.texts + [ax.title, ax.xaxis.label])
    assert "out-degree" not in texts and "in-degree" not in texts and "(undirected)" in figure.get_suptitle()
    degree = degree_counts(small_graph.edge_index, small_graph.num_nodes)[0]
    counts = np.bincount(degree)
    bars = linear.patches
    centres = np.array([bar.get_x() + bar.get_width() / 2 for bar in bars])
    np.testing.assert_allclose(centres, np.round(centres))  # one bar on each integer degree, not between two
    assert [bar.get_height() for bar in bars] == counts[np.round(centres).astype(int)].tolist()
    ticks = [tick for tick in linear.get_xticks() if linear.get_xlim()[0] <= tick <= linear.get_xlim()[1]]
    assert all(float(tick).is_integer() for tick in ticks)
    (line,) = rank.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), np.sort(degree)[::-1])
    hub = int(np.argmax(degree))
    assert any(f"node {hub}, degree {degree[hub]}" in text.get_text() for text in rank.texts)


def test_degree_figure_of_a_directed_graph_shows_in_and_out_degree(small_graph):
    one_way = small_graph.edge_index[:, small_graph.edge_index[0] < small_graph.edge_index[1]]
    directed = dataclasses.replace(small_graph, edge_index=one_way)
    figure = degree_figure(directed)
    labels = [line.get_label() for line in figure.axes[2].get_lines()]
    assert labels == ["in-degree", "out-degree"] and "(directed)" in figure.get_suptitle()


def test_class_colours_are_far_apart_for_coras_seven_classes():
    lab = [cielab(colour) for colour in class_colours(7)]
    distances = [np.linalg.norm(a - b) for i, a in enumerate(lab) for b in lab[i + 1 :]]
    assert min(distances) > 40  # CIELAB Delta E: Okabe & Ito's first seven give 26 (blue vs sky blue)


def test_packed_small_components_lie_farther_apart_than_their_own_nodes():
    pairs = [np.array([2 * k, 2 * k + 1]) for k in range(1, 30)]
    components = [np.array([0, 1, *range(60, 160)]), *pairs, np.arange(160, 165)]
    rng = np.random.default_rng(0)
    positions = pack_components(components, lambda members: rng.normal(size=(len(members), 2)), 165)
    longest_pair = max(np.linalg.norm(positions[a] - positions[b]) for a, b in pairs)
    which = np.zeros(165, dtype=int)
    for index, members in enumerate(components):
        which[members] = index
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    apart = distance[which[:, None] != which[None]]
    assert apart.min() > 1.5 * longest_pair  # a row of pairs reads as pairs, not as one chain


def test_graph_drawing_rings_the_hub_and_highlighted_nodes_and_fits_the_figure(small_graph):
    degree = degree_counts(small_graph.edge_index, small_graph.num_nodes)[0]
    hub = int(np.argmax(degree))
    figure = draw_graph(small_graph, "fruchterman-reingold", highlight=[5])
    ax = figure.axes[0]
    edges, nodes, *rings = ax.collections
    texts = [text.get_text() for text in ax.texts]
    assert f"hub: node {hub}, degree {degree[hub]}" in texts and f"node 5, degree {degree[5]}" in texts
    ringed = sorted(tuple(ring.get_offsets()[0]) for ring in rings)
    positions = nodes.get_offsets()
    assert ringed == sorted([tuple(positions[hub]), tuple(positions[5])])
    figure.canvas.draw()
    box = ax.get_window_extent()
    span = np.ptp(positions, axis=0)
    data_aspect, axes_aspect = span[0] / span[1], box.width / box.height
    assert abs(data_aspect / axes_aspect - 1) < 0.15  # the drawing fills the canvas, no empty third
    with pytest.raises(GATError, match="node 150 does not exist"):
        draw_graph(small_graph, "fruchterman-reingold", highlight=[150])


def test_attention_widths_share_one_scale_across_figures_and_the_legend_says_so(cora):
    torch.manual_seed(0)
    inspection = inspect_model(GAT(cora.num_features, cora.num_classes), cora)
    hub = top_degree_nodes(cora, 1)[0]
    for node in (hub, 5):
        figure = draw_attention(inspection, cora, node, layer=0, heads=[0])
        (spokes,) = [c for c in figure.axes[0].collections if c.get_label() == "attention"]
        attention = neighbourhood_attention(inspection, node, 0).attention[:, 0]
        np.testing.assert_allclose(spokes.get_linewidths(), np.maximum(10 * attention, 0.4), rtol=1e-6)
        title = figure.legends[0].get_title().get_text()
        assert "edge width = 10 pt × attention α" in title and "'self' = the node's attention to itself" in title
        assert ("the 5 most attended neighbours" in title) == (node == hub)
        assert "self" in [text.get_text() for text in figure.axes[0].texts]
        named = [
            int(t.get_text()) for t in figure.axes[0].texts if t.get_text().isdigit() and int(t.get_text()) != node
        ]
        sources = neighbourhood_attention(inspection, node, 0).sources
        if node == hub:
            top = sources[np.argsort(-attention, kind="stable")]
            assert sorted(named) == sorted(top[top != node][:5].tolist())


def test_entropy_figure_plots_each_nodes_kl_from_uniform_on_a_log_axis(small_inspection):
    # An untrained model's attention is within ~1e-6 nats of uniform, where float32 rounding (1e-7 per
    # coefficient) would blur the comparison: renormalise it in float64 first.
    targets = small_inspection.edge_index[1]
    num_nodes = small_inspection.logits.shape[0]
    attention = []
    for layer_attention in small_inspection.attention:
        values = layer_attention.double()
        sums = torch.zeros(num_nodes, values.shape[1], dtype=torch.float64).index_add_(0, targets, values)
        attention.append(values / sums[targets])
    inspection = Inspection(small_inspection.logits, small_inspection.hidden, attention, small_inspection.edge_index)
    figure = entropy_figure(inspection)
    gap_axes = [ax for ax in figure.axes if ax.get_xscale() == "log"]
    assert [ax.get_title() for ax in gap_axes] == ["layer 0", "layer 1"]
    choosing = np.bincount(targets.numpy(), minlength=num_nodes) > 1
    for layer, ax in enumerate(gap_axes):
        expected = kl_by_loops(attention[layer].numpy(), targets.numpy(), num_nodes)[choosing]
        lines = ax.get_lines()
        assert len(lines) == expected.shape[1]
        for head, line in enumerate(lines):
            np.testing.assert_allclose(line.get_xdata(), np.sort(np.maximum(expected[:, head], 1e-9)), rtol=1e-6)
            assert line.get_ydata()[-1] == pytest.approx(1.0)


def test_tsne_rings_training_nodes_and_crosses_misclassified_ones(small_graph, small_inspection):
    figure = embedding_figure(small_inspection, small_graph, layers=[-1], max_nodes=None)
    ax = figure.axes[0]
    points, training, wrong = ax.collections
    predicted = small_inspection.logits.argmax(1)
    np.testing.assert_array_equal(training.get_offsets(), points.get_offsets()[small_graph.train_mask.numpy()])
    np.testing.assert_array_equal(wrong.get_offsets(), points.get_offsets()[(predicted != small_graph.y).numpy()])
    assert 0 < len(wrong.get_offsets()) < small_graph.num_nodes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert f"training node ({int(small_graph.train_mask.sum())})" in legend
    assert f"misclassified ({int((predicted != small_graph.y).sum())})" in legend


def test_a_models_t_sne_map_is_made_once_per_layer_sample_and_seed(small_graph, small_inspection, monkeypatch):
    fitted = count_tsne_fits(monkeypatch)
    maps = {}
    figure = embedding_figure(small_inspection, small_graph, layers=[-1], max_nodes=None, maps=maps)
    everyone = np.arange(small_graph.num_nodes)
    shared = layer_map(small_inspection, len(small_inspection.hidden) - 1, everyone, 0, maps)  # -1, counted from 0
    np.testing.assert_array_equal(shared, figure.axes[0].collections[0].get_offsets())
    assert len(fitted) == 1
    layer_map(small_inspection, -1, everyone, seed=1, maps=maps)  # another seed, another sample: new maps
    layer_map(small_inspection, -1, everyone[:100], seed=0, maps=maps)
    assert len(fitted) == 3
