"""Graphs for asking when attention matters: a stochastic block model with Gaussian features, and a graph where
each node has a few informative neighbours among many noisy ones.

Both share the class-dependent Gaussian features: each of the ``C`` classes owns a block of ``F // C`` features,
and a node of class ``c`` has features

    x_i = 1[feature in block c] + noise * eps_i,        eps_i ~ N(0, I_F)

so a node's own features tell its class with an accuracy set by ``noise``, and averaging ``k`` same-class
neighbours divides the noise by ``sqrt(k)``. Labels are balanced (``num_nodes`` split evenly over the classes, in
random order) and the split is `gat.data.synthetic.split_masks`'s: 20 training nodes per class (fewer on tiny
graphs), up to 500 validation and 1000 test nodes.

* `make_sbm`: a stochastic block model with a target **edge homophily** ``h``, the fraction of edges joining two
  nodes of one class (`gat.data.synthetic.homophilous_edges`). ``h = 1 / C`` is a random graph; below it the graph
  is heterophilous (neighbours are mostly of other classes), above it homophilous.
* `make_noisy_neighbours`: a fraction ``clean_fraction`` of the nodes are *clean* (features as above), the rest
  *noisy*: their features are pure noise, ``noise_scale * eps_i``, with no class in them. Every node is joined to
  ``informative`` random clean nodes of its own class and ``noisy`` random noisy nodes of any class (edges are
  undirected, so clean nodes also collect many noisy neighbours: degrees mix). An average over a neighbourhood is
  then mostly noise; attention that learns to trust clean-looking neighbours reads the class from them.

Everything is vectorised (no Python loop over nodes or edges) and seeded: the same arguments give the same graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gat.data.graph import Graph
from gat.data.synthetic import homophilous_edges, split_masks, undirected_edge_index
from gat.errors import GATError


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise GATError(message)


def _check_common(num_nodes: int, num_classes: int, num_features: int, noise: float) -> None:
    _check(num_classes >= 2, f"num_classes must be at least 2, got {num_classes}")
    _check(num_nodes >= 4 * num_classes, f"num_nodes must be at least 4 per class ({4 * num_classes}), got {num_nodes}")
    _check(num_features >= num_classes, f"num_features must be at least num_classes={num_classes}, got {num_features}")
    _check(noise >= 0, f"noise must be >= 0, got {noise}")


def balanced_labels(rng: np.random.Generator, num_nodes: int, num_classes: int) -> np.ndarray:
    """``int64 [N]``: ``num_nodes`` nodes spread evenly over the classes (sizes differ by at most one), shuffled."""
    return rng.permutation(np.arange(num_nodes) % num_classes).astype(np.int64)


def class_features(
    rng: np.random.Generator, y: np.ndarray, num_classes: int, num_features: int, noise: float
) -> np.ndarray:
    """``float32 [N, F]``: the indicator of the node's class block (``F // C`` features per class) plus
    ``noise`` times standard Gaussian noise."""
    block = num_features // num_classes
    means = np.zeros((num_classes, num_features), dtype=np.float32)
    means[np.repeat(np.arange(num_classes), block), np.arange(num_classes * block)] = 1.0
    return means[y] + noise * rng.standard_normal((y.shape[0], num_features), dtype=np.float32)


def _graph(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, edge_index: torch.Tensor, num_classes: int,
           name: str) -> Graph:  # fmt: skip
    train, val, test = split_masks(rng, y, num_classes)
    return Graph(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        edge_index=edge_index,
        train_mask=torch.from_numpy(train),
        val_mask=torch.from_numpy(val),
        test_mask=torch.from_numpy(test),
        num_classes=num_classes,
        name=name,
    )


def make_sbm(
    num_nodes: int = 1000,
    num_classes: int = 5,
    average_degree: float = 10.0,
    homophily: float = 0.5,
    num_features: int = 50,
    noise: float = 1.5,
    seed: int = 0,
) -> Graph:
    """A stochastic block model with edge homophily ``homophily`` and Gaussian class features (module docstring).

    ``round(num_nodes * average_degree / 2)`` distinct undirected edges, each within a class with probability
    ``homophily``, so the measured edge homophily is ``homophily`` up to sampling noise of order
    ``sqrt(h (1 - h) / edges)``."""
    _check_common(num_nodes, num_classes, num_features, noise)
    _check(0.0 <= homophily <= 1.0, f"homophily must be in [0, 1], got {homophily}")
    max_degree = num_nodes / (2 * num_classes)  # at most half the in-class pairs: edge sampling stays quick
    _check(0 < average_degree <= max_degree, f"average_degree must be in (0, {max_degree:g}], got {average_degree}")
    rng = np.random.default_rng(seed)
    y = balanced_labels(rng, num_nodes, num_classes)
    edge_index = homophilous_edges(rng, y, round(num_nodes * average_degree / 2), homophily)
    x = class_features(rng, y, num_classes, num_features, noise)
    return _graph(rng, x, y, edge_index, num_classes, "sbm")


def make_noisy_neighbours(
    num_nodes: int = 1000,
    num_classes: int = 5,
    informative: int = 3,
    noisy: int = 12,
    clean_fraction: float = 0.3,
    num_features: int = 50,
    noise: float = 1.0,
    noise_scale: float = 1.0,
    seed: int = 0,
) -> Graph:
    """Each node joined to ``informative`` clean same-class nodes and ``noisy`` noisy nodes (module docstring).

    Clean nodes (``clean_fraction`` of each class) have class features with ``noise``; noisy nodes have
    ``noise_scale`` times Gaussian noise and no class signal. Duplicate picks collapse, so a node has at most
    ``informative + noisy`` edges of its own plus those that other nodes drew to it."""
    _check_common(num_nodes, num_classes, num_features, noise)
    _check(0.0 < clean_fraction < 1.0, f"clean_fraction must be in (0, 1), got {clean_fraction}")
    _check(informative >= 1 and noisy >= 0, f"need informative >= 1 and noisy >= 0, got {informative}, {noisy}")
    _check(noise_scale >= 0, f"noise_scale must be >= 0, got {noise_scale}")
    rng = np.random.default_rng(seed)
    y = balanced_labels(rng, num_nodes, num_classes)
    clean = rng.random(num_nodes) < clean_fraction
    clean[np.unique(y, return_index=True)[1]] = True  # every class has a clean node to link to
    source = np.concatenate(
        [_draw(rng, y, clean, np.repeat(np.arange(num_nodes), informative), same_class=True),
         _draw(rng, y, ~clean, np.repeat(np.arange(num_nodes), noisy), same_class=False)]
    )  # fmt: skip
    target = np.concatenate([np.repeat(np.arange(num_nodes), informative), np.repeat(np.arange(num_nodes), noisy)])
    x = class_features(rng, y, num_classes, num_features, noise)
    x[~clean] = noise_scale * rng.standard_normal((int((~clean).sum()), num_features), dtype=np.float32)
    return _graph(rng, x, y, undirected_edge_index(source, target, num_nodes), num_classes, "noisy-neighbours")


def _draw(rng: np.random.Generator, y: np.ndarray, pool: np.ndarray, nodes: np.ndarray, same_class: bool) -> np.ndarray:
    """One uniform node of ``pool`` (a bool mask) per entry of ``nodes``: of the entry's class if ``same_class``,
    else of any class."""
    if not same_class:
        members = np.flatnonzero(pool)
        return members[rng.integers(0, members.shape[0], nodes.shape[0])]
    order = np.flatnonzero(pool)[np.argsort(y[pool], kind="stable")]  # pool's nodes grouped by class
    sizes = np.bincount(y[pool], minlength=int(y.max()) + 1)
    starts = np.cumsum(sizes) - sizes
    classes = y[nodes]
    return order[starts[classes] + (rng.random(nodes.shape[0]) * sizes[classes]).astype(np.int64)]


def edge_homophily(edge_index: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of edges ``[2, E]`` whose two ends share a class (each undirected edge counts twice alike)."""
    return (labels[edge_index[0]] == labels[edge_index[1]]).double().mean().item()


def load_sbm(root: str | Path = "data", *, mirror: str | None = None, seed: int = 0, normalize_features: bool = True,
             **options) -> Graph:  # fmt: skip
    """The registry's loader of `make_sbm`: generated in memory from ``seed``; ``root``, ``mirror`` and
    ``normalize_features`` are unused (Gaussian features are not counts to normalise)."""
    return make_sbm(seed=seed, **options)


def load_noisy_neighbours(root: str | Path = "data", *, mirror: str | None = None, seed: int = 0,
                          normalize_features: bool = True, **options) -> Graph:  # fmt: skip
    """The registry's loader of `make_noisy_neighbours` (see `load_sbm`)."""
    return make_noisy_neighbours(seed=seed, **options)
