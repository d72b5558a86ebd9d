"""The whole graph as a node-link drawing, with igraph or with networkx.

Node area grows with degree, colour is the class, edge width grows with edge betweenness (edges many shortest
paths cross: the bridges between communities). Every connected component is laid out on its own and the pieces
are packed side by side, the largest on the left, so small components do not fly off to the edges of the picture
and squeeze the main one into a dot (what a force layout does to a disconnected graph).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import igraph
import networkx as nx
import numpy as np
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from gat.data.graph import Graph
from gat.errors import GATError
from visualization.choices import BACKENDS, LAYOUTS
from visualization.degrees import degree_counts
from visualization.graphs import to_igraph, to_networkx, undirected_edges
from visualization.loading import checked_index
from visualization.style import EDGE_GREY, INK, add_class_legend, bare, new_figure, node_colours, styled

LAYOUT_NAMES = {"kamada-kawai": "Kamada-Kawai", "fruchterman-reingold": "Fruchterman-Reingold", "drl": "DrL"}
# Components this small look the same under any layout; DrL's fixed cost (~0.3 s a call) would add up over them.
SMALL_COMPONENT = 10
# Packing: the least space between two components, in units of the node spacing (a component of n nodes fills a
# square of side sqrt(n)), and the share of its square a small component's drawing fills.
MIN_GAP = 2.0
SMALL_FILL = 0.7
RING_LABEL = "highlighted"
HALO = [patheffects.withStroke(linewidth=2.5, foreground="white")]
# networkx samples this many shortest-path sources for edge betweenness: exact costs ~30 s on Cora, this ~3 s.
BETWEENNESS_SOURCES = 500


@styled
def draw_graph(
    graph: Graph, layout: str = "kamada-kawai", backend: str = "igraph", seed: int = 0, highlight: Sequence[int] = ()
) -> Figure:
    """The whole graph: node area ~ degree, node colour = class (legend), edge width ~ edge betweenness; the
    best-connected node (the hub) and the nodes in ``highlight`` are ringed and named.

    ``layout`` is one of :data:`LAYOUTS` (DrL with igraph only); ``backend`` (``"igraph"`` or ``"networkx"``)
    computes the layout and the betweenness. Both are drawn the same way, as one line collection and one scatter:
    igraph's own matplotlib drawer re-measures every vertex patch at each redraw (17 of 23 s on Cora), and one
    renderer makes the two backends' pictures directly comparable. The same ``seed`` gives the same picture. The
    figure takes the packed layout's aspect ratio, so the drawing fills it.
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
    highlight = [checked_index(node, graph.num_nodes, "node", "the graph") for node in highlight]
    edges = undirected_edges(graph)
    compute = _igraph_layout if backend == "igraph" else _networkx_layout
    positions, betweenness = compute(graph, edges, layout, seed)

    span = np.ptp(positions, axis=0) if graph.num_nodes > 1 else np.ones(2)
    width = 11.0
    figure = new_figure(width, width * float(span[1] / max(span[0], 1e-12)) + 1.2)  # + title and legend
    ax = figure.add_subplot()
    ax.add_collection(LineCollection(positions[edges], linewidths=edge_widths(betweenness), colors=EDGE_GREY))
    degree = degree_counts(graph.edge_index, graph.num_nodes)[0]
    ax.scatter(*positions.T, s=node_diameters(degree) ** 2, c=node_colours(graph.y.cpu().numpy(), graph.num_classes),
               edgecolors="white", linewidths=0.3, zorder=2)  # fmt: skip
    hub = int(np.argmax(degree))
    marked = {node: f"node {node}, degree {degree[node]}" for node in highlight}
    marked[hub] = f"hub: node {hub}, degree {degree[hub]}"
    for node, text in marked.items():
        ax.scatter(*positions[node], s=(node_diameters(degree[node]) + 9) ** 2, facecolors="none", edgecolors=INK,
                   linewidths=1.6, zorder=3, label=RING_LABEL)  # fmt: skip
        ax.annotate(text, positions[node], xytext=(12, 12), textcoords="offset points", fontsize=9, zorder=4,
                    path_effects=HALO, arrowprops={"arrowstyle": "-", "color": INK, "linewidth": 0.8})  # fmt: skip
    bare(ax)
    ax.margins(0.01)
    add_class_legend(ax, range(graph.num_classes), graph.num_classes, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                     ncols=min(graph.num_classes, 8))  # fmt: skip
    figure.suptitle(
        f"{graph.name}: {graph.num_nodes:,} nodes, {len(edges):,} edges  ·  {backend}, {LAYOUT_NAMES[layout]} layout"
    )
    ax.set_title("node area ~ degree  ·  colour = class  ·  edge width ~ edge betweenness", pad=34, fontsize=10)
    return figure


def node_diameters(degree: np.ndarray) -> np.ndarray:
    """Marker diameter in points (scatter takes its square): the area, what the eye compares, grows linearly with
    degree."""
    return 2.0 + 1.2 * np.sqrt(degree)


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
    components: list[np.ndarray],
    lay_out: Callable[[np.ndarray], np.ndarray],
    num_nodes: int,
    gap: float = 0.2,
    min_gap: float = MIN_GAP,
) -> np.ndarray:
    """``[N, 2]`` positions: each component laid out alone by ``lay_out(member ids) -> [n, 2]``, scaled into a
    square of side sqrt(n) (the same node density everywhere) and packed: the largest on the left, the others in
    rows to its right, largest first, in a strip as tall as the largest (so the whole is about as wide as a page).

    Components are kept apart by ``gap`` times their side and at least ``min_gap``, and the small ones fill
    only :data:`SMALL_FILL` of their square: a two-node component then lies farther from its neighbours than its
    own two nodes lie from each other, and a row of pairs does not read as one chain."""
    components = sorted(components, key=len, reverse=True)
    sides = [np.sqrt(len(members)) for members in components]
    cells = [side + max(gap * side, min_gap) for side in sides]
    rest_area = sum(cell**2 for cell in cells[1:])
    strip_width = max(rest_area / sides[0], max(cells[1:], default=0.0))
    left = cells[0]
    x, top, row_height = left, sides[0], 0.0
    positions = np.zeros((num_nodes, 2))
    for index, (members, side, cell) in enumerate(zip(components, sides, cells, strict=True)):
        if index == 0:
            corner, fill = np.array([0.0, 0.0]), 1.0
        else:
            if x + cell > left + strip_width + 1e-9:  # row full: start the next one below
                x, top, row_height = left, top - row_height, 0.0
            corner, fill = np.array([x, top - side]), SMALL_FILL if len(members) < SMALL_COMPONENT else 1.0
            x, row_height = x + cell, max(row_height, cell)
        coords = lay_out(members) if len(members) > 1 else np.zeros((1, 2))
        positions[members] = corner + (1 - fill) * side / 2 + _fit(coords, side * fill)
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
