"""Attention neighbourhoods: whom a node listens to, drawn from a trained model's attention coefficients.

The node sits in the centre, its neighbours around it; each edge into the node (its self-loop included, drawn as
a loop) has a width and an opacity proportional to the attention the layer gives it. One panel per head.
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

MAX_WIDTH = 8.0  # points: no coefficient gets a wider line
LABEL_ALL_UP_TO = 30  # neighbours; beyond, only the most attended ones get their id written
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
    (default: all heads of the layer), edge width and opacity proportional to the coefficient, nodes coloured by
    class. Titles give node, degree, layer, head, and each head's largest and smallest coefficient."""
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
    strongest = neighbourhood.attention[:, heads].max()
    width_per_unit = line_width_scale(strongest, neighbourhood.degree)  # one scale for all panels: heads compare
    for ax, head in zip(axes, heads, strict=False):  # axes beyond the heads: hidden below
        _draw_head(ax, graph, neighbourhood, positions, head, width_per_unit, strongest, layout)
    for ax in axes[len(heads) :]:
        ax.set_visible(False)

    degree = neighbourhood.degree
    figure.suptitle(f"attention into node {neighbourhood.node}  ·  degree {degree}  ·  layer {neighbourhood.layer}")
    widths = [
        Line2D([], [], color=INK, alpha=value / strongest, linewidth=width_per_unit * value,
               label=f"α = {value:.3g} ({name})")
        for value, name in ((strongest, "largest"), (1 / (degree + 1), f"uniform, 1/{degree + 1}"))
    ]  # fmt: skip
    present = graph.y[neighbourhood.sources].tolist()
    handles = class_handles(present, graph.num_classes) + widths
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4 * columns))
    return figure


def line_width_scale(strongest: float, degree: int) -> float:
    """Points of line width per unit of attention.

    Uniform attention gets lines from 3 pt (a few neighbours) down to 0.5 pt (a hub: its lines must not merge
    into a blot); a peaked head gets proportionally wider lines, capped so its largest is at most ``MAX_WIDTH``.
    """
    uniform_width = float(np.clip(24 / (degree + 1), 0.5, 3.0))
    return min(MAX_WIDTH / strongest, uniform_width * (degree + 1))


def _draw_head(
    ax: Axes,
    graph: Graph,
    neighbourhood: Neighbourhood,
    positions: np.ndarray,
    head: int,
    width_per_unit: float,
    strongest: float,
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
    colours = [to_rgba(INK, alpha) for alpha in attention / strongest]
    spokes = LineCollection(paths, linewidths=width_per_unit * attention, colors=colours, zorder=2)
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
    _label_neighbours(ax, neighbourhood, positions, attention)
    ax.set_title(f"head {head}  ·  max {attention.max():.3g}  ·  min {attention.min():.3g}", fontsize=10)
    bare(ax)
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25))


def _links_among(graph: Graph, nodes: np.ndarray) -> np.ndarray:
    """``[m, 2]`` the undirected edges of ``graph`` with both ends in ``nodes``."""
    edges = undirected_edges(graph)
    return edges[np.isin(edges, nodes).all(axis=1)]


def _label_neighbours(ax: Axes, neighbourhood: Neighbourhood, positions: np.ndarray, attention: np.ndarray) -> None:
    """Write the ids of all neighbours, or of the five most attended ones in a crowded neighbourhood."""
    others = np.flatnonzero(neighbourhood.sources != neighbourhood.node)
    if len(others) > LABEL_ALL_UP_TO:
        others = others[np.argsort(-attention[others], kind="stable")[:5]]
    for k in others:
        outward = positions[k] / max(np.linalg.norm(positions[k]), 1e-12)  # away from the centre, off the spokes
        ax.annotate(str(neighbourhood.sources[k]), positions[k], xytext=10 * outward, textcoords="offset points",
                    fontsize=7, ha="center", va="center", zorder=5, path_effects=HALO)  # fmt: skip
