"""`load_planetoid`: Cora, CiteSeer and PubMed (Planetoid), as in the GCN and GAT papers.

Planetoid, from the raw files to a `Graph`:

1. `gat.data.download` makes sure the eight raw files are in ``root/<name>/raw/`` with their pinned SHA-256s;
2. they are parsed exactly as Kipf's GCN ``load_data`` (which the GAT paper reuses) - see `parse_planetoid`;
3. the parsed, *unnormalised* arrays are cached in ``root/<name>/processed/<name>.npz`` together with a format
   version and the raw files' hashes, so a change to either rebuilds the cache, and an unreadable cache is
   rebuilt rather than trusted; features are row-normalised on load (``normalize_features=False`` to keep them
   raw).

The public split is the papers' one: train = the ``len(y)`` labelled nodes (20 per class), val = the next 500,
test = the 1000 nodes of ``test.index``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from gat.data.download import ensure_planetoid
from gat.data.graph import Graph
from gat.data.safe_pickle import safe_load
from gat.data.synthetic import sparse_features, undirected_edge_index
from gat.errors import GATError
from gat.io import atomic_write
from gat.validate import Array, is_valid

CACHE_VERSION = 1  # bump when parse_planetoid or the cache layout changes: old caches are then rebuilt
NUM_VAL = 500


def parse_planetoid(name: str, raw_dir: str | Path) -> dict[str, np.ndarray]:
    """Read ``ind.<name>.*`` from ``raw_dir`` into unnormalised numpy arrays (the cache's contents).

    Kipf's recipe: features = vstack(allx, tx) and labels = vstack(ally, ty), then the test rows, stored in
    sorted order, are moved to the ids listed in ``test.index``. CiteSeer's test ids have gaps (isolated nodes
    with no features or label); like GCN and PyG we pad tx/ty with zero rows over the full id range, so those
    nodes exist with zero features and label 0 (argmax of a zero row) and belong to no split.
    """
    raw_dir = Path(raw_dir)
    x, y, tx, ty, allx, ally, adjacency = (
        safe_load(raw_dir / f"ind.{name}.{suffix}") for suffix in ("x", "y", "tx", "ty", "allx", "ally", "graph")
    )
    test_index = np.loadtxt(raw_dir / f"ind.{name}.test.index", dtype=np.int64, ndmin=1)
    test_sorted = np.sort(test_index)

    span = test_sorted[-1] - test_sorted[0] + 1
    if span != len(test_sorted):  # gaps in the test ids: pad (CiteSeer only, as it happens)
        offset = test_sorted - test_sorted[0]  # tx[k] belongs at sorted test id k, as in GCN's loader
        tx_full = sp.lil_matrix((span, tx.shape[1]), dtype=tx.dtype)
        tx_full[offset] = tx
        ty_full = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
        ty_full[offset] = ty
        tx, ty = tx_full, ty_full

    # Row `test_index[k]` takes the row stored at `test_sorted[k]`; every other row stays where it is.
    order = np.arange(allx.shape[0] + tx.shape[0])
    order[test_index] = test_sorted
    features = sp.vstack([allx, tx]).tocsr()[order]
    features.sort_indices()
    labels = np.vstack([ally, ty])[order]

    sources = np.fromiter((s for s, nbrs in adjacency.items() for _ in nbrs), dtype=np.int64)
    targets = np.fromiter((t for nbrs in adjacency.values() for t in nbrs), dtype=np.int64)
    num_nodes = features.shape[0]
    if sources.size and max(sources.max(), targets.max()) >= num_nodes:
        raise GATError(f"{name}: the adjacency in {raw_dir} names nodes beyond the {num_nodes} with features")

    masks = np.zeros((3, num_nodes), dtype=bool)
    masks[0, : y.shape[0]] = True
    masks[1, y.shape[0] : y.shape[0] + NUM_VAL] = True
    masks[2, test_sorted] = True
    return {
        "x_indptr": features.indptr.astype(np.int64),
        "x_indices": features.indices.astype(np.int64),
        "x_data": features.data.astype(np.float32),
        "x_shape": np.array(features.shape, dtype=np.int64),
        "y": labels.argmax(axis=1).astype(np.int64),
        "num_classes": np.array(labels.shape[1], dtype=np.int64),
        "edge_index": undirected_edge_index(sources, targets, num_nodes).numpy(),
        "masks": masks,
    }


def _graph_from_arrays(arrays: dict[str, np.ndarray], name: str, normalize_features: bool) -> Graph:
    num_features = int(arrays["x_shape"][1])
    x = sparse_features(arrays["x_indptr"], arrays["x_indices"], arrays["x_data"], num_features, normalize_features)
    train, val, test = (torch.from_numpy(mask) for mask in arrays["masks"])
    return Graph(
        x=x,
        y=torch.from_numpy(arrays["y"]),
        edge_index=torch.from_numpy(arrays["edge_index"]),
        train_mask=train,
        val_mask=val,
        test_mask=test,
        num_classes=int(arrays["num_classes"]),
        name=name,
    )


# What a cache must hold besides its fingerprint (gat.validate): float labels or 0/1 integer masks would index
# the wrong nodes without an error. The sizes are checked against each other by _consistent.
CACHE_SCHEMA = {
    "x_indptr": Array(("int64",), ndim=1),
    "x_indices": Array(("int64",), ndim=1),
    "x_data": Array(("float32",), ndim=1, finite=True),
    "x_shape": Array(("int64",), ndim=1),
    "y": Array(("int64",), ndim=1),
    "num_classes": Array(("int64",), ndim=0),
    "edge_index": Array(("int64",), ndim=2),
    "masks": Array(("bool",), ndim=2),
}


def _fingerprint(raw_hashes: dict[str, str]) -> str:
    """What the cache was built from: the format version and every raw file's SHA-256."""
    return f"v{CACHE_VERSION};" + ";".join(f"{file}={digest}" for file, digest in sorted(raw_hashes.items()))


