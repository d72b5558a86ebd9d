"""Planetoid loading: the published numbers, a literal re-run of the GCN reference loader, and the cache."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import gat.data.planetoid
from gat.data.graph import Graph
from gat.data.registry import load_dataset
from gat.data.safe_pickle import safe_load
from gat.errors import GATError


def _assert_same_graph(a: Graph, b: Graph) -> None:
    assert torch.equal(a.dense_x(), b.dense_x())
    for field in ("y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert (a.num_classes, a.name) == (b.num_classes, b.name)


def _kipf_load_data(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray, sp.spmatrix]:
    """GCN's utils.load_data (github.com/tkipf/gcn), line for line, except that it uses our safe unpickler."""
    objects = (safe_load(folder / f"ind.{name}.{suffix}") for suffix in "x y tx ty allx ally graph".split())
    x, y, tx, ty, allx, ally, graph = objects
    test_idx_reorder = [int(line) for line in open(folder / f"ind.{name}.test.index")]
    test_idx_range = np.sort(test_idx_reorder)
    if name == "citeseer":
        test_idx_range_full = range(min(test_idx_reorder), max(test_idx_reorder) + 1)
        tx_extended = sp.lil_matrix((len(test_idx_range_full), x.shape[1]))
        tx_extended[test_idx_range - min(test_idx_range), :] = tx
        tx = tx_extended
        ty_extended = np.zeros((len(test_idx_range_full), y.shape[1]))
        ty_extended[test_idx_range - min(test_idx_range), :] = ty
        ty = ty_extended
    features = sp.vstack((allx, tx)).tolil()
    features[test_idx_reorder, :] = features[test_idx_range, :]
    adj = nx.adjacency_matrix(nx.from_dict_of_lists(graph))
    labels = np.vstack((ally, ty))
    labels[test_idx_reorder, :] = labels[test_idx_range, :]
    return features.toarray(), labels, adj


@pytest.fixture
def cora_root(planetoid_folder: Path, tmp_path: Path) -> Path:
    """A fresh data root with Cora loaded once (raw files and cache in place)."""
    load_dataset("cora", tmp_path, mirror=planetoid_folder)
    return tmp_path


