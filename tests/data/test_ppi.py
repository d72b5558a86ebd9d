"""PPI's inductive path on a generated archive with the real file layout: loader, batching, micro-F1, training.

The real ppi.zip is not available offline, so these tests write a small one (6 graphs of ~30 nodes, 50 features,
121 labels; 4/1/1 graphs in train/valid/test) into a temporary mirror folder and load it through `load_ppi`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from gat.data.ppi import PPI_ZIP, ProteinGraph, batch, load_ppi
from gat.errors import GATError
from gat.nn.model import GAT
from gat.training.inductive import micro_f1
from gat.training.presets import preset_config

NUM_FEATURES, NUM_LABELS = 50, 121
GRAPHS = {"train": (1, 2, 3, 4), "valid": (5,), "test": (6,)}  # graph ids per split, numbered as in the real files
pytestmark = pytest.mark.filterwarnings("ignore:ppi.zip has no pinned SHA-256:UserWarning")


def ppi_members(seed: int = 0) -> dict[str, bytes]:
    """The archive's members: per split, node-link JSON of its graphs and the three arrays.

    Labels depend on a node's own features and its neighbours' (through a fixed random linear map), so a GAT can
    learn them; each graph has 25-35 nodes and random undirected links inside the graph only.
    """
    rng = np.random.default_rng(seed)
    labelling = rng.normal(size=(NUM_FEATURES, NUM_LABELS))
    members = {}
    for split, graph_ids in GRAPHS.items():
        features, labels, node_graph, links, first = [], [], [], [], 0
        for graph_id in graph_ids:
            size = int(rng.integers(25, 36))
            x = (rng.random((size, NUM_FEATURES)) < 0.3).astype(np.float32)
            pairs = rng.integers(0, size, (2, 3 * size))
            adjacency = np.eye(size)
            adjacency[pairs[0], pairs[1]] = adjacency[pairs[1], pairs[0]] = 1
            labels.append((adjacency @ x @ labelling > 0).astype(np.int64))
            features.append(x)
            node_graph.append(np.full(size, graph_id, dtype=np.int64))
            links += [{"source": int(s) + first, "target": int(t) + first} for s, t in pairs.T if s != t]
            first += size
        nodes = [{"id": index, "test": split == "test", "val": split == "valid"} for index in range(first)]
        graph = {"directed": False, "multigraph": False, "graph": {}, "nodes": nodes, "links": links}
        members[f"{split}_graph.json"] = json.dumps(graph).encode()
        for name, array in (("feats", features), ("labels", labels), ("graph_id", node_graph)):
            members[f"{split}_{name}.npy"] = npy_bytes(np.concatenate(array))
    return members


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)
    return buffer.getvalue()


def write_mirror(folder: Path, members: dict[str, bytes]) -> Path:
    """A mirror folder holding ``ppi.zip`` with ``members`` (in a ``ppi/`` folder, as an archive may have)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / PPI_ZIP, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name if name.startswith("../") else f"ppi/{name}", data)
    return folder


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mirror(tmp_path_factory.mktemp("ppi_mirror"), ppi_members())


def load_from(mirror: Path, root: Path) -> dict[str, list[ProteinGraph]]:
    return load_ppi(root, mirror=mirror)


def test_loader_reads_every_graph_with_the_projects_conventions(mirror, tmp_path):
    with pytest.warns(UserWarning, match="ppi.zip has no pinned SHA-256 checksum"):
        splits = load_from(mirror, tmp_path)
    assert {split: len(graphs) for split, graphs in splits.items()} == {"train": 4, "val": 1, "test": 1}
    members = ppi_members()
    features = np.load(io.BytesIO(members["train_feats.npy"]))
    labels = np.load(io.BytesIO(members["train_labels.npy"]))
    graph_id = np.load(io.BytesIO(members["train_graph_id.npy"]))
    for index, graph in enumerate(splits["train"]):
        in_graph = graph_id == index + 1
        torch.testing.assert_close(graph.x, torch.from_numpy(features[in_graph]))
        torch.testing.assert_close(graph.y, torch.from_numpy(labels[in_graph]).float())
        edges = graph.edge_index
        assert edges.min() >= 0 and edges.max() < graph.num_nodes and (edges[0] != edges[1]).all()
        pairs = set(map(tuple, edges.t().tolist()))
        assert all((t, s) in pairs for s, t in pairs) and len(pairs) == edges.shape[1]  # symmetric, no duplicates
    # every link of the JSON is there, renumbered within its graph
    links = json.loads(members["train_graph.json"])["links"]
    offsets = np.concatenate([[0], np.cumsum([g.num_nodes for g in splits["train"]])])
    union = batch(splits["train"]).edge_index
    union_pairs = set(map(tuple, union.t().tolist()))
    assert all((link["source"], link["target"]) in union_pairs for link in links) and offsets[-1] == len(graph_id)
    # the second load uses the file now in data/ppi/raw (no mirror needed)
    assert (tmp_path / "ppi" / "raw" / PPI_ZIP).is_file()
    assert len(load_ppi(tmp_path, mirror=tmp_path / "nowhere")["train"]) == 4


