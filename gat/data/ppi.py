"""PPI: protein–protein interaction graphs for inductive, multi-label node classification.

The GAT paper's inductive benchmark (Zitnik & Leskovec 2017, as preprocessed by GraphSAGE): 24 graphs, one per
human tissue — 20 to train on, 2 to pick the model with, 2 never seen in training to test on — with 50 features
and 121 binary labels (gene-ontology sets) per node. The archive is ``ppi.zip`` from ``PPI_URL``, the file DGL's
``PPIDataset`` and PyG's ``PPI`` download; for each split (``train``, ``valid``, ``test``) it holds

* ``<split>_graph.json``: networkx node-link JSON of all the split's graphs (``{"nodes": [{"id": ...}, ...],
  "links": [{"source": ..., "target": ...}, ...]}``), links undirected;
* ``<split>_feats.npy`` ``[N, 50]``, ``<split>_labels.npy`` ``[N, 121]`` (0/1), ``<split>_graph_id.npy`` ``[N]``
  (which graph each node belongs to).

`load_ppi` fetches it with `gat.data.download.ensure_files` (same mirror rules as Planetoid: ``mirror=`` /
``$GAT_DATA_MIRROR`` / ``--data-mirror``, a folder or URL holding ``ppi.zip``). **No SHA-256 of ppi.zip is
published** (DGL and PyG do not pin one), so ``PPI_ZIP_SHA256`` is None: the download is accepted unverified with
a warning that prints its hash, to be pinned here once someone with internet access has recorded it.

Nothing is extracted: members are read straight from the archive, JSON with `json` and arrays with
``np.load(allow_pickle=False)``, so no file name in the archive can write anywhere and no pickle is ever loaded;
an archive with absolute or ``..`` member names is refused as tampered.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from gat.data.download import ensure_files
from gat.data.synthetic import undirected_edge_index
from gat.errors import GATError

PPI_URL = "https://data.dgl.ai/dataset/"
PPI_ZIP = "ppi.zip"
PPI_ZIP_SHA256: str | None = None  # not published anywhere we could find; see the module docstring
SPLITS = {"train": "train", "val": "valid", "test": "test"}  # our split name -> the archive's
MEMBERS = ("graph.json", "feats.npy", "labels.npy", "graph_id.npy")
MAX_MEMBER_BYTES = 1 << 30  # the real members are < 300 MB: anything claiming more is a zip bomb, not PPI


@dataclass
class ProteinGraph:
    """One graph, or a batch of ``num_graphs`` graphs as their disjoint union, with multi-label targets.

    ``x`` ``float32 [N, F]``, ``y`` ``float32 [N, L]`` of 0/1 (node ``i`` has label ``l`` iff ``y[i, l] == 1``),
    ``edge_index`` ``int64 [2, E]`` with the project's convention (both directions, no self-loops).
    ``num_classes`` is the number of labels ``L`` (the model's output size, as for a `gat.data.graph.Graph`).
    """

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    name: str = "ppi"
    num_graphs: int = 1

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    @property
    def num_classes(self) -> int:
        return self.y.shape[1]

    def to(self, device: torch.device | str) -> ProteinGraph:
        return replace(self, x=self.x.to(device), y=self.y.to(device), edge_index=self.edge_index.to(device))

    def __repr__(self) -> str:
        return (
            f"ProteinGraph(name={self.name!r}, num_graphs={self.num_graphs}, num_nodes={self.num_nodes}, "
            f"num_edges={self.num_edges}, num_features={self.num_features}, num_labels={self.num_classes})"
        )


def batch(graphs: Sequence[ProteinGraph]) -> ProteinGraph:
    """The disjoint union of ``graphs``: nodes stacked in order, each graph's edges shifted by the nodes before it.

    No edge joins two graphs, so a GAT layer on the union computes exactly what it computes on each graph alone.
    """
    offsets = np.cumsum([0] + [graph.num_nodes for graph in graphs[:-1]]).tolist()
    shifted = [graph.edge_index + offset for graph, offset in zip(graphs, offsets, strict=True)]
    return ProteinGraph(
        x=torch.cat([graph.x for graph in graphs]),
        y=torch.cat([graph.y for graph in graphs]),
        edge_index=torch.cat(shifted, dim=1),
        name=graphs[0].name,
        num_graphs=sum(graph.num_graphs for graph in graphs),
    )


def load_ppi(
    root: str | Path = "data",
    *,
    mirror: str | os.PathLike | None = None,
    seed: int = 0,
    normalize_features: bool = True,
) -> dict[str, list[ProteinGraph]]:
    """The PPI graphs by split: ``{"train": [20 graphs], "val": [2], "test": [2]}``.

    ``seed`` and ``normalize_features`` are unused (the registry's common loader signature): the splits are
    fixed and PPI's features are used as published.

    ``ppi.zip`` is fetched into ``root/ppi/raw/`` if missing (from ``mirror``, else ``$GAT_DATA_MIRROR``, else
    ``PPI_URL``). Raises `GATError` (one line) if it cannot be had, or if the archive or any member is malformed.
    """
    raw_dir = Path(root) / "ppi" / "raw"
    ensure_files("ppi", [(PPI_ZIP, PPI_ZIP_SHA256)], raw_dir, public_url=PPI_URL, mirror=mirror)
    path = raw_dir / PPI_ZIP
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive, path)
            splits = {split: _read_split(archive, members, name, path) for split, name in SPLITS.items()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise GATError(f"{path}: not a readable zip archive ({error}); delete it to download it again") from None
    sizes = {(graph.num_features, graph.num_classes) for graphs in splits.values() for graph in graphs}
    if len(sizes) != 1:
        raise GATError(f"{path}: the splits disagree on the number of features and labels: {sorted(sizes)}")
    return splits


def _members(archive: zipfile.ZipFile, path: Path) -> dict[str, str]:
    """``{file name: member name}`` of the files we need, wherever they sit in the archive (top level or a folder)."""
    found: dict[str, str] = {}
    for name in archive.namelist():
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise GATError(f"{path}: member {name!r} points outside the archive's folder; refusing a tampered archive")
        if parts and parts[-1] in found:
            raise GATError(f"{path}: holds {parts[-1]} twice ({found[parts[-1]]!r} and {name!r})")
        if parts and not name.endswith("/"):
            found[parts[-1]] = name
    needed = [f"{split}_{member}" for split in SPLITS.values() for member in MEMBERS]
    missing = [name for name in needed if name not in found]
    if missing:
        raise GATError(f"{path}: not the PPI archive: {', '.join(missing)} missing")
    return found


def _read(archive: zipfile.ZipFile, member: str, path: Path) -> bytes:
    if archive.getinfo(member).file_size > MAX_MEMBER_BYTES:
        raise GATError(f"{path}: {member} claims more than {MAX_MEMBER_BYTES >> 20} MiB uncompressed; refusing it")
    return archive.read(member)


def _array(archive: zipfile.ZipFile, member: str, path: Path, ndim: int) -> np.ndarray:
    """A numeric ``.npy`` member with ``ndim`` dimensions (object arrays need pickle and are refused)."""
    try:
        array = np.load(io.BytesIO(_read(archive, member, path)), allow_pickle=False)
    except ValueError as error:  # a bad header, a truncated body, or an object array asking for pickle
        raise GATError(f"{path}: {member} is not a numeric .npy array ({error})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf" or array.ndim != ndim:
        raise GATError(f"{path}: {member} must be a {ndim}-d numeric array, got {array.dtype} {array.shape}")
    return array


def _links(archive: zipfile.ZipFile, member: str, path: Path, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sources, targets)`` as node positions ``0..num_nodes-1`` from a node-link JSON member."""
    try:
        graph = json.loads(_read(archive, member, path))
        position = {node["id"]: index for index, node in enumerate(graph["nodes"])}
        links = graph["links"] if "links" in graph else graph["edges"]  # networkx >= 3.4 may write "edges"
        sources = np.fromiter((position[link["source"]] for link in links), dtype=np.int64, count=len(links))
        targets = np.fromiter((position[link["target"]] for link in links), dtype=np.int64, count=len(links))
    except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else f"{type(error).__name__}: {error}"
        raise GATError(f"{path}: {member} is not networkx node-link JSON ({reason})") from None
    if len(position) != num_nodes:
        raise GATError(f"{path}: {member} has {len(position)} distinct nodes but the arrays have {num_nodes} rows")
    return sources, targets


def _read_split(archive: zipfile.ZipFile, members: dict[str, str], split: str, path: Path) -> list[ProteinGraph]:
    features = _array(archive, members[f"{split}_feats.npy"], path, ndim=2)
    labels = _array(archive, members[f"{split}_labels.npy"], path, ndim=2)
    graph_id = _array(archive, members[f"{split}_graph_id.npy"], path, ndim=1)
    num_nodes = features.shape[0]
    if num_nodes == 0:
        raise GATError(f"{path}: the {split} split has no nodes (no graphs); the archive is not the PPI data")
    if labels.shape[0] != num_nodes or graph_id.shape[0] != num_nodes:
        raise GATError(
            f"{path}: {split} arrays disagree on the number of nodes: features {features.shape}, labels "
            f"{labels.shape}, graph ids {graph_id.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise GATError(f"{path}: {split}_labels.npy must hold only 0 and 1 (one column per label)")
    sources, targets = _links(archive, members[f"{split}_graph.json"], path, num_nodes)
    return [_subgraph(features, labels, sources, targets, graph_id == g) for g in np.unique(graph_id)]


def _subgraph(
    features: np.ndarray, labels: np.ndarray, sources: np.ndarray, targets: np.ndarray, in_graph: np.ndarray
) -> ProteinGraph:
    """The nodes where ``in_graph`` holds, renumbered from 0, with the links among them (a link between two
    graphs is dropped, as DGL's and PyG's loaders drop it)."""
    local = np.full(in_graph.shape[0], -1, dtype=np.int64)
    local[in_graph] = np.arange(int(in_graph.sum()))
    keep = (local[sources] >= 0) & (local[targets] >= 0)
    return ProteinGraph(
        x=torch.from_numpy(features[in_graph].astype(np.float32)),
        y=torch.from_numpy(labels[in_graph].astype(np.float32)),
        edge_index=undirected_edge_index(local[sources[keep]], local[targets[keep]], int(in_graph.sum())),
    )
