r"""GAT and GATv2 layers in plain PyTorch: read these first.

:class:`ReferenceGATLayer` and :class:`ReferenceGATv2Layer` compute exactly what the fast
:class:`gat.nn.layers.GATLayer` and :class:`gat.nn.layers.GATv2Layer` compute, with the same parameters (names, shapes,
state-dict keys), the same edge conventions and the same returned attention, but written as the papers write them:
gather per edge, score, softmax over each neighbourhood, sum per node, with autograd doing every backward. They are
slow and memory-hungry (``[E, heads, features]`` tensors per edge) and exist to be read and to check the fast
layers against (``tests/nn/test_reference.py``: equal to 1e-10 in float64, forward and gradients).

Conventions shared with the fast layers:

* ``edge_index`` is ``int64 [2, E]``: row 0 the source :math:`j`, row 1 the target :math:`i`; a message flows
  :math:`j \to i`, and :math:`\mathcal{N}(i)` is the set of :math:`i`'s in-neighbours.
* ``add_self_loops``: existing self-loops are dropped and exactly one per target node is added, so every node
  attends to itself once (the paper's :math:`\mathcal{N}(i)` includes :math:`i`).
* The edges used are sorted by target, then source; the attention comes back as ``[E', heads]`` in that order,
  with that ``[2, E']`` edge list, before attention dropout.
* ``num_targets=T``: only the first ``T`` nodes are targets (every edge must point into one of them; only they get
  self-loops) and the output has ``T`` rows.
* A node with no incoming edge (only possible without self-loops) gets only the bias.

This module imports nothing but torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def edges_with_self_loops(
    edge_index: torch.Tensor, num_nodes: int, add_self_loops: bool, num_targets: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(source, target)`` edges a layer attends over: with ``add_self_loops``, the input's self-loops
    replaced by one loop per target node; sorted by target, then source."""
    source, target = edge_index[0], edge_index[1]
    if add_self_loops:
        keep = source != target
        loops = torch.arange(num_targets, device=edge_index.device)
        source, target = torch.cat([source[keep], loops]), torch.cat([target[keep], loops])
    order = torch.argsort(target * num_nodes + source)
    return source[order], target[order]


def neighbourhood_softmax(scores: torch.Tensor, target: torch.Tensor, num_targets: int) -> torch.Tensor:
    r""":math:`\alpha_{ij} = \exp(e_{ij}) / \sum_{l \in \mathcal{N}(i)} \exp(e_{il})` for every edge
    :math:`j \to i` and head: ``scores`` ``[E, H]`` -> attention ``[E, H]``, summing to 1 over each target's edges.

    Each neighbourhood's maximum :math:`m_i` is subtracted first, so no exponent exceeds 0 and nothing overflows;
    it cancels in the ratio, so it needs no gradient.
    """
    num_heads = scores.shape[1]
    maximum = scores.new_full((num_targets, num_heads), float("-inf"))
    maximum = maximum.scatter_reduce(0, target[:, None].expand_as(scores), scores, "amax", include_self=False)
    exponentials = (scores - maximum.detach()[target]).exp()
    denominators = scores.new_zeros(num_targets, num_heads).index_add(0, target, exponentials)
    return exponentials / denominators[target]


class _ReferenceLayer(nn.Module):
    """The arguments, the end of the forward (heads concatenated or averaged, bias) and :meth:`from_layer` that both
    reference layers share. The arguments are those of :class:`gat.nn.layers.GATLayer`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        bias: bool = True,
        add_self_loops: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.num_heads = num_heads
        self.concat = concat
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.add_self_loops = add_self_loops
        self.bias = nn.Parameter(torch.zeros(num_heads * out_features if concat else out_features)) if bias else None

    @classmethod
    def from_layer(cls, layer: nn.Module) -> _ReferenceLayer:
        """The reference twin of a fast layer: the same arguments, dtype, device, parameter values and
        training mode."""
        reference = cls(
            layer.in_features,
            layer.out_features,
            num_heads=layer.num_heads,
            concat=layer.concat,
            negative_slope=layer.negative_slope,
            dropout=layer.dropout,
            bias=layer.bias is not None,
            add_self_loops=layer.add_self_loops,
        )
        weight = layer.linear.weight
        reference.to(device=weight.device, dtype=weight.dtype).load_state_dict(layer.state_dict())
        return reference.train(layer.training)

    def _output(
        self,
        messages: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
        attention: torch.Tensor,
        num_targets: int,
        return_attention: bool,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Sum the per-edge ``messages`` (``[E, H, F]``) into their targets, concatenate or average the heads, add
        the bias, and attach ``(edge_index_used, attention)`` when asked."""
        aggregated = messages.new_zeros(num_targets, *messages.shape[1:]).index_add(0, target, messages)
        out = aggregated.reshape(num_targets, -1) if self.concat else aggregated.mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return (out, (torch.stack([source, target]), attention)) if return_attention else out

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, num_heads={self.num_heads}, concat={self.concat}, "
            f"dropout={self.dropout}, add_self_loops={self.add_self_loops}"
        )