def test_batch_is_a_disjoint_union_the_model_sees_as_separate_graphs(mirror, tmp_path):
    graphs = load_from(mirror, tmp_path)["train"][:2]
    union = batch(graphs)
    assert union.num_nodes == sum(graph.num_nodes for graph in graphs)
    assert union.edge_index.shape[1] == sum(graph.edge_index.shape[1] for graph in graphs)
    torch.manual_seed(0)
    model = GAT(NUM_FEATURES, NUM_LABELS, hidden=4, heads=(2, 2, 3), num_layers=3, skip_connection=True).eval()
    separate = torch.cat([model(graph.x, graph.edge_index) for graph in graphs])
    torch.testing.assert_close(model(union.x, union.edge_index), separate, rtol=1e-5, atol=1e-6)


def test_micro_f1_matches_sklearn():
    generator = torch.Generator().manual_seed(0)
    for density in (0.05, 0.5):
        labels = (torch.rand(300, 121, generator=generator) < density).float()
        logits = torch.randn(300, 121, generator=generator) + 2 * (labels - 0.5)
        expected = f1_score(labels.numpy(), (logits > 0).numpy(), average="micro")
        assert micro_f1(logits, labels) == pytest.approx(expected, abs=1e-12)
    assert micro_f1(-torch.ones(4, 3), torch.zeros(4, 3)) == 0.0  # nothing to find and nothing predicted


def ppi_config(mirror: Path, root: Path, **overrides):
    """The paper's PPI preset, shrunk (16 features per head) so a few epochs take a second."""
    folders = {name: str(root / name) for name in ("data_dir", "runs_dir", "models_dir")}
    settings = {
        "hidden": 16,
        "epochs": 8,
        "tensorboard": False,
        "quiet": True,
        "device": "cpu",
        "data_mirror": str(mirror),
    }
    return preset_config("ppi", **{**settings, **folders, **overrides})


@pytest.mark.parametrize("layer", ["gat", "gatv2"])
def test_training_end_to_end(mirror, tmp_path, layer):
    from gat.training.inductive import batches, evaluate
    from gat.training.trainer import load_model, train

    result = train(ppi_config(mirror, tmp_path, layer=layer, lr=0.01))
    losses = [record["train_loss"] for record in result.history]
    assert result.epochs == 8 and losses[-1] < 0.8 * losses[0]
    assert set(result.metrics) == {
        f"{split}_{name}" for split in ("train", "val", "test") for name in ("loss", "micro_f1")
    }
    assert result.metrics["train_micro_f1"] > 0.6
    # the binary rebuilds the same model, which reproduces the reported test score
    model, data = load_model(result.binary_path)
    assert data["config"]["layer"] == layer and data["num_classes"] == NUM_LABELS
    test = batches(load_ppi(tmp_path / "data_dir")["test"])
    assert evaluate(model, test, "test")["test_micro_f1"] == pytest.approx(result.metrics["test_micro_f1"])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["history"]) == 8


def test_resumed_run_continues_exactly(mirror, tmp_path):
    from gat.training.trainer import train

    whole = train(ppi_config(mirror, tmp_path / "whole", epochs=4))
    first = train(ppi_config(mirror, tmp_path / "parts", epochs=2))
    resumed = train(
        ppi_config(mirror, tmp_path / "parts", epochs=4), resume=first.checkpoint_path, override=("epochs",)
    )
    assert resumed.run_id == first.run_id
    drop_timing = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert drop_timing(resumed.history) == drop_timing(whole.history)
    assert resumed.metrics == whole.metrics


