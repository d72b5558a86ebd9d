"""A stack of graph attention layers: the paper's node-classification GAT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gat.nn.kernels.ops import dropout
from gat.nn.kernels.projection import project
from gat.nn.layers import GATLayer, GATv2Layer, MeanLayer

# --layer: the attention each layer computes (GATv2 = dynamic attention, Brody et al. 2022; mean = constant
# attention, the baseline).
LAYERS = {"gat": GATLayer, "gatv2": GATv2Layer, "mean": MeanLayer}


@dataclass
class Inspection:
    """Everything one forward pass computed, for plots and analysis.

    ``hidden[l]`` is layer ``l``'s output (after ELU for hidden layers; ``hidden[-1]`` is the logits);
    ``attention[l]`` is ``[E', heads_l]`` aligned with ``edge_index`` (``[2, E']``, sorted by target, self-loops
    included, the same for every layer).
    """

    logits: torch.Tensor
    hidden: list[torch.Tensor]
    attention: list[torch.Tensor]
    edge_index: torch.Tensor


class GAT(nn.Module):
    r"""Graph Attention Network for node classification.

    ``num_layers`` :class:`~gat.nn.layers.GATLayer` s; hidden layers concatenate ``heads[l]`` heads of size
    ``hidden`` and are followed by ELU, the output layer averages ``heads[-1]`` heads of size
    ``num_classes``. Dropout ``dropout`` is applied to every layer's input, to every attention coefficient and
    to the projected features each layer aggregates, as in the paper's code. With ``skip_connection`` each layer adds
    its input (linearly projected by :math:`\mathbf{P}` when the sizes differ) to its output:
    :math:`\mathbf{h}^{(l+1)} = \mathrm{GAT}(\mathbf{h}^{(l)}) + \mathbf{P}\mathbf{h}^{(l)}`.

    Defaults are the paper's Cora model: 2 layers, 8 heads x 8 hidden, 1 output head, dropout 0.6.
    ``layer="gatv2"`` builds the same stack from :class:`~gat.nn.layers.GATv2Layer` s, ``layer="mean"`` from
    :class:`~gat.nn.layers.MeanLayer` s (constant attention: a mean over each neighbourhood).

    Shapes: ``x`` ``[N, in_features]`` (dense or sparse CSR), ``edge_index`` ``[2, E]``; returns logits
    ``[N, num_classes]``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 8,
        heads: Sequence[int] = (8, 1),
        num_layers: int = 2,
        dropout: float = 0.6,
        skip_connection: bool = False,
        negative_slope: float = 0.2,
        layer: str = "gat",
    ) -> None:
        super().__init__()
        if num_layers < 1 or len(heads) != num_layers:
            raise ValueError(f"heads needs one entry per layer: got {len(heads)} for {num_layers} layers")
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
        self.dropout = dropout
        self.layers = nn.ModuleList()
        self.skips = nn.ModuleList()
        size = in_features
        for index, num_heads in enumerate(heads):
            is_last = index == num_layers - 1
            out_features = num_classes if is_last else hidden
            attention_layer = LAYERS[layer](
                size,
                out_features,
                num_heads=num_heads,
                concat=not is_last,
                negative_slope=negative_slope,
                dropout=dropout,
            )
            output_size = out_features if is_last else num_heads * out_features
            self.layers.append(attention_layer)
            if skip_connection:
                same_size = size == output_size
                self.skips.append(nn.Identity() if same_size else nn.Linear(size, output_size, bias=False))
            size = output_size

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | Sequence[torch.Tensor],
        num_targets: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Logits ``[N, num_classes]``.

        ``edge_index`` is one ``[2, E]`` graph for every layer, or a list with one graph per layer over the same
        ``N`` nodes (a sampled mini-batch, see :mod:`gat.sampling.sampler`; layer 0 first). With such a list,
        ``num_targets[l]`` (if given) says that layer ``l`` computes only the first ``num_targets[l]`` nodes (those
        the next layer reads; the seeds for the last): the logits are then ``[num_targets[-1], num_classes]``.
        """
        return self._run(x, edge_index, num_targets, collect=False).logits

    def inspect(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | Sequence[torch.Tensor],
        num_targets: Sequence[int] | None = None,
    ) -> Inspection:
        """Run the model and keep every layer's output and attention (honours ``train()``/``eval()``).

        With one ``edge_index`` per layer, ``Inspection.edge_index`` is the last layer's."""
        return self._run(x, edge_index, num_targets, collect=True)

    def apply_layer(
        self,
        index: int,
        h: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Layer ``index`` exactly as the model applies it: input dropout, attention, skip connection, then ELU
        except after the last layer. Layer-wise inference (:mod:`gat.sampling.layerwise`) calls it one layer at a time.

        Returns ``h'`` (of the first ``num_targets`` nodes if given), or ``(h', (edge_index_used, attention))``
        with ``return_attention`` (as ``GATLayer``).
        """
        layer_input = dropout(h, self.dropout, self.training)
        out = self.layers[index](layer_input, edge_index, return_attention=return_attention, num_targets=num_targets)
        out, used = out if return_attention else (out, None)
        if self.skips:
            out = out + _skip(self.skips[index], layer_input)[: out.shape[0]]
        out = out if index == len(self.layers) - 1 else F.elu(out)
        return (out, used) if return_attention else out

    def _run(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | Sequence[torch.Tensor],
        num_targets: Sequence[int] | None,
        collect: bool,
    ) -> Inspection:
        per_layer = [edge_index] * len(self.layers) if isinstance(edge_index, torch.Tensor) else list(edge_index)
        if len(per_layer) != len(self.layers):
            raise ValueError(f"edge_index needs one graph per layer: got {len(per_layer)} for {len(self.layers)}")
        targets_per_layer = [None] * len(self.layers) if num_targets is None else list(num_targets)
        if len(targets_per_layer) != len(self.layers):
            raise ValueError(
                f"num_targets needs one count per layer: got {len(targets_per_layer)} for {len(self.layers)}"
            )
        hidden, attention = [], []
        used_edge_index = per_layer[-1]
        h = x
        for index, (layer_edge_index, layer_targets) in enumerate(zip(per_layer, targets_per_layer, strict=True)):
            if collect:
                h, (used_edge_index, layer_attention) = self.apply_layer(
                    index, h, layer_edge_index, True, layer_targets
                )
                attention.append(layer_attention)
                hidden.append(h)
            else:
                h = self.apply_layer(index, h, layer_edge_index, num_targets=layer_targets)
        return Inspection(logits=h, hidden=hidden, attention=attention, edge_index=used_edge_index)


def _skip(skip: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # A sparse first-layer input cannot go through nn.Linear; project it like the attention layer does.
    if isinstance(skip, nn.Linear):
        return project(x, skip.weight)
    return x.to_dense() if x.layout != torch.strided else x
