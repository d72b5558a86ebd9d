"""A graph's edges grouped by target node, and the index layout that aggregates all heads in one CSR product.

Built once per graph (full-batch training) or once per batch (mini-batch training) and reused by every
forward pass; the differentiable kernels that use it are in :mod:`gat.nn.kernels.ops`.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# torch warns that sparse CSR is "beta" the first time one is built; we build them on purpose, on every forward.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


@dataclass
class Neighbourhoods:
    """A graph's edges grouped by target node: edge ``e`` carries a message ``source[e] -> target[e]``.

    Built once per graph (by :func:`build_neighbourhoods`) and reused by every forward pass.
    ``row_pointers[i] : row_pointers[i + 1]`` are the positions of node ``i``'s incoming edges. Sources are any
    of the ``num_nodes`` nodes; targets are the first ``num_targets`` of them (all of them unless a sampled
    batch's layer only computes the nodes the next layer reads, see :mod:`gat.sampling.sampler`).
    """

    source: torch.Tensor
    target: torch.Tensor
    row_pointers: torch.Tensor
    num_nodes: int
    num_targets: int
    _plans: dict[int, AggregationPlan] = field(default_factory=dict, repr=False)
    _sum_layouts: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def edge_index(self) -> torch.Tensor:
        return torch.stack([self.source, self.target])

    @property
    def in_degree(self) -> torch.Tensor:
        return self.row_pointers.diff()

    def at_source(self, node_values: torch.Tensor) -> torch.Tensor:
        """Each edge's row of ``node_values`` at its source node: ``[N, ...]`` -> ``[E, ...]``."""
        return select_rows(node_values, self.source)

    def at_target(self, node_values: torch.Tensor) -> torch.Tensor:
        """Each edge's row of ``node_values`` at its target node: ``[T, ...]`` (or ``[N, ...]``) -> ``[E, ...]``."""
        return select_rows(node_values, self.target)

    def sum_by_target(self, edge_values: torch.Tensor) -> torch.Tensor:
        """``out[i] = sum of edge_values[e] over the edges e into node i``: ``[E, H]`` -> ``[T, H]``."""
        return self._sum("target", edge_values)

    def sum_by_source(self, edge_values: torch.Tensor) -> torch.Tensor:
        """``out[j] = sum of edge_values[e] over the edges e out of node j``: ``[E, H]`` -> ``[N, H]``."""
        return self._sum("source", edge_values)

    def _sum(self, by: str, edge_values: torch.Tensor) -> torch.Tensor:
        # A product with a 0/1 CSR matrix [T or N, E]: on CPU faster than segment_reduce or index_add_, and
        # each row's entries are added in a fixed order, so results are bit-reproducible. The layout is built once:
        # every step sums the same edges.
        if by not in self._sum_layouts:
            self._sum_layouts[by] = self._sum_layout(by)
        pointers, columns = self._sum_layouts[by]
        return csr_product(pointers, columns, None, edge_values)

    def _sum_layout(self, by: str) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR row pointers and columns of the [T or N, E] matrix with a 1 at (node, edge) for each edge at that
        node."""
        if by == "target":  # edges are already grouped by target
            pointers, columns = self.row_pointers, torch.arange(self.source.numel(), device=self.source.device)
        else:
            pointers = csr_pointers(self.source, self.num_nodes)
            columns = sort_by(self.source, self.target, self.num_nodes)
        index_type = _index_type(columns.numel(), self.num_nodes)
        return pointers.to(index_type), columns.to(index_type)

    def plan(self, num_heads: int) -> AggregationPlan:
        """The sparse-matrix layout for aggregating ``num_heads`` heads at once (cached per head count)."""
        if num_heads not in self._plans:
            self._plans[num_heads] = AggregationPlan.build(self, num_heads)
        return self._plans[num_heads]


def build_neighbourhoods(
    edge_index: torch.Tensor, num_nodes: int, add_self_loops: bool = True, num_targets: int | None = None
) -> Neighbourhoods:
    """Sort ``edge_index`` (``[2, E]``, row 0 = source, row 1 = target) by target, then source.

    With ``add_self_loops`` any self-loops in the input are dropped and exactly one per target node is added, so
    every node attends to itself once (the GAT paper's neighbourhood includes the node). ``num_targets`` (all
    ``num_nodes`` by default) says that only the first ``num_targets`` nodes are targets: every edge must point
    into one of them, and only they get self-loops.
    """
    num_targets = num_nodes if num_targets is None else num_targets
    source, target = edge_index[0], edge_index[1]
    if not 0 <= num_targets <= num_nodes:
        raise ValueError(f"num_targets must be between 0 and the {num_nodes} nodes, got {num_targets}")
    last_target = int(target.max()) if num_targets < num_nodes and target.numel() > 0 else -1
    if last_target >= num_targets:
        raise ValueError(f"an edge points to node {last_target}, outside the {num_targets} target nodes")
    if add_self_loops:
        keep = source != target
        loops = torch.arange(num_targets, device=edge_index.device)
        source = torch.cat([source[keep], loops])
        target = torch.cat([target[keep], loops])
    order = sort_by(target, source, num_nodes)
    source, target = source[order], target[order]
    row_pointers = csr_pointers(target, num_targets)
    return Neighbourhoods(source, target, row_pointers, num_nodes, num_targets)


@dataclass
class AggregationPlan:
    """Index arithmetic that turns the per-head aggregation into ONE sparse-matrix product.

    Head ``h`` of node ``i`` becomes row ``i * H + h`` of a block matrix ``A`` of shape ``[T*H, N*H]`` (``T``
    target nodes, ``N`` nodes) whose entry ``(i*H + h, j*H + h)`` is the weight of edge ``j -> i`` in head ``h``.
    Then ``out.view(T*H, F) = A @ values.view(N*H, F)`` aggregates every head of every target in one CSR product.
    ``csr_order`` gathers the flat ``[E, H]`` weights into A's CSR value order, ``transposed_order`` into the CSR
    value order of ``A^T`` (needed for the gradient with respect to the values). With one head, A's CSR order is
    the edge order itself (edges are sorted by target, then source), and no gather is made.
    """

    num_heads: int
    num_rows: int
    num_columns: int
    row_pointers: torch.Tensor
    columns: torch.Tensor
    csr_order: torch.Tensor
    transposed_row_pointers: torch.Tensor
    transposed_columns: torch.Tensor
    transposed_order: torch.Tensor

    @classmethod
    def build(cls, neighbourhoods: Neighbourhoods, num_heads: int) -> AggregationPlan:
        # A's CSR order is (target, head, source) and A^T's (source, head, target). The edges are already sorted
        # by (target, source), so both are a regrouping of each node's run of edges by head: index arithmetic
        # plus one argsort of the E edges by source, instead of two argsorts of E*H keys (mini-batch training
        # builds a plan for every batch, so this matters there).
        source, target, num_nodes = neighbourhoods.source, neighbourhoods.target, neighbourhoods.num_nodes
        heads = torch.arange(num_heads, device=source.device)
        by_source = sort_by(source, target, num_nodes)
        csr_order = _head_major_order(target, num_heads, num_nodes)
        transpose_order = (by_source[:, None] * num_heads + heads).reshape(-1)[
            _head_major_order(source[by_source], num_heads, num_nodes)
        ]  # flat edge entries in A^T's order
        # These index arrays are most of a layer's memory on big graphs: int32 halves them when it can.
        num_columns = num_nodes * num_heads
        index_type = _index_type(csr_order.numel(), num_columns)
        return cls(
            num_heads=num_heads,
            num_rows=neighbourhoods.num_targets * num_heads,
            num_columns=num_columns,
            row_pointers=_head_major_pointers(neighbourhoods.row_pointers, num_heads).to(index_type),
            columns=_flat_node_index(source, csr_order, num_heads).to(index_type),
            csr_order=csr_order,  # int64: scatter_ (edge_values) needs it
            transposed_row_pointers=_head_major_pointers(csr_pointers(source, num_nodes), num_heads).to(index_type),
            transposed_columns=_flat_node_index(target, transpose_order, num_heads).to(index_type),
            transposed_order=transpose_order.to(index_type),
        )

    def csr_values(self, weights: torch.Tensor) -> torch.Tensor:
        """``[E, H]`` edge weights in A's CSR value order."""
        flat = weights.reshape(-1)
        return flat if self.num_heads == 1 else gather_flat(flat, self.csr_order)

    def edge_values(self, csr_values: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`csr_values`: values in A's CSR order back to ``[E, H]`` edge order."""
        if self.num_heads == 1:
            return csr_values.view(-1, 1)
        return scatter_flat(csr_values, self.csr_order).view(-1, self.num_heads)

    def sampled_products(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``<left[r], right[c]>`` for every nonzero ``(r, c)`` of ``A``, in A's CSR order: a sampled dense-dense
        product (SDDMM) of ``left`` (``[T*H, F]``) and ``right`` (``[N*H, F]``), ``[E*H]``.

        On CPU, torch's ``sampled_addmm`` copies its sparse input into a new result before it writes the products,
        with the int32 indices widened to int64: two passes over E*H entries, and E*H int64 columns (704 MB on the
        1e7-edge benchmark graph) alive through the backward pass. Written in place into a pattern of zeros
        (``beta=0`` still multiplies the old values, so they must be finite), it makes neither copy and keeps
        the plan's int32 indices. (On other devices torch's own result is kept: the in-place form is untried there.)
        """
        num_features = left.shape[1]
        if 1 < num_features < 8:
            # torch's CPU sampled_addmm takes a slow scalar path for 2-7 features (Cora's 7 classes);
            # zero columns leave every dot product unchanged.
            left, right = F.pad(left, (0, 8 - num_features)), F.pad(right, (0, 8 - num_features))
        zeros = torch.zeros(self.columns.numel(), dtype=left.dtype, device=left.device)
        shape = (self.num_rows, self.num_columns)
        pattern = torch.sparse_csr_tensor(self.row_pointers, self.columns, zeros, shape, check_invariants=False)
        in_place = pattern if left.device.type == "cpu" else None
        return torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0, out=in_place).values()

    def product(self, csr_values: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``A @ values`` (``values``: ``[N*H, F]``; ``A``'s values in its CSR order, see :meth:`csr_values`):
        ``[T*H, F]``."""
        return csr_product(self.row_pointers, self.columns, csr_values, values)

    def transposed_product(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``A^T @ values`` (``values``: ``[T*H, F]``), from the ``[E, H]`` edge weights: ``[N*H, F]``.

        A^T's values are gathered from edge order, not from A's CSR order: an edge's H weights share a cache line
        there, while A spreads them over H rows.
        """
        transposed_values = gather_flat(weights.reshape(-1), self.transposed_order)
        return csr_product(self.transposed_row_pointers, self.transposed_columns, transposed_values, values)


def _head_major_order(groups: torch.Tensor, num_heads: int, num_nodes: int) -> torch.Tensor:
    """For edges listed group by group (``groups`` sorted, e.g. each edge's target), the permutation that lists
    the flat ``[E, H]`` entries group by group, then head by head, then edge by edge: ``order[k] = e * H + h``."""
    pointers = csr_pointers(groups, num_nodes)
    first, size = pointers[groups], pointers.diff()[groups]  # each edge's group: where it starts, how long it is
    rank = torch.arange(groups.numel(), device=groups.device) - first
    heads = torch.arange(num_heads, device=groups.device)
    positions = ((first * num_heads + rank)[:, None] + heads * size[:, None]).reshape(-1)
    order = torch.empty_like(positions)
    return order.scatter_(0, positions, torch.arange(positions.numel(), device=groups.device))


def _head_major_pointers(pointers: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Row pointers of the ``[N*H, .]`` matrix whose row ``i*H + h`` holds head ``h`` of node ``i``'s edges."""
    heads = torch.arange(num_heads, device=pointers.device)
    starts = (pointers[:-1, None] * num_heads + heads * pointers.diff()[:, None]).reshape(-1)
    return torch.cat([starts, pointers[-1:] * num_heads])


def _flat_node_index(nodes: torch.Tensor, order: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``nodes[e] * H + h`` for each flat entry ``e * H + h`` listed in ``order``: the block matrix's column."""
    return nodes[order // num_heads] * num_heads + order % num_heads


def _index_type(num_entries: int, num_rows: int) -> torch.dtype:
    return torch.int32 if num_entries < 2**31 and num_rows < 2**31 else torch.int64


def csr_product(
    row_pointers: torch.Tensor, columns: torch.Tensor, values: torch.Tensor | None, dense: torch.Tensor
) -> torch.Tensor:
    """``A @ dense`` for the sparse ``[M, K]`` matrix ``A`` given by its CSR arrays (``values=None``: every entry
    1) and a dense ``[K, F]`` ``dense``: ``[M, F]``.

    Row ``i`` of the product sums ``dense``'s rows at row ``i``'s columns, each scaled by its value. On CPU that
    is exactly ``embedding_bag`` (one bag per row, the columns as indices, the values as per-sample weights),
    whose FBGEMM kernel prefetches the rows it is about to read and beats torch's MKL CSR product where the rows
    are wide or the reads random. Each row is summed in order by one thread, so results are bit-reproducible. Taking CSR
    arrays rather than a sparse tensor saves building one per call. Not differentiable: its callers are
    hand-written forwards and backwards, or run without gradients. (Other devices, and rows of width 0, which
    FBGEMM rejects, use torch's own product.)
    """
    if dense.device.type == "cpu" and dense.shape[1] > 0:
        # Detached: embedding_bag keeps what its own backward would need whenever an input requires grad.
        weights = None if values is None else values.detach()
        return F.embedding_bag(
            columns,
            dense.detach().contiguous(),
            row_pointers,
            mode="sum",
            per_sample_weights=weights,
            include_last_offset=True,
        )
    if values is None:
        values = torch.ones(columns.numel(), dtype=dense.dtype, device=dense.device)
    shape = (row_pointers.numel() - 1, dense.shape[0])
    return torch.sparse_csr_tensor(row_pointers, columns, values, shape, check_invariants=False) @ dense


def select_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values.index_select(0, index)``, the rows of ``values`` (``[N, ...]``) at ``index`` (``[E]``).

    index_select rather than fancy indexing: its backward (index_add_) is deterministic on CPU. On CUDA, rows of
    16 bytes or more go through :func:`gather_elements` instead: torch's CUDA row gather costs the same whatever
    the row size, well above an element-wise gather of the same bytes.
    """
    row_size = math.prod(values.shape[1:])
    if values.device.type == "cuda" and row_size * values.element_size() >= 16:
        return gather_elements(values, index)
    return values.index_select(0, index)


def gather_elements(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The same as ``values.index_select(0, index)``, as a gather of single elements through a flat index."""
    row_size = math.prod(values.shape[1:])
    flat_index = (index[:, None] * row_size + torch.arange(row_size, device=index.device)).view(-1)
    return values.reshape(-1).index_select(0, flat_index).view(index.shape[0], *values.shape[1:])


def gather_flat(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[k] = values[index[k]]`` for 1-D ``values`` and ``index``: ``values.index_select(0, index)``.

    torch runs a 1-D index_select on one CPU thread, and the gathers of edge values into a CSR order are big, so
    they are split over torch's threads (:func:`_in_chunks`). Not differentiable: its callers are hand-written
    forwards and backwards. (The chunks run in other threads, where autograd's thread-local no-grad mode does not
    reach, hence the detach.)
    """
    values = values.detach()
    if values.device.type != "cpu":
        return values.index_select(0, index)
    out = torch.empty(index.shape[0], dtype=values.dtype)

    def gather(start: int, stop: int) -> None:
        torch.index_select(values, 0, index[start:stop], out=out[start:stop])

    _in_chunks(index.shape[0], gather)
    return out


def scatter_flat(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[index[k]] = values[k]`` for a permutation ``index`` (int64): the inverse of :func:`gather_flat`.

    Each slot is written exactly once, whichever thread writes it, so the result is deterministic. Not
    differentiable, as :func:`gather_flat`.
    """
    values = values.detach()
    out = torch.empty_like(values)
    if values.device.type != "cpu":
        return out.scatter_(0, index, values)

    def scatter(start: int, stop: int) -> None:
        out.scatter_(0, index[start:stop], values[start:stop])

    _in_chunks(index.shape[0], scatter)
    return out


def _in_chunks(count: int, work: Callable[[int, int], object]) -> None:
    """``work(start, stop)`` over ``range(count)``, cut into one chunk per torch thread when ``count`` is big; the
    calling thread does the last chunk. torch releases the GIL inside its kernels, so the chunks run in parallel."""
    threads = torch.get_num_threads()
    if threads == 1 or count < _PARALLEL_FROM:
        work(0, count)
        return
    bounds = [count * chunk // threads for chunk in range(threads + 1)]
    # Inference mode is thread-local: in an evaluation the output is an inference tensor, which the workers may write
    # only in the same mode.
    inference = torch.is_inference_mode_enabled()

    def in_callers_mode(start: int, stop: int) -> None:
        with torch.inference_mode(inference):
            work(start, stop)

    pool = _thread_pool(os.getpid(), threads - 1)  # keyed by process: a forked child cannot use its parent's threads
    futures = [pool.submit(in_callers_mode, bounds[chunk], bounds[chunk + 1]) for chunk in range(threads - 1)]
    work(bounds[-2], bounds[-1])
    for future in futures:
        future.result()


# Below this many elements one thread is faster: handing a chunk to a thread and waiting for it costs more than the
# second thread saves.
_PARALLEL_FROM = 2**19


@functools.cache
def _thread_pool(process_id: int, workers: int) -> ThreadPoolExecutor:
    """One pool per process (``process_id`` is only the cache key) and per worker count."""
    return ThreadPoolExecutor(workers, thread_name_prefix="gat-chunks")


def sort_by(primary: torch.Tensor, secondary: torch.Tensor, size: int) -> torch.Tensor:
    """The permutation that sorts entries by ``primary``, then ``secondary`` (both in ``[0, size)``)."""
    return torch.argsort(primary * size + secondary)


def csr_pointers(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """CSR row pointers for entries sorted by ``rows``: ``pointers[r] : pointers[r + 1]`` are row ``r``'s."""
    pointers = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
    pointers[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return pointers
