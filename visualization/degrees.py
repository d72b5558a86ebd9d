"""The dataset at a glance: degree counts, the degree distribution, and a summary of the graph's structure."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gat.data.graph import Graph
from visualization.graphs import to_igraph, undirected_edges
from visualization.style import PALETTE, new_figure, styled


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


@styled
def degree_figure(graph: Graph) -> Figure:
    """Four panels: the in-degree and out-degree of every node (by node id), and the degree distribution on
    linear and on log-log axes (a straight line on log-log is a power-law tail)."""
    in_degree, out_degree = degree_counts(graph.edge_index, graph.num_nodes)
    figure = new_figure(11, 7.5)
    (in_ax, out_ax), (linear_ax, loglog_ax) = figure.subplots(2, 2)
    _per_node(in_ax, in_degree, "in-degree", PALETTE[0])
    _per_node(out_ax, out_degree, "out-degree", PALETTE[1])

    counts = np.bincount(in_degree)
    degrees = np.arange(len(counts))
    linear_ax.bar(degrees, counts, width=1.0, color=PALETTE[0], edgecolor="none")
    for value, style, name in ((in_degree.mean(), "--", "mean"), (np.median(in_degree), ":", "median")):
        linear_ax.axvline(value, color=PALETTE[3], linestyle=style, linewidth=1.3, label=f"{name} {value:.2f}")
    # The tail (a few hubs) would squeeze the bulk into a sliver: show up to the 99th percentile, name the rest.
    cutoff = max(int(np.percentile(in_degree, 99)), 1)
    hidden = int(np.count_nonzero(in_degree > cutoff))
    linear_ax.set(title="degree distribution", xlabel="in-degree", ylabel="number of nodes", xlim=(-0.5, cutoff + 0.5))
    linear_ax.legend(title=f"{hidden} nodes with degree > {cutoff} not shown" if hidden else None)

    present = (counts > 0) & (degrees > 0)  # log axes cannot show degree 0 or empty degrees
    loglog_ax.loglog(degrees[present], counts[present], "o", color=PALETTE[0], markersize=4, alpha=0.8)
    loglog_ax.set(title="degree distribution (log-log)", xlabel="in-degree", ylabel="number of nodes")
    if counts[0]:
        loglog_ax.text(0.97, 0.95, f"{counts[0]} isolated nodes not shown", transform=loglog_ax.transAxes,
                       ha="right", va="top", fontsize=9)  # fmt: skip
    figure.suptitle(
        f"{graph.name}: {graph.num_nodes:,} nodes, {graph.num_edges:,} directed edges, "
        f"mean degree {in_degree.mean():.2f}, max {in_degree.max(initial=0)}"
    )
    return figure


def _per_node(ax: Axes, degree: np.ndarray, name: str, colour: str) -> None:
    ax.vlines(np.arange(len(degree)), 0, degree, color=colour, linewidth=0.6)
    top = int(np.argmax(degree))
    ax.annotate(f"node {top}: {degree[top]}", (top, degree[top]), xytext=(6, -2), textcoords="offset points",
                va="top", fontsize=9)  # fmt: skip
    ax.set(title=f"{name} of each node", xlabel="node id", ylabel=name, xlim=(-0.5, len(degree) - 0.5))
    ax.set_ylim(bottom=0)


def top_degree_nodes(graph: Graph, k: int) -> list[int]:
    """The ``k`` nodes with the most neighbours (ties: smaller id first)."""
    in_degree = degree_counts(graph.edge_index, graph.num_nodes)[0]
    return np.argsort(-in_degree, kind="stable")[:k].tolist()
