"""What several test modules share: small random graphs, the dense N x N references of the attention layers, and
the repository's root. Test modules import from here, never from each other."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gat.nn.layers import GATLayer, GATv2Layer, MeanLayer

REPO = Path(__file__).resolve().parents[1]


def random_graph(num_nodes: int, num_edges: int, seed: int, isolated: int = 0) -> torch.Tensor:
    """Random directed edges among the first ``num_nodes - isolated`` nodes (the rest stay isolated)."""
    generator = torch.Generator().manual_seed(seed)
    connected = num_nodes - isolated
    edge_index = torch.randint(0, connected, (2, num_edges), generator=generator)
    edge_index = torch.unique(edge_index, dim=1)  # the reference adjacency cannot hold duplicates
    return edge_index[:, edge_index[0] != edge_index[1]]


def dense_reference(layer: GATLayer, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The GAT equations with an N x N mask: obviously right, O(N^2) memory. Returns (out, attention [H, N, N])."""
    num_nodes = x.shape[0]
    heads, out_features = layer.num_heads, layer.out_features
    adjacency = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    adjacency[edge_index[1], edge_index[0]] = True  # adjacency[i, j]: j -> i
    if layer.add_self_loops:
        adjacency.fill_diagonal_(True)
    h = (x @ layer.linear.weight.t()).view(num_nodes, heads, out_features)
    score_source = (h * layer.att_source).sum(-1)  # [N, H]
    score_target = (h * layer.att_target).sum(-1)
    scores = score_target.t()[:, :, None] + score_source.t()[:, None, :]  # [H, i, j]
    scores = F.leaky_relu(scores, layer.negative_slope)
    return dense_output(layer, scores, adjacency, h)


