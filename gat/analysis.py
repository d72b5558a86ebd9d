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
