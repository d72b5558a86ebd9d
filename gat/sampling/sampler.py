"""Neighbour sampling for mini-batch training (GraphSAGE-style fan-outs), fully vectorised.

A ``num_layers``-layer GAT computes a node's output from its ``num_layers``-hop in-neighbourhood, which on a big
graph is most of the graph. Mini-batch training instead takes a batch of *seed* nodes and, going outwards one
hop per layer, keeps at most ``fanouts[l]`` random in-neighbours of every node the layer above needs:

* the last layer (``num_layers - 1``) has the seeds as targets and samples ``fanouts[-1]`` in-neighbours of each;
* layer ``l`` has as targets every node layer ``l + 1`` reads (its targets and their sampled neighbours) and
  samples ``fanouts[l]`` in-neighbours of each; layer 0 is the outermost hop.

The batch is the union of the sampled nodes, numbered locally with the seeds first and each layer's targets a
prefix of the next-outer layer's nodes, plus one local ``edge_index`` per layer and how many targets each layer
has. The ``GAT`` model runs on it with ``num_targets`` (each layer computes only its targets, and adds their
self-loops itself), and its output is the seeds' logits. With fan-outs at least the largest in-degree nothing is
dropped, and those logits equal full-batch ones.

Sampling is without replacement and costs O(fanout^2) per node whatever its degree (vectorised Floyd sampling),
so a batch's cost and memory depend on the batch size and fan-outs, not on the size of the graph or its hubs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gat.nn.kernels.neighbourhoods import build_neighbourhoods, select_rows


@dataclass
class SampledBatch:
    """One mini-batch: local ids ``0 .. len(nodes) - 1``, seeds first.

    ``nodes`` holds the global id of every local node; ``edge_index[l]`` (``int64 [2, E_l]``, row 0 the source,
    row 1 the target, local ids) is the sampled graph layer ``l`` attends over, and its targets are the first
    ``num_targets[l]`` nodes (the nodes layer ``l + 1`` reads; the seeds for the last layer).
    """

    nodes: torch.Tensor
    num_seeds: int
    edge_index: list[torch.Tensor]
    num_targets: list[int]

    @property
    def seeds(self) -> torch.Tensor:
        return self.nodes[: self.num_seeds]

    @property
    def num_sampled_edges(self) -> int:
        return sum(edges.shape[1] for edges in self.edge_index)


class NeighbourSampler:
    """Samples :class:`SampledBatch` es from a graph's in-neighbour CSR (built once, O(E) memory).

    Args:
        edge_index: ``int64 [2, E]`` of the whole graph (row 0 the source, row 1 the target).
        num_nodes: number of nodes of the graph.
        fanouts: in-neighbours kept per target node, one count per layer (``fanouts[0]`` for the first,
            outermost layer); ``None`` for a layer keeps all of them.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, fanouts: Sequence[int | None]) -> None:
        # The GAT layer's own neighbourhood structure without self-loops is exactly the in-neighbour CSR.
        neighbourhoods = build_neighbourhoods(edge_index, num_nodes, add_self_loops=False)
        self.row_pointers, self.sources = neighbourhoods.row_pointers, neighbourhoods.source
        self.fanouts = list(fanouts)

    def sample(self, seeds: torch.Tensor, generator: torch.Generator | None = None) -> SampledBatch:
        """The batch for ``seeds`` (distinct global node ids); same generator state, same batch."""
        nodes = seeds
        edge_index, num_targets = [], []
        for fanout in reversed(self.fanouts):  # from the seeds outwards: the last layer first
            sources, targets = self.in_neighbours(nodes, fanout, generator)
            num_targets.append(nodes.shape[0])
            nodes, local_sources = append_new_nodes(nodes, sources)
            edge_index.append(torch.stack([local_sources, targets]))
        return SampledBatch(nodes, seeds.shape[0], edge_index[::-1], num_targets[::-1])

    def in_neighbours(
        self, nodes: torch.Tensor, fanout: int | None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``fanout`` distinct random in-neighbours of each of ``nodes`` (all of them if ``fanout`` is None
        or the degree is smaller). Returns ``(sources, targets)``: global ids of the neighbours, and for each the
        *position* in ``nodes`` of the node it points to."""
        starts = self.row_pointers[nodes]
        degrees = self.row_pointers[nodes + 1] - starts
        keep_all = degrees <= fanout if fanout is not None else torch.ones_like(degrees, dtype=torch.bool)
        positions = [segment_positions(starts[keep_all], degrees[keep_all])]
        targets = [torch.arange(nodes.shape[0]).repeat_interleave(keep_all * degrees)]
        if not keep_all.all():
            crowded = (~keep_all).nonzero().squeeze(1)
            picks = _floyd_sample(degrees[crowded], fanout, generator)  # [len(crowded), fanout] offsets
            positions.append((starts[crowded, None] + picks).reshape(-1))
            targets.append(crowded.repeat_interleave(fanout))
        return self.sources[torch.cat(positions)], torch.cat(targets)


def receptive_field(edge_index: torch.Tensor, num_nodes: int, seeds: torch.Tensor, num_layers: int) -> SampledBatch:
    """Everything the outputs of ``seeds`` depend on in a ``num_layers``-layer GAT: the batch with every
    in-neighbour kept, out to ``num_layers`` hops (CPU tensors in, CPU tensors out).

    The model (given the batch's ``num_targets``) gives the seeds exactly their whole-graph outputs on it, while
    computing only what those outputs read: the last layer only the seeds' neighbourhoods, each earlier layer
    one hop more.
    """
    return NeighbourSampler(edge_index, num_nodes, [None] * num_layers).sample(seeds)


def segment_positions(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``cat([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the Python loop."""
    total = int(lengths.sum())
    segment_starts = torch.cumsum(lengths, 0) - lengths  # where each segment begins in the output
    offsets = torch.arange(total) - segment_starts.repeat_interleave(lengths, output_size=total)
    return starts.repeat_interleave(lengths, output_size=total) + offsets


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[rows]`` for a dense or sparse CSR ``x`` (torch has no ``index_select`` for sparse CSR)."""
    if x.layout != torch.sparse_csr:
        return select_rows(x, rows)
    crow, col, values = x.crow_indices(), x.col_indices(), x.values()
    lengths = crow[rows + 1] - crow[rows]
    positions = segment_positions(crow[rows], lengths)
    new_crow = torch.zeros(rows.shape[0] + 1, dtype=crow.dtype)
    new_crow[1:] = torch.cumsum(lengths, 0)
    return torch.sparse_csr_tensor(
        new_crow, col[positions], values[positions], (rows.shape[0], x.shape[1]), check_invariants=False
    )


def _floyd_sample(degrees: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """For each row, ``count`` distinct offsets uniform in ``[0, degree)`` (every ``degree > count``).

    Floyd's algorithm, one step for all rows at once: step ``s`` draws ``t`` uniform in ``[0, degree - count + s]``
    and keeps it, or keeps ``degree - count + s`` itself if ``t`` was already taken. Every ``count``-subset comes
    out equally likely, at O(count^2) per row instead of O(degree) for shuffling all neighbours.
    """
    picks = torch.empty(degrees.shape[0], count, dtype=torch.long)
    for step in range(count):
        upper = degrees - count + step  # inclusive
        draw = (torch.rand(degrees.shape[0], generator=generator, dtype=torch.float64) * (upper + 1)).long()
        taken = (picks[:, :step] == draw[:, None]).any(dim=1)
        picks[:, step] = torch.where(taken, upper, draw)
    return picks


def append_new_nodes(nodes: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend the local numbering ``nodes`` (distinct global ids) with the candidates not in it yet, in order of
    first appearance. Returns the new ``nodes`` and each candidate's local id."""
    everything = torch.cat([nodes, candidates])
    unique, inverse = torch.unique(everything, return_inverse=True)
    positions = torch.arange(everything.shape[0])
    first_seen = torch.full((unique.shape[0],), everything.shape[0]).scatter_reduce_(0, inverse, positions, "amin")
    order = torch.argsort(first_seen)  # known nodes (positions < len(nodes)) keep their ids, new ones follow
    local_id = torch.empty_like(order)
    local_id[order] = torch.arange(order.shape[0])
    return unique[order], local_id[inverse[nodes.shape[0] :]]
