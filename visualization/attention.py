"""Attention neighbourhoods: whom a node listens to, drawn from a trained model's attention coefficients.

The node sits in the centre, its neighbours around it; each edge into the node (its self-loop included, drawn as
a loop marked "self") is as wide as the attention the layer gives it, on one absolute scale shared by every
attention figure (:data:`POINTS_PER_UNIT` points per unit of attention), so heads, nodes and models compare: a
head that spreads its attention evenly over many neighbours draws many thin lines, a sharp head a few thick ones.
One panel per head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import igraph
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gat.data.graph import Graph
from gat.errors import GATError
from gat.nn.model import Inspection
from visualization.choices import NEIGHBOURHOOD_LAYOUTS
from visualization.graphs import undirected_edges
from visualization.loading import checked_index
from visualization.style import EDGE_GREY, INK, bare, class_colours, class_handles, new_figure, styled

POINTS_PER_UNIT = 10.0  # line width of an edge with attention 1; every edge is POINTS_PER_UNIT * attention wide...
MIN_WIDTH = 0.4  # ...but at least this many points, so no edge vanishes
FULL_OPACITY_AT = 0.5  # attention from which an edge is drawn fully opaque; below, fainter (the same in every figure)
LEGEND_ATTENTION = (1.0, 0.5, 0.2, 0.05)
LABEL_ALL_UP_TO = 30  # neighbours; beyond, only the TOP_LABELLED most attended ones get their id written
TOP_LABELLED = 5
LOOP_RADIUS = 0.12  # of the layout's radius of 1
HALO = [patheffects.withStroke(linewidth=2.5, foreground="white")]  # keeps labels readable over lines


@dataclass
class Neighbourhood:
    """The attention one node gives its neighbourhood in one layer: edge ``k`` is ``sources[k] -> node``."""

    node: int
    layer: int
    sources: np.ndarray  # [k] ids, the node itself included once (its self-loop)
    attention: np.ndarray  # [k, heads]; every column sums to 1

    @property
    def degree(self) -> int:
        """Neighbours other than the node itself."""
        return int(np.count_nonzero(self.sources != self.node))


def neighbourhood_attention(inspection: Inspection, node: int, layer: int) -> Neighbourhood:
    """The coefficients of the edges into ``node`` in ``layer`` (negative: from the last), every head."""
    num_nodes = inspection.logits.shape[0]
    node = checked_index(node, num_nodes, "node", "the graph")
    layer = checked_index(layer, len(inspection.attention), "layer", "the model")
    incoming = (inspection.edge_index[1] == node).cpu().numpy()
    sources = inspection.edge_index[0].cpu().numpy()[incoming]
    return Neighbourhood(node, layer, sources, inspection.attention[layer].cpu().numpy()[incoming])


def neighbourhood_layout(graph: Graph, sources: np.ndarray, node: int, layout: str = "circular") -> np.ndarray:
    """``[k, 2]`` positions of ``sources``: ``node`` at the origin, the neighbours within radius 1.

    ``"circular"``: igraph's Reingold-Tilford circular layout of the star around ``node``, neighbours grouped by
    class; ``"kamada-kawai"``: igraph's Kamada-Kawai layout of the subgraph the neighbourhood induces, so
    neighbours linked to each other sit together.
    """
    labels = graph.y.cpu().numpy()
    others = sorted((int(s) for s in sources if s != node), key=lambda s: (labels[s], s))
    order = [node, *others]  # vertex 0 is the centre
    if layout == "circular":
        star = igraph.Graph(n=len(order), edges=[(0, k) for k in range(1, len(order))])
        coords = np.array(star.layout_reingold_tilford_circular(root=[0]).coords)
    else:
        local = {global_id: k for k, global_id in enumerate(order)}
        edges = [(local[u], local[v]) for u, v in _links_among(graph, np.array(order)).tolist()]
        coords = np.array(igraph.Graph(n=len(order), edges=edges).layout_kamada_kawai().coords)
        coords -= coords[0]
    coords /= max(np.linalg.norm(coords, axis=1).max(), 1e-12)
    where = {global_id: coords[k] for k, global_id in enumerate(order)}
    return np.array([where[int(s)] for s in sources])


@styled
def draw_attention(
    inspection: Inspection,
    graph: Graph,
    node: int,
    layer: int = 0,
    heads: list[int] | None = None,
    layout: str = "circular",
) -> Figure:
    """The attention ``node`` gives each neighbour (and itself) in ``layer``: one panel per head in ``heads``
    (default: all heads of the layer), edge width proportional to the coefficient on the absolute scale of
    :func:`edge_width` (legend), nodes coloured by class. Titles give node, degree, layer, head, and each head's
    largest and smallest coefficient."""
    if layout not in NEIGHBOURHOOD_LAYOUTS:
        raise GATError(f"unknown layout {layout!r}: choose one of {', '.join(NEIGHBOURHOOD_LAYOUTS)}")
    neighbourhood = neighbourhood_attention(inspection, node, layer)
    num_heads = neighbourhood.attention.shape[1]
    owner = f"layer {neighbourhood.layer}"
    heads = list(range(num_heads)) if heads is None else [checked_index(h, num_heads, "head", owner) for h in heads]
    positions = neighbourhood_layout(graph, neighbourhood.sources, neighbourhood.node, layout)
    columns = min(4, len(heads))
    rows = math.ceil(len(heads) / columns)
    panel = 6.5 if len(heads) == 1 else 4.0
    figure = new_figure(panel * columns, panel * rows + 0.8)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, head in zip(axes, heads, strict=False):  # axes beyond the heads: hidden below
        _draw_head(ax, graph, neighbourhood, positions, head, layout)
    for ax in axes[len(heads) :]:
        ax.set_visible(False)

    degree = neighbourhood.degree
    notes = [f"edge width = {POINTS_PER_UNIT:g} pt × attention α (at least {MIN_WIDTH:g} pt), one scale in every "
             "attention figure", "loop 'self' = the node's attention to itself"]  # fmt: skip
    if degree > LABEL_ALL_UP_TO:
        notes[1] += f"  ·  ids: the {TOP_LABELLED} most attended neighbours per head"
    figure.suptitle(f"attention into node {neighbourhood.node}  ·  degree {degree}  ·  layer {neighbourhood.layer}")
    widths = [
        Line2D([], [], color=INK, alpha=edge_opacity(np.array([value]))[0], linewidth=edge_width(np.array([value]))[0],
               label=f"α = {value:.3g}" + (f" (uniform, 1/{degree + 1})" if index == len(LEGEND_ATTENTION) else ""))
        for index, value in enumerate((*LEGEND_ATTENTION, 1 / (degree + 1)))
    ]  # fmt: skip
    present = graph.y[neighbourhood.sources].tolist()
    handles = class_handles(present, graph.num_classes) + widths
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), max(4, 3 * columns)),
                  title="\n".join(notes))  # fmt: skip
    return figure


def edge_width(attention: np.ndarray) -> np.ndarray:
    """Line width in points of edges with these coefficients: :data:`POINTS_PER_UNIT` per unit of attention,
    at least :data:`MIN_WIDTH`. Absolute, not relative to the figure's largest: figures compare."""
    return np.maximum(POINTS_PER_UNIT * attention, MIN_WIDTH)


