"""The two models the benchmark compares `gat.GAT` with, built with the same architecture and weights.

* `DenseGAT`: the textbook GAT, as in the paper's TensorFlow code and pytorch-GAT's "implementation 1": an N x N
  score matrix per head, masked with the adjacency, softmax over each row, then a dense ``[N, N] @ [N, F]``
  product. Obviously right, O(N^2) time and memory.
* `PyGGAT`: two (or more) `torch_geometric.nn.GATConv` layers wired as PyG's own GAT example (dropout on the
  inputs and on the attention, ELU between layers). PyG is optional: `pyg_version()` is None without it.

Both take ``(x, edge_index)`` like `gat.GAT`, so the benchmark times all three through the same training step,
and `copy_weights` gives them the exact initial weights of a `gat.GAT`, so accuracy differences come from the
implementations (and their dropout draws), not from the initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gat.nn.model import GAT


def pyg_version() -> str | None:
    """The installed PyTorch Geometric version, or None when it cannot be imported."""
    try:
        import torch_geometric
    except ImportError:
        return None
    return torch_geometric.__version__


def layer_shapes(in_features: int, num_classes: int, hidden: int, heads: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(in_features, out_features, heads)`` per layer of the paper's stack (hidden layers concatenate)."""
    shapes, size = [], in_features
    for index, num_heads in enumerate(heads):
        out = num_classes if index == len(heads) - 1 else hidden
        shapes.append((size, out, num_heads))
        size = out * num_heads
    return shapes


class DenseGATLayer(nn.Module):
    """One GAT layer on a dense ``[N, N]`` adjacency mask. Parameter names match `gat.nn.layers.GATLayer`."""

    def __init__(self, in_features: int, out_features: int, num_heads: int, concat: bool, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.out_features, self.concat, self.dropout = num_heads, out_features, concat, dropout
        self.linear = nn.Linear(in_features, num_heads * out_features, bias=False)
        self.att_source = nn.Parameter(torch.zeros(1, num_heads, out_features))
        self.att_target = nn.Parameter(torch.zeros(1, num_heads, out_features))
        self.bias = nn.Parameter(torch.zeros(num_heads * out_features if concat else out_features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask[i, j]`` is 0 when ``j -> i`` is an edge or ``i == j``, else -inf (so exp gives 0 there)."""
        num_nodes = x.shape[0]
        h = self.linear(x).view(num_nodes, self.num_heads, self.out_features)
        score_source = (h * self.att_source).sum(-1)  # [N, H]
        score_target = (h * self.att_target).sum(-1)
        scores = score_target.t()[:, :, None] + score_source.t()[:, None, :]  # [H, N, N]: e_ij for target i
        attention = torch.softmax(F.leaky_relu(scores, 0.2) + mask, dim=-1)
        attention = F.dropout(attention, self.dropout, self.training)
        out = torch.bmm(attention, h.transpose(0, 1)).transpose(0, 1)  # [N, H, F]
        out = out.reshape(num_nodes, -1) if self.concat else out.mean(dim=1)
        return out + self.bias


class PaperStack(nn.Module):
    """The paper's stack of attention layers: dropout on every layer's input, ELU between layers; the hidden
    layers concatenate their heads, the output layer averages them. Subclasses make the layers."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 8, heads: Sequence[int] = (8, 1), dropout: float = 0.6
    ) -> None:
        super().__init__()
        self.dropout = dropout
        shapes = layer_shapes(in_features, num_classes, hidden, heads)
        self.layers = nn.ModuleList(self.make_layer(*shape, i < len(shapes) - 1) for i, shape in enumerate(shapes))

    def make_layer(self, in_features: int, out_features: int, num_heads: int, concat: bool) -> nn.Module:
        raise NotImplementedError

    def structure(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """What every layer receives besides its input: here the edge list itself."""
        return edge_index

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        structure = self.structure(x, edge_index)
        for index, layer in enumerate(self.layers):
            x = layer(F.dropout(x, self.dropout, self.training), structure)
            x = x if index == len(self.layers) - 1 else F.elu(x)
        return x


class DenseGAT(PaperStack):
    """The paper's model on dense features and a dense additive connectivity mask (built once from
    ``edge_index`` and cached, as pytorch-GAT precomputes its connectivity mask)."""

    _mask: tuple[torch.Tensor, torch.Tensor] | None = None

    def make_layer(self, in_features: int, out_features: int, num_heads: int, concat: bool) -> nn.Module:
        return DenseGATLayer(in_features, out_features, num_heads, concat, self.dropout)

    def structure(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``[N, N]``: 0 where ``j -> i`` is an edge or ``i == j``, -inf elsewhere; cached per ``edge_index``."""
        if self._mask is None or self._mask[0] is not edge_index or self._mask[1].dtype != x.dtype:
            mask = torch.full((x.shape[0], x.shape[0]), float("-inf"), dtype=x.dtype, device=x.device)
            mask[edge_index[1], edge_index[0]] = 0.0
            mask.fill_diagonal_(0.0)
            self._mask = (edge_index, mask)
        return self._mask[1]


class PyGGAT(PaperStack):
    """The paper's model from `torch_geometric.nn.GATConv`, as in PyG's GAT example (needs PyG: `pyg_version`)."""

    def make_layer(self, in_features: int, out_features: int, num_heads: int, concat: bool) -> nn.Module:
        from torch_geometric.nn import GATConv  # optional dependency: imported only when asked for

        return GATConv(in_features, out_features, heads=num_heads, concat=concat, dropout=self.dropout)


def copy_weights(source: GAT, target: DenseGAT | PyGGAT) -> None:
    """Give ``target`` exactly ``source``'s parameters (same architecture; ``source`` without skip connections)."""
    with torch.no_grad():
        for ours, theirs in zip(source.layers, target.layers, strict=True):
            if isinstance(target, DenseGAT):
                theirs.load_state_dict(ours.state_dict())
            else:
                theirs.lin.weight.copy_(ours.linear.weight)
                theirs.att_src.copy_(ours.att_source)
                theirs.att_dst.copy_(ours.att_target)
                theirs.bias.copy_(ours.bias)
