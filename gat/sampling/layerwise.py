"""Exact, memory-bounded inference: the whole graph one layer at a time, in chunks of target nodes.

Full-batch inference holds every layer's per-edge attention of the whole graph at once; sampled inference is
not exact. Here layer ``l`` is computed for all nodes before layer ``l + 1`` starts, one chunk of target nodes
at a time, each with *all* its in-neighbours: the result equals full-batch inference (up to float rounding),
while the working memory is one chunk's neighbourhood plus two ``[N, hidden]`` tensors.
"""

from __future__ import annotations

import torch

from gat.nn.model import GAT
from gat.sampling.sampler import NeighbourSampler, append_new_nodes, gather_rows


@torch.no_grad()
def layerwise_inference(
    model: GAT,
    x: torch.Tensor,
    sampler: NeighbourSampler,
    edges_per_chunk: int = 2**20,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Eval-mode logits ``[N, num_classes]`` of every node (on the CPU).

    ``x`` is ``[N, in_features]`` (dense or sparse CSR, on the CPU, where ``sampler`` lives); each chunk of
    consecutive target nodes holds about ``edges_per_chunk`` in-edges (a node with more is a chunk of its own),
    which bounds the working memory whatever the degrees; chunks run on ``device`` (default: the model's).
    """
    model.eval()
    device = device or next(model.parameters()).device
    h = x
    for index in range(len(model.layers)):
        outputs = []
        for chunk in _chunks(sampler, edges_per_chunk):
            sources, targets = sampler.in_neighbours(chunk, fanout=None)
            nodes, local_sources = append_new_nodes(chunk, sources)  # local ids: the chunk first
            edge_index = torch.stack([local_sources, targets])
            # Only the chunk's nodes are targets: their neighbours are read, not computed.
            out = model.apply_layer(
                index, gather_rows(h, nodes).to(device), edge_index.to(device), num_targets=chunk.shape[0]
            )
            outputs.append(out.to("cpu"))
        h = torch.cat(outputs)
    return h


def _chunks(sampler: NeighbourSampler, edges_per_chunk: int) -> tuple[torch.Tensor, ...]:
    """All node ids, cut where the running count of in-edges (self-loops included) passes each multiple of
    ``edges_per_chunk``."""
    edges_so_far = torch.cumsum(sampler.row_pointers.diff() + 1, 0)
    multiples = torch.arange(1, int(edges_so_far[-1]) // edges_per_chunk + 1) * edges_per_chunk
    cuts = torch.searchsorted(edges_so_far, multiples)
    return torch.arange(edges_so_far.shape[0]).tensor_split(cuts[cuts > 0].unique())  # no empty chunk