def edge_opacity(attention: np.ndarray) -> np.ndarray:
    """Opacity of edges with these coefficients: from 0.3 (attention 0) to 1 (attention >= FULL_OPACITY_AT)."""
    return 0.3 + 0.7 * np.minimum(attention / FULL_OPACITY_AT, 1.0)


def _draw_head(
    ax: Axes,
    graph: Graph,
    neighbourhood: Neighbourhood,
    positions: np.ndarray,
    head: int,
    layout: str,
) -> None:
    attention = neighbourhood.attention[:, head]
    centre = positions[neighbourhood.sources == neighbourhood.node][0]
    if layout == "kamada-kawai":
        # The links among the neighbours that placed them, faint: context, not attention.
        where = {int(source): positions[k] for k, source in enumerate(neighbourhood.sources)}
        others = neighbourhood.sources[neighbourhood.sources != neighbourhood.node]
        links = [(where[u], where[v]) for u, v in _links_among(graph, others).tolist()]
        ax.add_collection(LineCollection(links, colors=EDGE_GREY, linewidths=0.5, alpha=0.5, zorder=1))

    # One path per incoming edge, in the order of `sources`: a straight spoke, or a loop for the self-loop.
    loop_angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 48)
    loop = centre + LOOP_RADIUS * np.column_stack([np.cos(loop_angles), 1 + np.sin(loop_angles)])
    paths = [loop if source == neighbourhood.node else np.array([positions[k], centre])
             for k, source in enumerate(neighbourhood.sources)]  # fmt: skip
    colours = [to_rgba(INK, alpha) for alpha in edge_opacity(attention)]
    spokes = LineCollection(paths, linewidths=edge_width(attention), colors=colours, zorder=2)
    spokes.set_label("attention")
    ax.add_collection(spokes)

    palette = class_colours(graph.num_classes)
    labels = graph.y.cpu().numpy()
    is_centre = neighbourhood.sources == neighbourhood.node
    ax.scatter(*positions[~is_centre].T, s=46, c=[palette[labels[s]] for s in neighbourhood.sources[~is_centre]],
               edgecolors="white", linewidths=0.6, zorder=3)  # fmt: skip
    ax.scatter(*centre, s=260, c=palette[labels[neighbourhood.node]], edgecolors=INK, linewidths=1.8, zorder=4)
    ax.annotate(str(neighbourhood.node), centre, xytext=(0, -13), textcoords="offset points", ha="center",
                va="top", fontsize=9, zorder=5, path_effects=HALO)  # fmt: skip
    ax.annotate("self", centre + np.array([0, 2 * LOOP_RADIUS]), xytext=(0, 3), textcoords="offset points",
                ha="center", va="bottom", fontsize=8, zorder=5, path_effects=HALO)  # fmt: skip
    _label_neighbours(ax, neighbourhood, positions, attention)
    ax.set_title(f"head {head}  ·  max {attention.max():.3g}  ·  min {attention.min():.3g}", fontsize=10)
    bare(ax)
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25))


def _links_among(graph: Graph, nodes: np.ndarray) -> np.ndarray:
    """``[m, 2]`` the undirected edges of ``graph`` with both ends in ``nodes``."""
    edges = undirected_edges(graph)
    return edges[np.isin(edges, nodes).all(axis=1)]


def _label_neighbours(ax: Axes, neighbourhood: Neighbourhood, positions: np.ndarray, attention: np.ndarray) -> None:
    """Write the ids of all neighbours, or of the TOP_LABELLED most attended ones in a crowded neighbourhood."""
    others = np.flatnonzero(neighbourhood.sources != neighbourhood.node)
    if len(others) > LABEL_ALL_UP_TO:
        others = others[np.argsort(-attention[others], kind="stable")[:TOP_LABELLED]]
    for k in others:
        outward = positions[k] / max(np.linalg.norm(positions[k]), 1e-12)  # away from the centre, off the spokes
        ax.annotate(str(neighbourhood.sources[k]), positions[k], xytext=10 * outward, textcoords="offset points",
                    fontsize=7, ha="center", va="center", zorder=5, path_effects=HALO)  # fmt: skip
