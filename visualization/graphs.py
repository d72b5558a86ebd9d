"""The project's :class:`~gat.data.graph.Graph` as graph libraries want it: undirected edge pairs, igraph, networkx."""

from __future__ import annotations

import igraph
import networkx as nx
import numpy as np

from gat.data.graph import Graph


def undirected_edges(graph: Graph) -> np.ndarray:
    """``[M, 2]`` each undirected edge once, as ``(smaller id, larger id)`` (self-loops dropped)."""
    pairs = np.sort(graph.edge_index.cpu().numpy().T, axis=1)
    return np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)


def to_igraph(graph: Graph) -> igraph.Graph:
    """An undirected igraph graph with the same node ids."""
    return igraph.Graph(n=graph.num_nodes, edges=undirected_edges(graph))


def to_networkx(graph: Graph) -> nx.Graph:
    """An undirected networkx graph with the same node ids (isolated nodes included)."""
    nx_graph = nx.Graph()
    nx_graph.add_nodes_from(range(graph.num_nodes))
    nx_graph.add_edges_from(undirected_edges(graph).tolist())
    return nx_graph
