"""The dataset at a glance: degree counts, the degree distribution, and a summary of the graph's structure."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gat.data.graph import Graph
from gat.errors import GATError
from visualization.graphs import to_igraph, undirected_edges
from visualization.style import INK, PALETTE, new_figure, styled


def degree_counts(edge_index: torch.Tensor, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(in_degree, out_degree)``, each ``int64 [N]``: edges into / out of every node (no self-loops added)."""
    source, target = edge_index.cpu().numpy()
    return np.bincount(target, minlength=num_nodes), np.bincount(source, minlength=num_nodes)


def dataset_summary(graph: Graph) -> dict[str, float | int | str]:
    """Size and structure of the graph, as plain JSON-ready numbers.

    "Degree" is the in-degree: the number of neighbours a GAT layer attends over, before its self-loop (for an
    undirected graph, the usual degree). Edge homophily is the share of edges joining two nodes of the same class;
    average clustering counts nodes with fewer than two neighbours as 0 (networkx's convention).
    """
    in_degree, out_degree = degree_counts(graph.edge_index, graph.num_nodes)
    source, target = graph.edge_index.cpu().numpy()
    labels = graph.y.cpu().numpy()
    igraph_graph = to_igraph(graph)
    component_sizes = igraph_graph.connected_components().sizes()
    return {
        "dataset": graph.name,
        "nodes": graph.num_nodes,
        "directed_edges": graph.num_edges,
        "undirected_edges": len(undirected_edges(graph)),
        "features": graph.num_features,
        "classes": graph.num_classes,
        "isolated_nodes": int(np.count_nonzero(in_degree + out_degree == 0)),
        "max_degree": int(in_degree.max(initial=0)),
        "mean_degree": float(in_degree.mean()),
        "median_degree": float(np.median(in_degree)),
        "connected_components": len(component_sizes),
        "largest_component_nodes": max(component_sizes),
        "edge_homophily": float(np.mean(labels[source] == labels[target])) if graph.num_edges else float("nan"),
        "average_clustering": igraph_graph.transitivity_avglocal_undirected(mode="zero"),
    }


def is_undirected(edge_index: torch.Tensor) -> bool:
    """True when every edge ``j -> i`` has its reverse ``i -> j``: in-degree and out-degree are then the same."""
    source, target = edge_index.cpu().numpy()
    forward = set(zip(source.tolist(), target.tolist(), strict=True))
    return all((t, s) in forward for s, t in forward)


@styled
def degree_figure(graph: Graph) -> Figure:
    """Three panels: the degree distribution (one bar per integer degree, up to the 99th percentile), the same on
    log-log axes (a straight line is a power-law tail), and every node's degree in decreasing order (the hubs on
    the left, named). An undirected graph has one degree; a directed one shows in- and out-degree side by side."""
    in_degree, out_degree = degree_counts(graph.edge_index, graph.num_nodes)
    undirected = is_undirected(graph.edge_index)
    series = [("degree", in_degree)] if undirected else [("in-degree", in_degree), ("out-degree", out_degree)]
    figure = new_figure(13, 4.6)
    linear_ax, loglog_ax, rank_ax = figure.subplots(1, 3)
    cutoff = max(int(np.percentile(in_degree, 99)), 1)
    width = 0.8 / len(series)
    for index, (name, degree) in enumerate(series):
        counts = np.bincount(degree, minlength=cutoff + 1)
        degrees = np.arange(len(counts))
        shown = degrees <= cutoff
        offset = (index - (len(series) - 1) / 2) * width
        linear_ax.bar(degrees[shown] + offset, counts[shown], width=width, color=PALETTE[index], label=name)
        present = (counts > 0) & (degrees > 0)  # log axes cannot show degree 0 or empty degrees
        loglog_ax.loglog(degrees[present], counts[present], "o", color=PALETTE[index], markersize=4, alpha=0.8,
                         label=name)  # fmt: skip
        rank_ax.semilogy(np.arange(1, len(degree) + 1), np.sort(degree)[::-1], color=PALETTE[index], label=name)
    for value, style, name in ((in_degree.mean(), "--", "mean"), (np.median(in_degree), ":", "median")):
        linear_ax.axvline(value, color=INK, linestyle=style, linewidth=1.1, label=f"{name} {value:.2f}")
    hidden = int(np.count_nonzero(in_degree > cutoff))
    linear_ax.set(title="degree distribution", xlabel=series[0][0] if undirected else "degree",
                  ylabel="number of nodes", xlim=(-0.6, cutoff + 0.6))  # fmt: skip
    linear_ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # degrees are integers: ticks on integers
    linear_ax.legend(title=f"{hidden} nodes with degree > {cutoff} not shown" if hidden else None)
    loglog_ax.set(title="degree distribution (log-log)", xlabel="degree", ylabel="number of nodes")
    isolated = int(np.count_nonzero(in_degree == 0))
    if isolated:
        loglog_ax.text(0.97, 0.95, f"{isolated} nodes of degree 0 not shown", transform=loglog_ax.transAxes,
                       ha="right", va="top", fontsize=9)  # fmt: skip
    hub = int(np.argmax(in_degree))
    rank_ax.annotate(f"hub: node {hub}, degree {in_degree[hub]}", (1, in_degree[hub]), xytext=(10, -6),
                     textcoords="offset points", fontsize=9, va="top")  # fmt: skip
    rank_ax.set(title="every node's degree, largest first", xlabel="rank", ylabel="degree", xscale="log")
    if not undirected:
        loglog_ax.legend()
    kind = "undirected" if undirected else "directed"
    figure.suptitle(
        f"{graph.name}: {graph.num_nodes:,} nodes, {graph.num_edges:,} directed edges ({kind}), "
        f"mean degree {in_degree.mean():.2f}, max {in_degree.max(initial=0)}"
    )
    return figure


def top_degree_nodes(graph: Graph, k: int) -> list[int]:
    """The ``k`` nodes with the most neighbours (ties: smaller id first); GATError if the graph has fewer."""
    if k > graph.num_nodes:
        raise GATError(f"the top {k} nodes by degree were asked for, but {graph.name} has {graph.num_nodes} nodes")
    in_degree = degree_counts(graph.edge_index, graph.num_nodes)[0]
    return np.argsort(-in_degree, kind="stable")[:k].tolist()
