"""The whole graph as a node-link drawing, with igraph or with networkx.

Node area grows with degree, colour is the class, edge width grows with edge betweenness (edges many shortest
paths cross: the bridges between communities). Every connected component is laid out on its own and the pieces
are packed side by side, the largest on the left, so small components do not fly off to the edges of the picture
and squeeze the main one into a dot (what a force layout does to a disconnected graph).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import igraph
import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from gat.data.graph import Graph
from gat.errors import GATError
from visualization.choices import BACKENDS, LAYOUTS
from visualization.degrees import degree_counts
from visualization.graphs import to_igraph, to_networkx, undirected_edges
from visualization.style import EDGE_GREY, add_class_legend, bare, new_figure, node_colours, styled

LAYOUT_NAMES = {"kamada-kawai": "Kamada-Kawai", "fruchterman-reingold": "Fruchterman-Reingold", "drl": "DrL"}
# Components this small look the same under any layout; DrL's fixed cost (~0.3 s a call) would add up over them.
SMALL_COMPONENT = 10
# networkx samples this many shortest-path sources for edge betweenness: exact costs ~30 s on Cora, this ~3 s.
BETWEENNESS_SOURCES = 500


@styled
def draw_graph(graph: Graph, layout: str = "kamada-kawai", backend: str = "igraph", seed: int = 0) -> Figure:
    """The whole graph: node area ~ degree, node colour = class (legend), edge width ~ edge betweenness.

    ``layout`` is one of :data:`LAYOUTS` (DrL with igraph only); ``backend`` (``"igraph"`` or ``"networkx"``)
    computes the layout and the betweenness. Both are drawn the same way, as one line collection and one scatter:
    igraph's own matplotlib drawer re-measures every vertex patch at each redraw (17 of 23 s on Cora), and one
    renderer makes the two backends' pictures directly comparable. The same ``seed`` gives the same picture.
    networkx is the slow fallback, for where igraph cannot be installed: its layouts and betweenness run in
    Python (Kamada-Kawai on Cora's largest component optimises over all 2485^2 pairs with scipy) and take
    several times as long as igraph's C code.
    """
    if layout not in LAYOUTS:
        raise GATError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if backend not in BACKENDS:
        raise GATError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "networkx" and layout == "drl":
        raise GATError("networkx has no DrL layout: use --backend igraph, or another --layout with networkx")
    edges = undirected_edges(graph)
    compute = _igraph_layout if backend == "igraph" else _networkx_layout
    positions, betweenness = compute(graph, edges, layout, seed)

    figure = new_figure(11, 8.2)
    ax = figure.add_subplot()
    ax.add_collection(LineCollection(positions[edges], linewidths=edge_widths(betweenness), colors=EDGE_GREY))
    degree = degree_counts(graph.edge_index, graph.num_nodes)[0]
    # Diameter in points (scatter takes its square): the area, what the eye compares, grows linearly with degree.
    diameter = 2.0 + 1.2 * np.sqrt(degree)
    ax.scatter(*positions.T, s=diameter**2, c=node_colours(graph.y.cpu().numpy(), graph.num_classes),
               edgecolors="white", linewidths=0.3, zorder=2)  # fmt: skip
    bare(ax)
    add_class_legend(ax, range(graph.num_classes), graph.num_classes, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                     ncols=min(graph.num_classes, 8))  # fmt: skip
    figure.suptitle(
        f"{graph.name}: {graph.num_nodes:,} nodes, {len(edges):,} edges  ·  {backend}, {LAYOUT_NAMES[layout]} layout"
    )
    ax.set_title("node area ~ degree  ·  colour = class  ·  edge width ~ edge betweenness", pad=34, fontsize=10)
    return figure


def edge_widths(betweenness: np.ndarray) -> np.ndarray:
    """Line width in points: a hairline for edges no shortest path needs, 3 pt for the busiest bridge."""
    top = betweenness.max(initial=0.0)
    return 0.25 + 2.75 * (betweenness / top if top > 0 else betweenness)


def _igraph_layout(graph: Graph, edges: np.ndarray, layout: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [N, 2], edge betweenness [M])`` from igraph (its edges are ``edges``, in order)."""
    igraph_graph = to_igraph(graph)
    algorithm = {"kamada-kawai": "layout_kamada_kawai", "fruchterman-reingold": "layout_fruchterman_reingold",
                 "drl": "layout_drl"}[layout]  # fmt: skip

    def lay_out(members: np.ndarray) -> np.ndarray:
        part = igraph_graph.induced_subgraph(members)
        small = len(members) < SMALL_COMPONENT
        return np.array((part.layout_fruchterman_reingold() if small else getattr(part, algorithm)()).coords)

    with _igraph_seed(seed):
        components = [np.array(part) for part in igraph_graph.connected_components()]
        positions = pack_components(components, lay_out, graph.num_nodes)
    return positions, np.array(igraph_graph.edge_betweenness(directed=False))


def _networkx_layout(graph: Graph, edges: np.ndarray, layout: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [N, 2], edge betweenness [M])`` from networkx, the betweenness estimated from sampled sources."""
    nx_graph = to_networkx(graph)

    def lay_out(members: np.ndarray) -> np.ndarray:
        part = nx_graph.subgraph(members.tolist())
        if layout == "fruchterman-reingold":
            position = nx.spring_layout(part, seed=seed)
        else:
            position = nx.kamada_kawai_layout(part)  # deterministic: starts from a circle
        return np.array([position[node] for node in members.tolist()])

    components = [np.array(sorted(part)) for part in nx.connected_components(nx_graph)]
    positions = pack_components(components, lay_out, graph.num_nodes)
    sources = min(BETWEENNESS_SOURCES, graph.num_nodes)
    by_edge = nx.edge_betweenness_centrality(nx_graph, k=sources, seed=seed)
    betweenness = [by_edge[(u, v)] if (u, v) in by_edge else by_edge[(v, u)] for u, v in edges.tolist()]
    return positions, np.array(betweenness)


def pack_components(
    components: list[np.ndarray], lay_out: Callable[[np.ndarray], np.ndarray], num_nodes: int, gap: float = 0.2
) -> np.ndarray:
    """``[N, 2]`` positions: each component laid out alone by ``lay_out(member ids) -> [n, 2]``, scaled into a
    square of side sqrt(n) (the same node density everywhere) and packed: the largest on the left, the others in
    rows to its right, largest first."""
    components = sorted(components, key=len, reverse=True)
    sides = [np.sqrt(len(members)) for members in components]
    rest_area = sum(side**2 for side in sides[1:]) * (1 + gap) ** 2
    strip_width = max(rest_area / sides[0], np.sqrt(rest_area), max(sides[1:], default=0.0) * (1 + gap))
    left = sides[0] * (1 + gap)
    x, top, row_height = left, sides[0], 0.0
    positions = np.zeros((num_nodes, 2))
    for index, (members, side) in enumerate(zip(components, sides, strict=True)):
        if index == 0:
            corner = np.array([0.0, 0.0])
        else:
            cell = side * (1 + gap)
            if x + cell > left + strip_width:  # row full: start the next one below
                x, top, row_height = left, top - row_height, 0.0
            corner = np.array([x, top - side])
            x, row_height = x + cell, max(row_height, cell)
        positions[members] = corner + _fit(lay_out(members) if len(members) > 1 else np.zeros((1, 2)), side)
    return positions


def _fit(coords: np.ndarray, side: float) -> np.ndarray:
    """Scale and centre ``coords`` into the square [0, side]^2, keeping the aspect ratio."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = (high - low).max()
    scaled = (coords - low) / span * side if span > 0 else np.zeros_like(coords)
    return scaled + (side - scaled.max(axis=0)) / 2


@contextmanager
def _igraph_seed(seed: int) -> Iterator[None]:
    """igraph draws its random layouts from Python's ``random`` module; give it a seeded one for a while."""
    igraph.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        igraph.set_random_number_generator(random)
