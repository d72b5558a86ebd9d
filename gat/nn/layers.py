"""Graph attention layers: GAT (Veličković et al., ICLR 2018), GATv2 (Brody et al., ICLR 2022), and constant
attention (a mean over each neighbourhood) as their baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gat.nn.kernels.neighbourhoods import Neighbourhoods, build_neighbourhoods
from gat.nn.kernels.ops import aggregate, dropout, gat_attention, neighbourhood_softmax
from gat.nn.kernels.projection import project


class _AttentionLayer(nn.Module):
    """What every attention layer here shares: its arguments and sizes, the output bias and the cached
    neighbourhoods. A subclass creates its own weights in ``_create_parameters`` (called once the sizes are set)
    and initialises them, and the bias, in ``reset_parameters``."""

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
        output_size = num_heads * out_features if concat else out_features
        self.bias = nn.Parameter(torch.empty(output_size)) if bias else None
        self._cache: list[tuple[torch.Tensor, tuple[int, int, int | None], Neighbourhoods]] = []
        self._create_parameters()
        self.reset_parameters()

    def _create_parameters(self) -> None:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        raise NotImplementedError

    def neighbourhoods(
        self, edge_index: torch.Tensor, num_nodes: int, num_targets: int | None = None
    ) -> Neighbourhoods:
        """The sorted edge list (with self-loops) for ``edge_index``, cached while the same tensor is passed.

        Full-batch training passes the same ``edge_index`` every step, so sorting it and adding self-loops once
        instead of every forward saves real time; an in-place edit of the tensor bumps its version and rebuilds.
        Two graphs are kept, as training and validation (each on its nodes' receptive field, or the whole graph)
        alternate every epoch.
        """
        key = (edge_index._version, num_nodes, num_targets)
        for cached_edge_index, cached_key, neighbourhoods in self._cache:
            if cached_edge_index is edge_index and cached_key == key:
                return neighbourhoods
        # Built with inference mode off: evaluation runs in it (gat.training.steps.evaluate), and a training step on the
        # same graph saves these index tensors for its backward (GATv2's edge gathers do).
        with torch.inference_mode(False):
            neighbourhoods = build_neighbourhoods(edge_index, num_nodes, self.add_self_loops, num_targets)
        self._cache = [(edge_index, key, neighbourhoods), *self._cache[:1]]
        return neighbourhoods

    def cached_neighbourhoods(self) -> list[Neighbourhoods]:
        """The sorted edge lists cached now (a captured CUDA graph keeps those it reads alive)."""
        return [neighbourhoods for _, _, neighbourhoods in self._cache]

    def _output(
        self,
        aggregated: torch.Tensor,
        neighbourhoods: Neighbourhoods,
        attention: torch.Tensor,
        return_attention: bool,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Concatenate or average the heads of ``aggregated`` (``[T, heads, out]``), add the bias, and attach
        ``(edge_index_used, attention)`` when asked: the common end of every layer's forward."""
        # The mean of one head is that head: a reshape, not a reduction forward and a division backward.
        concatenate = self.concat or self.num_heads == 1
        out = aggregated.reshape(aggregated.shape[0], -1) if concatenate else aggregated.mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return (out, (neighbourhoods.edge_index, attention)) if return_attention else out

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, num_heads={self.num_heads}, concat={self.concat}, "
            f"dropout={self.dropout}, add_self_loops={self.add_self_loops}"
        )


