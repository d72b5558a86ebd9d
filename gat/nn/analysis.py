"""Quantities computed from a trained model's attention."""

from __future__ import annotations

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