def test_cli_trains_ppi(mirror, tmp_path, capsys):
    from gat.cli import main

    common = ["--dataset", "ppi", "--hidden", "8", "--data-mirror", str(mirror)]
    common += [f"--{name}={tmp_path / name}" for name in ("data-dir", "runs-dir", "models-dir")]
    assert main([*common, "--epochs", "2", "--console-log-freq", "1"]) == 0  # with TensorBoard logs
    out = capsys.readouterr().out
    assert "ppi    train/val/test graphs 4/1/1" in out and "GAT 4x8 -> 4x8 -> 6x121" in out
    assert "epoch     2 | train loss" in out and "test micro-F1" in out
    assert list((tmp_path / "runs-dir").glob("ppi_*/events.out.tfevents.*"))

    assert main([*common, "--epochs", "1", "--seeds", "2", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "seed 1: best epoch 1, val micro-F1" in out and "ppi test micro f1 over 2 seeds:" in out


def test_pytorch_gats_batch_size_sets_the_graphs_per_step(mirror, tmp_path, capsys):
    from gat.cli import main

    def adam_steps(batch_flags: list[str], folder: Path) -> int:
        common = ["--dataset", "PPI", "--hidden", "8", "--data-mirror", str(mirror), "--epochs", "2"]
        common += [f"--{name}={folder / name}" for name in ("data-dir", "runs-dir", "models-dir")]
        assert main([*common, "--no-tensorboard", *batch_flags]) == 0
        checkpoint = next((folder / "models-dir" / "checkpoints").glob("*.pt"))
        state = torch.load(checkpoint, weights_only=True)["optimizer"]["state"]
        return int(next(iter(state.values()))["step"])

    # 4 training graphs: the paper's 2 per step take 2 steps an epoch; pytorch-GAT's --batch_size 4 takes 1
    assert adam_steps([], tmp_path / "default") == 4
    assert "2 graphs per training batch" in capsys.readouterr().out
    assert adam_steps(["--batch_size", "4"], tmp_path / "four") == 2
    assert "4 graphs per training batch" in capsys.readouterr().out
    assert adam_steps(["--graphs-per-batch", "3"], tmp_path / "three") == 4  # a batch of 3, then the last graph


def double(array_bytes: bytes) -> bytes:
    return npy_bytes(2 * np.load(io.BytesIO(array_bytes)))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: {"train_graph.json": b'{"nodes": [{"id": 0}], "links": ['}, "train_graph.json is not networkx"),
        (lambda m: {"valid_graph.json": b'{"nodes": [], "links": []}'}, "valid_graph.json has 0 distinct nodes but"),
        (lambda m: {"test_labels.npy": npy_bytes(np.zeros((3, NUM_LABELS)))}, "test arrays disagree on the number"),
        (lambda m: {"test_feats.npy": npy_bytes(np.zeros(5))}, "test_feats.npy must be a 2-d numeric array"),
        (lambda m: {"train_labels.npy": double(m["train_labels.npy"])}, "must hold only 0 and 1"),
        (lambda m: {"train_feats.npy": npy_bytes(np.array([{"x": 1}]))}, "train_feats.npy is not a numeric .npy"),
        (lambda m: {"train_feats.npy": b"\x93NUMPY garbage"}, "train_feats.npy is not a numeric .npy"),
        (lambda m: {"../evil.txt": b"x"}, "points outside the archive's folder; refusing a tampered archive"),
    ],
    ids=[
        "corrupt-json",
        "json-nodes",
        "label-rows",
        "feature-shape",
        "labels-not-binary",
        "pickle",
        "npy",
        "traversal",
    ],
)
def test_bad_archives_are_one_line_errors(tmp_path, change, message):
    members = ppi_members()
    mirror = write_mirror(tmp_path / "mirror", {**members, **change(members)})
    with pytest.raises(GATError, match=message) as error:
        load_from(mirror, tmp_path / "data")
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("evil.txt"))


def test_a_missing_member_or_not_a_zip(tmp_path):
    members = ppi_members()
    del members["valid_labels.npy"]
    with pytest.raises(GATError, match="not the PPI archive: valid_labels.npy missing"):
        load_from(write_mirror(tmp_path / "m1", members), tmp_path / "d1")
    (tmp_path / "m2").mkdir()
    (tmp_path / "m2" / PPI_ZIP).write_bytes(b"not a zip")
    with pytest.raises(GATError, match="not a readable zip archive .*delete it to download it again"):
        load_from(tmp_path / "m2", tmp_path / "d2")


def test_offline_without_the_archive_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GAT_DATA_MIRROR", raising=False)
    with pytest.raises(GATError, match=r"cannot get the ppi dataset: ppi.zip missing from .*Fix: set GAT_DATA_MIRROR"):
        load_ppi(tmp_path)