class GATLayer(_AttentionLayer):
    r"""Multi-head graph attention on an edge list.

    Read :class:`gat.nn.reference.ReferenceGATLayer` first: the same layer in plain PyTorch, equation by equation,
    with the same parameters and results. This class is the fast path: fused kernels with hand-written backwards
    (:mod:`gat.nn.kernels.ops`), tested against the reference to 1e-10.

    For every target node :math:`i` with neighbourhood :math:`\mathcal{N}(i)` (its in-neighbours, plus
    :math:`i` itself when ``add_self_loops``), and every head :math:`k`:

    .. math::
        e^k_{ij} = \mathrm{LeakyReLU}\left(\mathbf{a}^{k\top}_{s} \mathbf{W}^k \mathbf{h}_j
                    + \mathbf{a}^{k\top}_{t} \mathbf{W}^k \mathbf{h}_i\right),
        \qquad
        \alpha^k_{ij} = \frac{\exp(e^k_{ij})}{\sum_{l \in \mathcal{N}(i)} \exp(e^k_{il})},

    .. math::
        \mathbf{h}'_i = \big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k \mathbf{h}_j
        \quad (\text{concat}), \qquad
        \mathbf{h}'_i = \frac{1}{K} \sum_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k \mathbf{h}_j
        \quad (\text{mean}),

    plus ``bias``. The paper's :math:`\mathbf{a}^\top [\mathbf{W}\mathbf{h}_i \Vert \mathbf{W}\mathbf{h}_j]` is
    split into a target part ``att_target`` and a source part ``att_source``, so each is one dot product per
    *node*; only their sum is computed per edge. During training ``dropout`` is applied to the attention
    coefficients :math:`\alpha` and, with masks of their own, to the projected features
    :math:`\mathbf{W}^k \mathbf{h}_j` that are aggregated (not to those the scores read), as in the paper's code;
    input dropout is the model's job.

    Args:
        in_features: size of each input node vector.
        out_features: size of each head's output.
        num_heads: number of attention heads :math:`K`.
        concat: concatenate the heads (``[N, K * out_features]``) or average them (``[N, out_features]``).
        negative_slope: LeakyReLU slope of the attention scores.
        dropout: dropout probability on the attention coefficients and on the aggregated projected features.
        bias: add a learnable bias to the output.
        add_self_loops: include each node in its own neighbourhood (existing self-loops are replaced by one).

    Shapes:
        * ``x``: ``[N, in_features]``, dense or sparse CSR (sparse inputs use a sparse product).
        * ``edge_index``: ``int64 [2, E]``, row 0 the source :math:`j`, row 1 the target :math:`i`.
        * output: ``[N, num_heads * out_features]`` if ``concat`` else ``[N, out_features]``; with
          ``num_targets=T`` (a layer of a sampled batch, whose next layer reads only its first ``T`` nodes) ``T``
          rows instead of ``N``.
    """

    def _create_parameters(self) -> None:
        self.linear = nn.Linear(self.in_features, self.num_heads * self.out_features, bias=False)
        self.att_source = nn.Parameter(torch.empty(1, self.num_heads, self.out_features))
        self.att_target = nn.Parameter(torch.empty(1, self.num_heads, self.out_features))

    def reset_parameters(self) -> None:
        # Glorot initialisation, as in the reference implementation of the paper.
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.xavier_uniform_(self.att_source)
        nn.init.xavier_uniform_(self.att_target)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Apply the layer; with ``num_targets``, only to the first ``num_targets`` nodes (every edge must point
        into one of them; only they get self-loops): what a sampled batch's layer computes
        (:mod:`gat.sampling.sampler`).

        Returns:
            The new node features (``[num_targets or N, ...]``); with ``return_attention=True`` the tuple
            ``(out, (edge_index_used, attention))`` where ``edge_index_used`` is ``[2, E']`` (sorted by target,
            self-loops included) and ``attention`` is ``[E', num_heads]``, summing to 1 over each target's
            incoming edges (before attention dropout).
        """
        num_nodes = x.shape[0]
        neighbourhoods = self.neighbourhoods(edge_index, num_nodes, num_targets)
        projected = project(x, self.linear.weight).view(num_nodes, self.num_heads, self.out_features)
        # a^T [Wh_i || Wh_j] = a_t^T Wh_i + a_s^T Wh_j: each half is scored once per node, inside gat_attention.
        aggregated, attention = gat_attention(
            projected,
            self.att_source,
            self.att_target,
            neighbourhoods,
            self.negative_slope,
            self.dropout if self.training else 0.0,
            self.dropout if self.training else 0.0,
        )
        return self._output(aggregated, neighbourhoods, attention, return_attention)


class GATv2Layer(_AttentionLayer):
    r"""Multi-head *dynamic* graph attention (GATv2) of Brody, Alon and Yahav, "How Attentive are Graph Attention
    Networks?" (ICLR 2022), on an edge list.

    Read :class:`gat.nn.reference.ReferenceGATv2Layer` first: the same layer in plain PyTorch, equation by
    equation, with the same parameters and results. This class is the fast path (cached neighbourhoods, fused
    softmax and aggregation with hand-written backwards), tested against the reference to 1e-10.

    GAT's score :math:`\mathrm{LeakyReLU}(\mathbf{a}^\top[\mathbf{W}\mathbf{h}_i \Vert \mathbf{W}\mathbf{h}_j])`
    is monotonic in the neighbour's part, so every target ranks its neighbours the same way ("static" attention).
    GATv2 applies the attention vector *after* the nonlinearity, so the ranking can depend on the target:

    .. math::
        e^k_{ij} = \mathbf{a}^{k\top} \mathrm{LeakyReLU}\left(\mathbf{W}^k_s \mathbf{h}_j
                    + \mathbf{W}^k_t \mathbf{h}_i\right),
        \qquad
        \alpha^k_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\, e^k_{ij},
        \qquad
        \mathbf{h}'_i = \big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k_s \mathbf{h}_j

    (or the mean over heads with ``concat=False``), plus ``bias``. :math:`\mathbf{W}_s` (``linear``, the map
    whose output is also aggregated, as ``GATLayer.linear``) and :math:`\mathbf{W}_t` (``linear_target``) are
    separate, as in ``torch_geometric.nn.GATv2Conv(share_weights=False)``.

    Memory: the LeakyReLU sits between the two linear parts, so the score cannot be split into per-node dot
    products as in :class:`GATLayer`: this layer builds an ``[E, num_heads, out_features]`` tensor of per-edge
    sums (and autograd keeps it for the backward pass), O(E * heads * out) instead of GAT's O(E * heads).

    Args and shapes: as :class:`GATLayer` (``negative_slope`` is the slope of the LeakyReLU inside the score).
    """

    def _create_parameters(self) -> None:
        size = self.num_heads * self.out_features
        self.linear = nn.Linear(self.in_features, size, bias=False)
        self.linear_target = nn.Linear(self.in_features, size, bias=False)
        self.att = nn.Parameter(torch.empty(1, self.num_heads, self.out_features))

    def reset_parameters(self) -> None:
        # Glorot initialisation, as GATv2's reference implementation (PyG's GATv2Conv).
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.xavier_uniform_(self.linear_target.weight)
        nn.init.xavier_uniform_(self.att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Apply the layer (to the first ``num_targets`` nodes only, if given), as :meth:`GATLayer.forward`.

        Returns:
            The new node features; with ``return_attention=True`` the tuple ``(out, (edge_index_used,
            attention))``, as :meth:`GATLayer.forward`: ``edge_index_used`` ``[2, E']`` sorted by target with
            self-loops, ``attention`` ``[E', num_heads]`` summing to 1 over each target's incoming edges.
        """
        num_nodes = x.shape[0]
        neighbourhoods = self.neighbourhoods(edge_index, num_nodes, num_targets)
        shape = (num_nodes, self.num_heads, self.out_features)
        source = project(x, self.linear.weight).view(shape)
        target = project(x, self.linear_target.weight).view(shape)

        edge_hidden = neighbourhoods.at_source(source) + neighbourhoods.at_target(target)
        scores = (F.leaky_relu(edge_hidden, self.negative_slope) * self.att).sum(dim=-1)

        attention = neighbourhood_softmax(scores, neighbourhoods)
        dropped = dropout(attention, self.dropout, self.training)  # the attention's mask first, as GATLayer's
        aggregated = aggregate(dropped, dropout(source, self.dropout, self.training), neighbourhoods)
        return self._output(aggregated, neighbourhoods, attention, return_attention)


class MeanLayer(_AttentionLayer):
    r"""Constant attention, the baseline of the attention layers: every neighbour weighs the same,

    .. math::
        \alpha^k_{ij} = \frac{1}{|\mathcal{N}(i)|}, \qquad
        \mathbf{h}'_i = \big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha^k_{ij} \mathbf{W}^k \mathbf{h}_j,

    a mean over the neighbourhood (self-loop included): GCN-like aggregation, and the GAT paper's "Const-GAT"
    (scores :math:`e_{ij}` all equal). Everything else is :class:`GATLayer`'s: the projection and its
    initialisation, heads, bias, dropout on the (here uniform) coefficients and on the values, and
    ``(edge_index_used, attention)``
    with ``return_attention``, where the attention is ``1 / in-degree``.

    Args and shapes: as :class:`GATLayer` (``negative_slope`` is accepted and unused: there are no scores).
    """

    def _create_parameters(self) -> None:
        self.linear = nn.Linear(self.in_features, self.num_heads * self.out_features, bias=False)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.linear.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        return_attention: bool = False,
        num_targets: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Apply the layer (to the first ``num_targets`` nodes only, if given), as :meth:`GATLayer.forward`."""
        num_nodes = x.shape[0]
        neighbourhoods = self.neighbourhoods(edge_index, num_nodes, num_targets)
        projected = project(x, self.linear.weight).view(num_nodes, self.num_heads, self.out_features)
        # Every edge into node i weighs 1 / in-degree(i); a node with no edges has none to weigh.
        inverse_degree = 1.0 / neighbourhoods.in_degree.clamp(min=1).to(projected.dtype)
        attention = neighbourhoods.at_target(inverse_degree).unsqueeze(1).expand(-1, self.num_heads).contiguous()
        dropped = dropout(attention, self.dropout, self.training)  # the attention's mask first, as GATLayer's
        aggregated = aggregate(dropped, dropout(projected, self.dropout, self.training), neighbourhoods)
        return self._output(aggregated, neighbourhoods, attention, return_attention)


def attention_layers(model: nn.Module) -> list[_AttentionLayer]:
    """Every attention layer (GAT, GATv2, mean) inside ``model``."""
    return [module for module in model.modules() if isinstance(module, _AttentionLayer)]
