"""Synthetic citation-like graphs: a stochastic block model with class-dependent sparse features.

Why: to study GAT where the answer is known (how much does attention help as homophily drops?), and to scale
far past Planetoid (a million nodes and ten million edges build in a few seconds).

The model, in three steps, each fully vectorised (no Python loop over nodes or edges):

* labels: ``num_nodes`` nodes split evenly over ``num_classes`` classes, in random order;
* edges: each undirected edge picks a uniform random endpoint u, then with probability ``homophily`` a
  uniform partner from u's class, else one from a uniformly chosen *other* class. Duplicates and self-loops
  are dropped and more edges drawn until exactly ``round(num_nodes * average_degree / 2)`` remain, so the
  measured edge homophily is close to ``homophily`` and the mean degree is ``average_degree``;
* features: like bag-of-words papers. Each class owns a disjoint block of ``num_features // num_classes``
  "topic" features; each node draws ``features_per_node`` words, each from its class's topic block with
  probability ``feature_signal`` else from the whole vocabulary (repeats collapse). Binary, then row-normalised.

Split (Planetoid's convention, scaled down for small graphs): in a seeded random order of the nodes, the first
``min(20, smallest_class // 4)`` nodes of each class train, the next ``min(500, num_nodes // 4)`` validate and
the next ``min(1000, num_nodes // 2)`` test. The default 2000-node graph gets Planetoid's 20 per class/500/1000.

The two helpers `undirected_edge_index` and `sparse_features` also build the Planetoid graphs, so both sources
follow one convention.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from gat.data.graph import Graph
from gat.errors import GATError


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for int arrays via sort + neighbour compare (faster than numpy 2.4's np.unique here)."""
    values = np.sort(values)
    keep = np.ones(values.shape[0], dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def undirected_edge_index(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> torch.Tensor:
    """``int64 [2, E]`` with both directions of every pair, no self-loops, no duplicates, sorted by
    (target, source): the project's edge convention."""
    sources = np.concatenate([src, dst]).astype(np.int64)
    targets = np.concatenate([dst, src]).astype(np.int64)
    not_loop = sources != targets
    key = sorted_unique(targets[not_loop] * num_nodes + sources[not_loop])  # sorting the key sorts by target
    return torch.from_numpy(np.stack([key % num_nodes, key // num_nodes]))


def sparse_features(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, num_features: int, normalize: bool
) -> torch.Tensor:
    """A float32 torch sparse CSR feature matrix; with ``normalize`` each row is divided by its sum (the
    GCN/GAT preprocessing; all-zero rows stay zero). Raises RuntimeError if the CSR arrays are inconsistent."""
    values = values.astype(np.float64)
    if normalize:
        rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
        sums = np.bincount(rows, weights=values, minlength=indptr.shape[0] - 1)
        values = values / sums[rows]  # a row that has entries has a positive sum (features are non-negative)
    with warnings.catch_warnings():  # torch warns that sparse CSR is beta on every construction
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr.astype(np.int64)),
            torch.from_numpy(indices.astype(np.int64)),
            torch.from_numpy(values.astype(np.float32)),
            size=(indptr.shape[0] - 1, num_features),
            check_invariants=True,  # O(nnz) and cheap; it turns a corrupt cache into an error, not garbage
        )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise GATError(f"make_synthetic: {message}")


def _sample_edge_keys(
    rng: np.random.Generator, y: np.ndarray, members: np.ndarray, count: int, homophily: float
) -> np.ndarray:
    """``count`` candidate undirected edges as sorted-pair keys ``lo * N + hi`` (self-loops removed)."""
    num_nodes, num_classes = y.shape[0], int(y.max()) + 1
    class_size = np.bincount(y, minlength=num_classes)
    class_start = np.cumsum(class_size) - class_size
    u = rng.integers(0, num_nodes, count)
    same = rng.random(count) < homophily
    other = (y[u] + rng.integers(1, num_classes, count)) % num_classes  # uniform over the *other* classes
    partner_class = np.where(same, y[u], other)
    v = members[class_start[partner_class] + (rng.random(count) * class_size[partner_class]).astype(np.int64)]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    return (lo * num_nodes + hi)[lo != hi]


def homophilous_edges(rng: np.random.Generator, y: np.ndarray, num_edges: int, homophily: float) -> torch.Tensor:
    """Exactly ``num_edges`` distinct undirected edges, each joining two nodes of one class with probability
    ``homophily`` (else nodes of two different classes), as the ``[2, 2 * num_edges]`` project edge list.

    Drawn in rounds of vectorised samples until duplicates and self-loops are made up for; the caller keeps
    ``num_edges`` well below the number of possible pairs, so a round or two suffice."""
    num_nodes = y.shape[0]
    members = np.argsort(y, kind="stable")  # node ids grouped by class
    keys = np.empty(0, dtype=np.int64)
    while keys.shape[0] < num_edges:  # top up what duplicates and self-loops removed
        deficit = num_edges - keys.shape[0]
        fresh = _sample_edge_keys(rng, y, members, deficit + deficit // 10 + 16, homophily)
        keys = sorted_unique(np.concatenate([keys, fresh]))
    keys = keys[rng.choice(keys.shape[0], num_edges, replace=False)]  # drop the surplus uniformly
    return undirected_edge_index(keys // num_nodes, keys % num_nodes, num_nodes)


def split_masks(rng: np.random.Generator, y: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """Train/val/test masks by the rule in the module docstring."""
    num_nodes = y.shape[0]
    order = rng.permutation(num_nodes)
    per_class = min(20, int(np.bincount(y, minlength=num_classes).min()) // 4)
    by_class = np.argsort(y[order], kind="stable")  # positions in `order`, grouped by class, order kept
    class_size = np.bincount(y, minlength=num_classes)
    rank = np.arange(num_nodes) - np.repeat(np.cumsum(class_size) - class_size, class_size)
    train = np.zeros(num_nodes, dtype=bool)
    train[order[by_class[rank < per_class]]] = True
    rest = order[~train[order]]
    num_val, num_test = min(500, num_nodes // 4), min(1000, num_nodes // 2)
    val, test = np.zeros(num_nodes, dtype=bool), np.zeros(num_nodes, dtype=bool)
    val[rest[:num_val]] = True
    test[rest[num_val : num_val + num_test]] = True
    return train, val, test


def make_synthetic(
    num_nodes: int = 2000,
    average_degree: float = 8.0,
    num_classes: int = 5,
    num_features: int = 500,
    homophily: float = 0.8,
    features_per_node: int = 20,
    seed: int = 0,
    *,
    feature_signal: float = 0.7,
    normalize_features: bool = True,
) -> Graph:
    """A random citation-like graph (see the module docstring); the same arguments give the same graph."""
    _check(num_classes >= 2, f"num_classes must be at least 2, got {num_classes}")
    _check(
        num_nodes >= 4 * num_classes,
        f"num_nodes={num_nodes} is too small: need at least 4 per class (4 * num_classes = {4 * num_classes})",
    )
    _check(0.0 <= homophily <= 1.0, f"homophily must be in [0, 1], got {homophily}")
    _check(0.0 <= feature_signal <= 1.0, f"feature_signal must be in [0, 1], got {feature_signal}")
    # At most half of a class's possible in-class pairs in use, so the graph stays sparse and the rejection
    # of duplicate edges below finishes in a few rounds.
    max_degree = num_nodes / (2 * num_classes)
    _check(
        0.0 <= average_degree <= max_degree,
        f"average_degree must be in [0, num_nodes / (2 * num_classes)] = [0, {max_degree:g}], got {average_degree}",
    )
    _check(
        num_features >= num_classes,
        f"num_features={num_features} must be at least num_classes={num_classes} (one topic feature per class)",
    )
    _check(
        1 <= features_per_node <= num_features,
        f"features_per_node must be in [1, num_features={num_features}], got {features_per_node}",
    )
    rng = np.random.default_rng(seed)

    y = rng.permutation(np.arange(num_nodes) % num_classes)
    edge_index = homophilous_edges(rng, y, round(num_nodes * average_degree / 2), homophily)

    topic_size = num_features // num_classes
    shape = (num_nodes, features_per_node)
    topic_word = y[:, None] * topic_size + rng.integers(0, topic_size, shape)
    any_word = rng.integers(0, num_features, shape)
    words = np.where(rng.random(shape) < feature_signal, topic_word, any_word)
    words.sort(axis=1)  # per-row sort is cheap; repeats become neighbours and are dropped next
    keep = np.ones(shape, dtype=bool)
    keep[:, 1:] = words[:, 1:] != words[:, :-1]
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    indices = words[keep]
    x = sparse_features(indptr, indices, np.ones(indices.shape[0]), num_features, normalize_features)

    train, val, test = split_masks(rng, y, num_classes)
    return Graph(
        x=x,
        y=torch.from_numpy(y.astype(np.int64)),
        edge_index=edge_index,
        train_mask=torch.from_numpy(train),
        val_mask=torch.from_numpy(val),
        test_mask=torch.from_numpy(test),
        num_classes=num_classes,
        name="synthetic",
    )


if __name__ == "__main__":  # python -m gat.data.synthetic [num_nodes] [average_degree]: time the generator
    import sys
    import time

    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    degree = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    start = time.perf_counter()
    graph = make_synthetic(nodes, degree)
    print(f"{graph} built in {time.perf_counter() - start:.2f} s")


def load_synthetic(
    root: str | Path = "data", *, mirror: str | None = None, seed: int = 0, normalize_features: bool = True, **options
) -> Graph:
    """The registry's loader: `make_synthetic` with ``seed`` and ``options``; generated in memory, never cached, so
    ``root`` and ``mirror`` are unused."""
    return make_synthetic(seed=seed, normalize_features=normalize_features, **options)