def gatv2_dense_reference(
    layer: GATv2Layer, x: torch.Tensor, edge_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """GATv2's equations on every (i, j) pair with an N x N mask. Returns (out, attention [H, N, N])."""
    num_nodes = x.shape[0]
    shape = (num_nodes, layer.num_heads, layer.out_features)
    adjacency = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    adjacency[edge_index[1], edge_index[0]] = True  # adjacency[i, j]: j -> i
    if layer.add_self_loops:
        adjacency.fill_diagonal_(True)
    source = (x @ layer.linear.weight.t()).view(shape)
    target = (x @ layer.linear_target.weight.t()).view(shape)
    pairs = target[:, None] + source[None, :]  # [i, j, H, F]: W_t h_i + W_s h_j for every pair
    scores = (F.leaky_relu(pairs, layer.negative_slope) * layer.att).sum(-1).permute(2, 0, 1)  # [H, i, j]
    return dense_output(layer, scores, adjacency, source)


def mean_dense_reference(
    layer: MeanLayer, x: torch.Tensor, edge_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant attention with an N x N mask: every score 0, so the softmax is the mean over each neighbourhood.
    Returns (out, attention [H, N, N])."""
    num_nodes = x.shape[0]
    adjacency = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    adjacency[edge_index[1], edge_index[0]] = True  # adjacency[i, j]: j -> i
    if layer.add_self_loops:
        adjacency.fill_diagonal_(True)
    h = (x @ layer.linear.weight.t()).view(num_nodes, layer.num_heads, layer.out_features)
    scores = torch.zeros(layer.num_heads, num_nodes, num_nodes, dtype=x.dtype)
    return dense_output(layer, scores, adjacency, h)


def dense_output(
    layer: torch.nn.Module, scores: torch.Tensor, adjacency: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax of ``scores`` ``[H, i, j]`` over each row's neighbours, the weighted sum of ``values``
    ``[N, H, F]``, heads concatenated or averaged, plus bias. Returns (out, attention [H, N, N])."""
    attention = torch.softmax(scores.masked_fill(~adjacency, float("-inf")), dim=-1).nan_to_num(0.0)  # no neighbour: 0
    out = torch.einsum("hij,jhf->ihf", attention, values)
    out = out.reshape(values.shape[0], -1) if layer.concat else out.mean(1)
    if layer.bias is not None:
        out = out + layer.bias
    return out, attention


def make_layer(
    in_features: int, out_features: int, heads: int, concat: bool, self_loops: bool = True, layer_class: type = GATLayer
) -> torch.nn.Module:
    """A float64 layer (``GATLayer`` or another with its arguments) with a random, non-zero bias."""
    layer = layer_class(in_features, out_features, num_heads=heads, concat=concat, add_self_loops=self_loops).double()
    with torch.no_grad():
        layer.bias.normal_()  # a zero bias would hide a misplaced bias
    return layer


# Every attention layer and its dense reference: the tests parametrized with it run for each.
DENSE_REFERENCES = {GATLayer: dense_reference, GATv2Layer: gatv2_dense_reference, MeanLayer: mean_dense_reference}
each_layer = pytest.mark.parametrize("layer_class", list(DENSE_REFERENCES), ids=lambda cls: cls.__name__)


def assert_matches_dense(
    layer: torch.nn.Module, reference, num_nodes: int, num_edges: int, isolated: int, device: str
) -> None:
    """``layer``'s output and attention on ``device``, on a random graph, equal those of ``reference(layer, x,
    edge_index)`` on the CPU to 1e-10."""
    x = torch.randn(num_nodes, layer.in_features, dtype=torch.float64)
    edge_index = random_graph(num_nodes, num_edges, seed=num_nodes, isolated=isolated)

    out, (used_edges, attention) = copy.deepcopy(layer).to(device)(
        x.to(device), edge_index.to(device), return_attention=True
    )
    out, used_edges, attention = out.cpu(), used_edges.cpu(), attention.cpu()
    expected, dense_attention = reference(layer, x, edge_index)

    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    # the edge-list attention is exactly the dense attention read at the used edges
    torch.testing.assert_close(attention, dense_attention[:, used_edges[1], used_edges[0]].t(), rtol=0, atol=1e-10)


# A four-node graph with hand-picked attention, small enough to work every analysis out by hand.
# Nodes 0, 1 are class 0; nodes 2, 3 class 1. Edges source -> target, sorted by target, self-loops included:
# into 0: 0, 1, 2 | into 1: 1, 0 | into 2: 2, 0, 3 | into 3: 3 (only its self-loop).
HAND_LABELS = torch.tensor([0, 0, 1, 1])
HAND_EDGE_INDEX = torch.tensor([[0, 1, 2, 1, 0, 2, 0, 3, 3], [0, 0, 0, 1, 1, 2, 2, 2, 3]])
# Two heads; each target's coefficients sum to 1.
HAND_ATTENTION = torch.tensor(
    [
        [0.5, 0.2], [0.3, 0.2], [0.2, 0.6],  # into 0
        [0.6, 0.6], [0.4, 0.4],  # into 1
        [0.2, 0.5], [0.2, 0.1], [0.6, 0.4],  # into 2
        [1.0, 1.0],  # into 3
    ],
    dtype=torch.float64,
)  # fmt: skip


def count_tsne_fits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Count every t-SNE made from now on: each goes through openTSNE's fit; returns the list of fitted shapes."""
    import openTSNE

    fitted = []
    fit = openTSNE.TSNE.fit

    def counted_fit(self, features):
        fitted.append(features.shape)
        return fit(self, features)

    monkeypatch.setattr(openTSNE.TSNE, "fit", counted_fit)
    return fitted


def without_map_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every :class:`~visualization.maps.MapWorker` fail (its process exits at once), so that the maps are made
    in the test's own process, where they can be counted or made to fail."""
    import sys

    from visualization.maps import MapWorker

    monkeypatch.setattr(MapWorker, "command", (sys.executable, "-c", "raise SystemExit(3)"))


def record_map_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record every map sent to a :class:`~visualization.maps.MapWorker` from now on (it still makes them); returns
    the list of ``(features, seed)`` jobs."""
    from visualization.maps import MapWorker

    requested, request = [], MapWorker.request

    def recorded(worker: MapWorker, jobs: list[tuple]) -> None:
        requested.extend(jobs)
        request(worker, jobs)

    monkeypatch.setattr(MapWorker, "request", recorded)
    return requested


def train_synthetic(root: Path) -> Path:
    """Train a GAT for 1 epoch on the default synthetic graph, everything under ``root``; returns its binary."""
    from gat.training.config import TrainConfig
    from gat.training.trainer import train

    folders = {name: str(root / name) for name in ("data_dir", "runs_dir", "models_dir")}
    config = TrainConfig(dataset="synthetic", epochs=1, device="cpu", tensorboard=False, quiet=True, **folders)
    return train(config).binary_path