def _consistent(graph: Graph) -> bool:
    """Cheap sanity check of a cached graph: a readable but wrong cache must be rebuilt, not used."""
    n, edges = graph.num_nodes, graph.edge_index
    return (
        graph.x.shape[0] == n
        and all(mask.shape == (n,) for mask in (graph.train_mask, graph.val_mask, graph.test_mask))
        and edges.shape[0] == 2
        and bool(((edges >= 0) & (edges < n)).all())
        and bool(((graph.y >= 0) & (graph.y < graph.num_classes)).all())
    )


def _read_cache(path: Path, fingerprint: str, name: str, normalize_features: bool) -> Graph | None:
    """The cached graph, or None if the cache is missing, stale or unusable (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as cache:
            arrays = {key: cache[key] for key in cache.files}
            if str(arrays.get("fingerprint")) != fingerprint or not is_valid(arrays, CACHE_SCHEMA):
                return None
            graph = _graph_from_arrays(arrays, name, normalize_features)
    except Exception:  # truncated, not a zip, missing keys, inconsistent CSR...: never trust it, rebuild
        return None
    return graph if _consistent(graph) else None


def _write_cache(path: Path, arrays: dict[str, Any], fingerprint: str) -> None:
    with atomic_write(path) as file:  # a crash mid-write never leaves a half cache to be read next time
        np.savez_compressed(file, fingerprint=np.array(fingerprint), **arrays)


def load_planetoid(
    name: str,
    root: str | Path = "data",
    *,
    mirror: str | os.PathLike | None = None,
    seed: int = 0,
    normalize_features: bool = True,
) -> Graph:
    """Load Planetoid dataset ``name`` (``cora``, ``citeseer`` or ``pubmed``) as a `Graph`.

    The raw files are fetched into ``root/<name>/raw/`` if missing (from ``mirror``, else ``$GAT_DATA_MIRROR``,
    else their public home; see `gat.data.download`) and the parsed graph is cached under
    ``root/<name>/processed/``. ``seed`` is unused: the public split is fixed.
    """
    folder = Path(root) / name
    fingerprint = _fingerprint(ensure_planetoid(name, folder / "raw", mirror=mirror))
    cache = folder / "processed" / f"{name}.npz"
    graph = _read_cache(cache, fingerprint, name, normalize_features)
    if graph is None:
        try:
            arrays = parse_planetoid(name, folder / "raw")
        except (ValueError, IndexError, TypeError, AttributeError) as error:  # files of the wrong shape (unpinned)
            raise GATError(
                f"{folder / 'raw'}: the {name} raw files are not Planetoid data ({type(error).__name__}: {error}); "
                "delete them to fetch them again"
            ) from None
        _write_cache(cache, arrays, fingerprint)
        graph = _graph_from_arrays(arrays, name, normalize_features)
    return graph