@pytest.fixture
def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call of parse_planetoid, i.e. every cache rebuild."""
    calls: list[str] = []
    original = gat.data.planetoid.parse_planetoid
    monkeypatch.setattr(
        gat.data.planetoid, "parse_planetoid", lambda name, raw: calls.append(name) or original(name, raw)
    )
    return calls


def test_cora_published_numbers(cora: Graph) -> None:
    assert (cora.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert cora.num_edges == 10556  # 5278 undirected edges
    assert [int(m.sum()) for m in (cora.train_mask, cora.val_mask, cora.test_mask)] == [140, 500, 1000]
    assert torch.equal(cora.train_mask.nonzero().squeeze(1), torch.arange(140))
    assert torch.bincount(cora.y[cora.train_mask]).tolist() == [20] * 7  # the first 20 of each class
    assert torch.equal(cora.val_mask.nonzero().squeeze(1), torch.arange(140, 640))
    assert torch.equal(cora.test_mask.nonzero().squeeze(1), torch.arange(1708, 2708))
    assert torch.bincount(cora.y).tolist() == [351, 217, 418, 818, 426, 298, 180]


def test_citeseer_published_numbers(citeseer: Graph, planetoid_folder: Path) -> None:
    assert (citeseer.num_nodes, citeseer.num_features, citeseer.num_classes) == (3327, 3703, 6)
    assert citeseer.num_edges == 9104
    assert [int(m.sum()) for m in (citeseer.train_mask, citeseer.val_mask, citeseer.test_mask)] == [120, 500, 1000]
    assert torch.bincount(citeseer.y[citeseer.train_mask]).tolist() == [20] * 6
    # The 15 ids missing from test.index: padded nodes with no features, label 0 and no split.
    test_ids = np.loadtxt(planetoid_folder / "ind.citeseer.test.index", dtype=np.int64)
    padded = torch.from_numpy(np.setdiff1d(np.arange(test_ids.min(), test_ids.max() + 1), test_ids))
    assert len(padded) == 15
    assert (citeseer.dense_x()[padded].sum(dim=1) == 0).all() and (citeseer.y[padded] == 0).all()
    assert not (citeseer.train_mask | citeseer.val_mask | citeseer.test_mask)[padded].any()


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_graph_conventions(name: str, request: pytest.FixtureRequest) -> None:
    graph: Graph = request.getfixturevalue(name)
    assert graph.x.layout == torch.sparse_csr and graph.x.dtype == torch.float32
    assert graph.y.dtype == torch.int64 and graph.edge_index.dtype == torch.int64
    masks = torch.stack([graph.train_mask, graph.val_mask, graph.test_mask])
    assert masks.dtype == torch.bool and int(masks.sum(dim=0).max()) == 1  # disjoint
    src, dst = graph.edge_index
    assert not (src == dst).any()  # no self-loops
    key = dst * graph.num_nodes + src
    assert (key[1:] > key[:-1]).all()  # sorted by (target, source), hence no duplicates
    reverse = torch.sort(src * graph.num_nodes + dst).values
    assert torch.equal(reverse, key)  # symmetric: the reversed edges are the same set
    row_sums = graph.dense_x().sum(dim=1)
    assert torch.allclose(row_sums[row_sums > 0], torch.ones(1), atol=1e-5)
    assert int((row_sums == 0).sum()) == (15 if name == "citeseer" else 0)


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_matches_the_gcn_reference_loader(name: str, planetoid_folder: Path, tmp_path: Path) -> None:
    graph = load_dataset(name, tmp_path, mirror=planetoid_folder, normalize_features=False)
    features, labels, adj = _kipf_load_data(name, planetoid_folder)
    assert np.array_equal(graph.dense_x().numpy(), features)
    assert np.array_equal(graph.y.numpy(), labels.argmax(axis=1))
    adj = sp.coo_matrix(adj)
    off_diagonal = adj.row != adj.col
    expected = set(zip(adj.col[off_diagonal].tolist(), adj.row[off_diagonal].tolist(), strict=True))
    assert set(zip(*graph.edge_index.tolist(), strict=True)) == expected


def test_features_are_raw_counts_without_normalisation(cora: Graph, planetoid_folder: Path, tmp_path: Path) -> None:
    raw = load_dataset("cora", tmp_path, mirror=planetoid_folder, normalize_features=False)
    assert set(raw.x.values().tolist()) == {1.0}  # binary bag of words
    dense = raw.dense_x()
    assert torch.allclose(dense / dense.sum(dim=1, keepdim=True), cora.dense_x())


def test_second_load_comes_from_the_cache(cora_root: Path, cora: Graph, count_parses: list[str]) -> None:
    assert (cora_root / "cora" / "processed" / "cora.npz").is_file()
    _assert_same_graph(load_dataset("cora", cora_root), cora)  # no mirror needed: raw files are in place
    assert count_parses == []


def test_cache_holds_unnormalised_arrays_without_pickles(cora_root: Path) -> None:
    with np.load(cora_root / "cora" / "processed" / "cora.npz", allow_pickle=False) as cache:
        assert set(np.unique(cache["x_data"])) == {1.0}
        assert str(cache["fingerprint"]).startswith(f"v{gat.data.planetoid.CACHE_VERSION};ind.cora.allx=9419ba2f")


@pytest.mark.parametrize("damage", [b"", b"not a zip file", b"PK\x03\x04 truncated"])
def test_corrupt_cache_is_rebuilt(cora_root: Path, cora: Graph, count_parses: list[str], damage: bytes) -> None:
    cache = cora_root / "cora" / "processed" / "cora.npz"
    cache.write_bytes(damage)
    _assert_same_graph(load_dataset("cora", cora_root), cora)
    assert count_parses == ["cora"]
    load_dataset("cora", cora_root)  # and the rebuilt cache is good
    assert count_parses == ["cora"]


def _rewrite_cache(path: Path, **changes: np.ndarray) -> None:
    with np.load(path) as cache:
        arrays = {key: cache[key] for key in cache.files} | changes
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays)


@pytest.mark.parametrize(
    "changes",
    [
        {"fingerprint": np.array("v0;stale")},  # older format version or other raw files
        {"x_indices": np.zeros(1, dtype=np.int64)},  # readable but inconsistent CSR
        {"masks": np.zeros((2, 2708), dtype=bool)},
        {"masks": np.zeros((3, 5), dtype=bool)},
        {"y": np.zeros(5, dtype=np.int64)},
        {"y": np.full(2708, 7, dtype=np.int64)},  # a label beyond num_classes
        {"edge_index": np.array([[0], [2708]], dtype=np.int64)},
    ],
    ids=["stale-fingerprint", "bad-csr", "two-masks", "short-masks", "short-y", "bad-label", "bad-edge"],
)
def test_stale_or_inconsistent_cache_is_rebuilt(
    cora_root: Path, cora: Graph, count_parses: list[str], changes: dict
) -> None:
    _rewrite_cache(cora_root / "cora" / "processed" / "cora.npz", **changes)
    _assert_same_graph(load_dataset("cora", cora_root), cora)
    assert count_parses == ["cora"]


def test_format_version_bump_rebuilds(cora_root: Path, count_parses: list[str], monkeypatch) -> None:
    monkeypatch.setattr(gat.data.planetoid, "CACHE_VERSION", gat.data.planetoid.CACHE_VERSION + 1)
    load_dataset("cora", cora_root)
    assert count_parses == ["cora"]


def test_names_are_case_insensitive(cora_root: Path, cora: Graph) -> None:
    _assert_same_graph(load_dataset("Cora", cora_root), cora)


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(
        GATError,
        match=r"unknown dataset 'coraa' \(did you mean 'cora'\?\): choose one of cora, citeseer, pubmed, ppi, "
        "synthetic",
    ):
        load_dataset("coraa")


def test_synthetic_options_are_refused_for_planetoid(tmp_path: Path) -> None:
    with pytest.raises(GATError, match="num_nodes: not an option of the cora dataset"):
        load_dataset("cora", tmp_path, num_nodes=10)


def test_synthetic_goes_through_load_dataset() -> None:
    graph = load_dataset("synthetic", num_nodes=300, num_classes=3, seed=1, normalize_features=False)
    assert (graph.name, graph.num_nodes, graph.num_classes) == ("synthetic", 300, 3)
    assert set(graph.x.values().tolist()) == {1.0}


def test_pubmed_offline_error_names_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAT_DATA_MIRROR", raising=False)
    with pytest.raises(GATError, match=r"pubmed dataset: ind\.pubmed\.x, .*ind\.pubmed\.test\.index missing"):
        load_dataset("pubmed", tmp_path)
