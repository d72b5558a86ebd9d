"""Quantities computed from a trained model's attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def attention_entropy(attention: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    r"""Entropy of each node's attention distribution, per head.

    :math:`H_i = -\sum_{j \in \mathcal{N}(i)} \alpha_{ij} \log \alpha_{ij}`; uniform attention over
    :math:`d_i` neighbours gives :math:`\log d_i`, attention on a single neighbour gives 0.

    Args:
        attention: ``[E, H]`` coefficients summing to 1 over each target's incoming edges.
        edge_index: ``[2, E]`` edges the attention is aligned with (row 1 = target).

    Returns:
        ``[N, H]`` entropies in nats (0 for nodes with no incoming edge).
    """
    # x log x -> 0 as x -> 0: xlogy gives exactly 0 there instead of 0 * -inf = nan.
    terms = torch.special.xlogy(attention, attention)
    return -torch.zeros(num_nodes, attention.shape[1], dtype=attention.dtype, device=attention.device).index_add_(
        0, edge_index[1], terms
    )


def neighbourhood_sizes(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[N]`` number of incoming edges of each node (with the layer's self-loops: the size of its neighbourhood)."""
    return torch.bincount(edge_index[1], minlength=num_nodes)


def uniform_attention(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[E, 1]`` the attention of a graph convolution without attention: ``1 / |N(i)|`` on every edge into ``i``."""
    return (1.0 / neighbourhood_sizes(edge_index, num_nodes).double())[edge_index[1]].unsqueeze(1)


def kl_from_uniform(attention: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    r"""KL divergence of each node's attention from uniform attention over the same neighbourhood, per head.

    :math:`\mathrm{KL}(\alpha_i \| U_i) = \sum_j \alpha_{ij} \log(\alpha_{ij} d_i) = \log d_i - H_i` with
    :math:`d_i = |\mathcal N(i)|`: 0 when the layer attends uniformly (a GCN-like mean), up to :math:`\log d_i`
    when it attends to a single neighbour. Returns ``[N, H]`` in nats (0 for nodes with no incoming edge).
    """
    # float64: the difference of two similar numbers must not drown in float32 rounding.
    attention = attention.double()
    sizes = neighbourhood_sizes(edge_index, num_nodes).double().clamp(min=1).unsqueeze(1)
    return torch.log(sizes) - attention_entropy(attention, edge_index, num_nodes)


def class_makeup(
    edge_index: torch.Tensor,
    labels: torch.Tensor,
    num_nodes: int,
    num_classes: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """How each node's incoming edges split over the classes of their sources.

    Without ``weights``: ``[N, C]`` counts (``counts[i, c]`` = edges ``j -> i`` with ``labels[j] == c``). With
    ``weights`` ``[E, H]`` (attention): ``[N, H, C]`` the weight on each class, which sums to 1 over ``C`` for
    attention. Self-loops count like any edge: drop them from ``edge_index`` first for the neighbours alone.
    """
    source_class = labels[edge_index[0]]
    if weights is None:
        counts = torch.zeros(num_nodes, num_classes, dtype=torch.long, device=edge_index.device)
        return counts.index_put_((edge_index[1], source_class), torch.ones_like(source_class), accumulate=True)
    makeup = torch.zeros(num_nodes, weights.shape[1], num_classes, dtype=weights.dtype, device=weights.device)
    heads = torch.arange(weights.shape[1], device=weights.device)
    # one (target, head, source class) cell per edge and head
    index = (
        edge_index[1][:, None].expand_as(weights),
        heads.expand_as(weights),
        source_class[:, None].expand_as(weights),
    )
    return makeup.index_put_(index, weights, accumulate=True)


def not_self_loops(edge_index: torch.Tensor) -> torch.Tensor:
    """``[E]`` True for the edges between two different nodes."""
    return edge_index[0] != edge_index[1]


@dataclass
class AttentionHomophily:
    """Does attention favour neighbours of the node's own class? Per head, self-loops left out everywhere.

    ``same_class_share``: mean over nodes with a neighbour of the share of the node's attention to its neighbours
    that goes to same-class ones; uniform attention would give ``uniform_same_class_share``, the mean fraction of
    same-class neighbours (node homophily). ``mean_same`` / ``mean_different``: the mean coefficient on same-class /
    different-class edges; ``uniform_same`` / ``uniform_different``: the same means of ``1 / |N(i)|``.
    """

    same_class_share: torch.Tensor  # [H]
    uniform_same_class_share: float
    mean_same: torch.Tensor  # [H]
    mean_different: torch.Tensor  # [H]
    uniform_same: float
    uniform_different: float


def attention_homophily(attention: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor) -> AttentionHomophily:
    """:class:`AttentionHomophily` of ``attention`` ``[E, H]`` on ``edge_index`` (self-loops included, as the
    layer used it) for the node classes ``labels`` ``[N]``."""
    num_nodes = labels.shape[0]
    attention = attention.double()
    uniform = uniform_attention(edge_index, num_nodes)  # 1/|N(i)| counts the self-loop: what the layer would use
    between = not_self_loops(edge_index)
    edges, attention, uniform = edge_index[:, between], attention[between], uniform[between]
    same = labels[edges[0]] == labels[edges[1]]

    def share(weights: torch.Tensor) -> torch.Tensor:
        # per node: weight on same-class neighbours / weight on all neighbours, averaged over nodes that have any
        total = weights.new_zeros(num_nodes, weights.shape[1]).index_add_(0, edges[1], weights)
        on_same = torch.zeros_like(total).index_add_(0, edges[1][same], weights[same])
        has_neighbour = total[:, 0] > 0
        return (on_same[has_neighbour] / total[has_neighbour]).mean(0)

    return AttentionHomophily(
        same_class_share=share(attention),
        uniform_same_class_share=float(share(uniform)[0]),
        mean_same=attention[same].mean(0),
        mean_different=attention[~same].mean(0),
        uniform_same=float(uniform[same].mean()),
        uniform_different=float(uniform[~same].mean()),
    )


def head_agreement(attention: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    r"""``[H, H]`` how alike heads attend: the mean over nodes of :math:`1 - \mathrm{TV}(\alpha^a_i, \alpha^b_i)`,
    with :math:`\mathrm{TV} = \frac12 \sum_j |\alpha^a_{ij} - \alpha^b_{ij}|` the total variation distance
    between the two heads' attention distributions over the node's neighbourhood.

    1 when two heads give every edge the same coefficient, 0 when they attend to disjoint neighbours. Nodes with
    a single incoming edge (their self-loop) are left out: every head must give it 1, which says nothing.
    Give it the heads of several layers concatenated (``torch.cat(attention, 1)``) to compare across layers.
    """
    attention = attention.double()
    informative = neighbourhood_sizes(edge_index, num_nodes) > 1
    heads = attention.shape[1]
    agreement = attention.new_empty(heads, heads)
    for head in range(heads):  # one row at a time: [E, H] differences, not [E, H, H]
        differences = (attention[:, head : head + 1] - attention).abs()
        distance = 0.5 * attention.new_zeros(num_nodes, heads).index_add_(0, edge_index[1], differences)
        agreement[head] = 1 - distance[informative].mean(0)
    return agreement