class ReferenceGATLayer(_ReferenceLayer):
    r"""Multi-head graph attention (Veličković et al., "Graph Attention Networks", ICLR 2018), equation by equation.

    For each head :math:`k` of :math:`K`, with :math:`\mathbf{W}^k` ``[F', F]`` and :math:`\mathbf{a}^k` ``[2F']``:

    .. math::
        e^k_{ij} = \mathrm{LeakyReLU}\left(\mathbf{a}^{k\top} [\mathbf{W}^k \mathbf{h}_i \Vert
                   \mathbf{W}^k \mathbf{h}_j]\right), \qquad
        \alpha^k_{ij} = \frac{\exp(e^k_{ij})}{\sum_{l \in \mathcal{N}(i)} \exp(e^k_{il})}, \qquad
        \mathbf{h}'_i = \big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k \mathbf{h}_j

    (or :math:`\frac{1}{K}\sum_k` instead of :math:`\Vert_k` with ``concat=False``), plus ``bias``; dropout acts
    on :math:`\alpha` and on the aggregated :math:`\mathbf{W}^k \mathbf{h}_j` in training (as the paper's code).
    Parameters, as :class:`gat.nn.layers.GATLayer`:

    * ``linear.weight`` ``[K * F', F]``: the :math:`\mathbf{W}^k` stacked (``nn.Linear``, no bias);
    * ``att_target``, ``att_source`` ``[1, K, F']``: the halves of :math:`\mathbf{a}^k` that multiply
      :math:`\mathbf{W}^k\mathbf{h}_i` (the target) and :math:`\mathbf{W}^k\mathbf{h}_j` (the source);
    * ``bias`` ``[K * F']`` (concat) or ``[F']`` (mean).
    """

    def __init__(self, in_features: int, out_features: int, num_heads: int = 1, **kwargs) -> None:
        super().__init__(in_features, out_features, num_heads, **kwargs)
        self.linear = nn.Linear(in_features, num_heads * out_features, bias=False)
        self.att_source = nn.Parameter(torch.empty(1, num_heads, out_features))
        self.att_target = nn.Parameter(torch.empty(1, num_heads, out_features))
        for weight in (self.linear.weight, self.att_source, self.att_target):
            nn.init.xavier_uniform_(weight)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``[N, F]`` (dense, or sparse CSR: made dense) and ``edge_index`` ``[2, E]`` -> ``[T, K * F']``
        (concat) or ``[T, F']`` (mean), ``T = num_targets or N``; with ``return_attention``, also
        ``(edge_index_used [2, E'], attention [E', K])``."""
        num_nodes = x.shape[0]
        num_targets = num_nodes if num_targets is None else num_targets
        x = x.to_dense() if x.layout != torch.strided else x
        source, target = edges_with_self_loops(edge_index, num_nodes, self.add_self_loops, num_targets)

        # Project: W h for every node and head.                                          [N, K, F']
        h = (x @ self.linear.weight.t()).view(num_nodes, self.num_heads, self.out_features)

        # Score every edge j -> i: e_ij = LeakyReLU(a^T [W h_i || W h_j]).                [E', K]
        a = torch.cat([self.att_target, self.att_source], dim=-1)  # [1, K, 2F']
        pairs = torch.cat([h[target], h[source]], dim=-1)  # [E', K, 2F']
        scores = F.leaky_relu((pairs * a).sum(dim=-1), self.negative_slope)

        # Normalise over each neighbourhood: alpha_ij = softmax_j(e_ij).                  [E', K]
        attention = neighbourhood_softmax(scores, target, num_targets)

        # Aggregate: h'_i = sum_j dropout(alpha_ij) dropout(W h_j), heads concatenated or averaged.   [T, ...]
        dropped = F.dropout(attention, self.dropout, self.training)
        values = F.dropout(h, self.dropout, self.training)  # the scores above read W h undropped
        messages = dropped[:, :, None] * values[source]  # [E', K, F']
        return self._output(messages, source, target, attention, num_targets, return_attention)


class ReferenceGATv2Layer(_ReferenceLayer):
    r"""Multi-head dynamic graph attention (GATv2: Brody, Alon and Yahav, "How Attentive are Graph Attention
    Networks?", ICLR 2022), equation by equation.

    GATv2 moves the attention vector after the nonlinearity, so the ranking of neighbours can depend on the target.
    For each head :math:`k`, with :math:`\mathbf{W}^k = [\mathbf{W}^k_t \Vert \mathbf{W}^k_s]` ``[F', 2F]`` and
    :math:`\mathbf{a}^k` ``[F']``:

    .. math::
        e^k_{ij} = \mathbf{a}^{k\top} \mathrm{LeakyReLU}\left(\mathbf{W}^k [\mathbf{h}_i \Vert \mathbf{h}_j]\right)
                 = \mathbf{a}^{k\top} \mathrm{LeakyReLU}\left(\mathbf{W}^k_t \mathbf{h}_i
                   + \mathbf{W}^k_s \mathbf{h}_j\right), \qquad
        \alpha^k_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\, e^k_{ij}, \qquad
        \mathbf{h}'_i = \big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k_s \mathbf{h}_j

    (or the mean over heads with ``concat=False``), plus ``bias``; dropout acts on :math:`\alpha` and on the
    aggregated :math:`\mathbf{W}^k_s \mathbf{h}_j` in training.
    Parameters, as :class:`gat.nn.layers.GATv2Layer` (``torch_geometric``'s ``GATv2Conv(share_weights=False)``):

    * ``linear.weight`` ``[K * F', F]``: :math:`\mathbf{W}_s`, applied to the source, whose output is aggregated;
    * ``linear_target.weight`` ``[K * F', F]``: :math:`\mathbf{W}_t`, applied to the target;
    * ``att`` ``[1, K, F']``: :math:`\mathbf{a}`;
    * ``bias`` ``[K * F']`` (concat) or ``[F']`` (mean).
    """

    def __init__(self, in_features: int, out_features: int, num_heads: int = 1, **kwargs) -> None:
        super().__init__(in_features, out_features, num_heads, **kwargs)
        self.linear = nn.Linear(in_features, num_heads * out_features, bias=False)
        self.linear_target = nn.Linear(in_features, num_heads * out_features, bias=False)
        self.att = nn.Parameter(torch.empty(1, num_heads, out_features))
        for weight in (self.linear.weight, self.linear_target.weight, self.att):
            nn.init.xavier_uniform_(weight)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """As :meth:`ReferenceGATLayer.forward`."""
        num_nodes = x.shape[0]
        num_targets = num_nodes if num_targets is None else num_targets
        x = x.to_dense() if x.layout != torch.strided else x
        source, target = edges_with_self_loops(edge_index, num_nodes, self.add_self_loops, num_targets)

        # Project: W_s h and W_t h for every node and head (W [h_i || h_j] = W_t h_i + W_s h_j).   [N, K, F']
        shape = (num_nodes, self.num_heads, self.out_features)
        h_source = (x @ self.linear.weight.t()).view(shape)
        h_target = (x @ self.linear_target.weight.t()).view(shape)

        # Score every edge j -> i: e_ij = a^T LeakyReLU(W_t h_i + W_s h_j).                          [E', K]
        hidden = F.leaky_relu(h_target[target] + h_source[source], self.negative_slope)  # [E', K, F']
        scores = (hidden * self.att).sum(dim=-1)

        # Normalise over each neighbourhood: alpha_ij = softmax_j(e_ij).                            [E', K]
        attention = neighbourhood_softmax(scores, target, num_targets)

        # Aggregate: h'_i = sum_j dropout(alpha_ij) dropout(W_s h_j), heads concatenated or averaged. [T, ...]
        dropped = F.dropout(attention, self.dropout, self.training)
        values = F.dropout(h_source, self.dropout, self.training)
        messages = dropped[:, :, None] * values[source]  # [E', K, F']
        return self._output(messages, source, target, attention, num_targets, return_attention)
