"""Exact, memory-bounded inference: the whole graph one layer at a time, in chunks of target nodes.

Full-batch inference holds every layer's per-edge attention of the whole graph at once; sampled inference is
not exact. Here layer ``l`` is computed for all nodes before layer ``l + 1`` starts, ``chunk_size`` target nodes
at a time, each with *all* its in-neighbours: the result equals full-batch inference (up to float rounding),
while the working memory is one chunk's neighbourhood plus two ``[N, hidden]`` tensors.
"""

from __future__ import annotations

import torch

from gat.model import GAT
from gat.sampling import NeighbourSampler, append_new_nodes, gather_rows


@torch.no_grad()
def layerwise_inference(
    model: GAT, x: torch.Tensor, sampler: NeighbourSampler, chunk_size: int = 4096, device: torch.device | None = None
) -> torch.Tensor:
    """Eval-mode logits ``[N, num_classes]`` of every node (on the CPU).

    ``x`` is ``[N, in_features]`` (dense or sparse CSR, on the CPU, where ``sampler`` lives); each chunk runs on
    ``device`` (default: the model's).
    """
    model.eval()
    device = device or next(model.parameters()).device
    num_nodes = x.shape[0]
    h = x
    for index in range(len(model.layers)):
        outputs = []
        for chunk in torch.arange(num_nodes).split(chunk_size):
            sources, targets = sampler.in_neighbours(chunk, fanout=None)
            nodes, local_sources = append_new_nodes(chunk, sources)  # local ids: the chunk first
            edge_index = torch.stack([local_sources, targets])
            out = model.apply_layer(index, gather_rows(h, nodes).to(device), edge_index.to(device))
            outputs.append(out[: chunk.shape[0]].cpu())
        h = torch.cat(outputs)
    return h
