"""Edge-list kernels behind the GAT layer: neighbourhoods, neighbourhood softmax, weighted aggregation.

Everything here works on an edge list sorted by target node, so that a node's incoming edges are one contiguous
run (CSR order). Memory is O(E * heads + N * heads * features): no N x N tensor and no per-edge copy of the
feature vectors is ever made.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# torch warns that sparse CSR is "beta" the first time one is built; we build them on purpose, on every forward.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


@dataclass
class Neighbourhoods:
    """A graph's edges grouped by target node: edge ``e`` carries a message ``source[e] -> target[e]``.

    Built once per graph (by :func:`build_neighbourhoods`) and reused by every forward pass.
    ``row_pointers[i] : row_pointers[i + 1]`` are the positions of node ``i``'s incoming edges.
    """

    source: torch.Tensor
    target: torch.Tensor
    row_pointers: torch.Tensor
    num_nodes: int
    _plans: dict[int, AggregationPlan] = field(default_factory=dict, repr=False)

    @property
    def edge_index(self) -> torch.Tensor:
        return torch.stack([self.source, self.target])

    @property
    def in_degree(self) -> torch.Tensor:
        return self.row_pointers.diff()

    def plan(self, num_heads: int) -> AggregationPlan:
        """The sparse-matrix layout for aggregating ``num_heads`` heads at once (cached per head count)."""
        if num_heads not in self._plans:
            self._plans[num_heads] = AggregationPlan.build(self, num_heads)
        return self._plans[num_heads]


def build_neighbourhoods(edge_index: torch.Tensor, num_nodes: int, add_self_loops: bool = True) -> Neighbourhoods:
    """Sort ``edge_index`` (``[2, E]``, row 0 = source, row 1 = target) by target, then source.

    With ``add_self_loops`` any self-loops in the input are dropped and exactly one per node is added, so every
    node attends to itself once (the GAT paper's neighbourhood includes the node).
    """
    source, target = edge_index[0], edge_index[1]
    if add_self_loops:
        keep = source != target
        loops = torch.arange(num_nodes, device=edge_index.device)
        source = torch.cat([source[keep], loops])
        target = torch.cat([target[keep], loops])
    order = torch.argsort(target * num_nodes + source)
    source, target = source[order], target[order]
    row_pointers = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    row_pointers[1:] = torch.cumsum(torch.bincount(target, minlength=num_nodes), 0)
    return Neighbourhoods(source=source, target=target, row_pointers=row_pointers, num_nodes=num_nodes)


@dataclass
class AggregationPlan:
    """Index arithmetic that turns the per-head aggregation into ONE sparse-matrix product.

    Head ``h`` of node ``i`` becomes row ``i * H + h`` of a block matrix ``A`` of shape ``[N*H, N*H]`` whose
    entry ``(i*H + h, j*H + h)`` is the weight of edge ``j -> i`` in head ``h``. Then
    ``out.view(N*H, F) = A @ values.view(N*H, F)`` aggregates every head of every node in one CSR product.
    ``csr_order`` gathers the flat ``[E, H]`` weights into A's CSR value order; ``transpose_order`` into the
    CSR value order of ``A^T`` (needed for the gradient with respect to the values).
    """

    num_rows: int
    row_pointers: torch.Tensor
    columns: torch.Tensor
    csr_order: torch.Tensor
    transposed_row_pointers: torch.Tensor
    transposed_columns: torch.Tensor
    transpose_order: torch.Tensor
    edge_order: torch.Tensor

    @classmethod
    def build(cls, neighbourhoods: Neighbourhoods, num_heads: int) -> AggregationPlan:
        num_rows = neighbourhoods.num_nodes * num_heads
        heads = torch.arange(num_heads, device=neighbourhoods.source.device)
        rows = (neighbourhoods.target[:, None] * num_heads + heads).reshape(-1)  # flat [E*H], (e, h) order
        columns = (neighbourhoods.source[:, None] * num_heads + heads).reshape(-1)
        csr_order = _sort_by(rows, columns, num_rows)
        transpose_order = _sort_by(columns, rows, num_rows)
        return cls(
            num_rows=num_rows,
            row_pointers=_pointers(rows, num_rows),
            columns=columns[csr_order],
            csr_order=csr_order,
            transposed_row_pointers=_pointers(columns, num_rows),
            transposed_columns=rows[transpose_order],
            transpose_order=transpose_order,
            edge_order=torch.argsort(csr_order),
        )

    def matrix(self, weights: torch.Tensor) -> torch.Tensor:
        """``A`` as a sparse CSR tensor filled with ``weights`` (``[E, H]``)."""
        values = weights.reshape(-1)[self.csr_order]
        return torch.sparse_csr_tensor(
            self.row_pointers, self.columns, values, (self.num_rows, self.num_rows), check_invariants=False
        )

    def transposed_matrix(self, weights: torch.Tensor) -> torch.Tensor:
        """``A^T`` as a sparse CSR tensor filled with ``weights`` (``[E, H]``)."""
        values = weights.reshape(-1)[self.transpose_order]
        return torch.sparse_csr_tensor(
            self.transposed_row_pointers,
            self.transposed_columns,
            values,
            (self.num_rows, self.num_rows),
            check_invariants=False,
        )


def _sort_by(primary: torch.Tensor, secondary: torch.Tensor, size: int) -> torch.Tensor:
    return torch.argsort(primary * size + secondary)


def _pointers(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    pointers = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
    pointers[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return pointers


def neighbourhood_softmax(scores: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    """Softmax of edge ``scores`` (``[E, H]``) over each target node's incoming edges, per head.

    Numerically stable: each neighbourhood's maximum is subtracted before ``exp`` so no term exceeds 1. The
    maximum is detached because softmax is shift-invariant: its gradient through the shift is exactly zero.
    """
    target = neighbourhoods.target
    index = target[:, None].expand_as(scores)
    maximum = scores.new_full((neighbourhoods.num_nodes, scores.shape[1]), float("-inf"))
    maximum = maximum.scatter_reduce(0, index, scores.detach(), reduce="amax", include_self=True)
    exponentials = (scores - maximum.index_select(0, target)).exp()
    denominators = torch.zeros_like(maximum).index_add_(0, target, exponentials)
    return exponentials / denominators.index_select(0, target)


def aggregate(weights: torch.Tensor, values: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    r"""Per head, :math:`\text{out}_i = \sum_{j \to i} w_{ji} \, v_j`.

    Args:
        weights: ``[E, H]`` edge weights, aligned with ``neighbourhoods.source/target``.
        values: ``[N, H, F]`` node values.

    Returns:
        ``[N, H, F]``.
    """
    return _Aggregate.apply(weights, values, neighbourhoods.plan(values.shape[1]))


class _Aggregate(torch.autograd.Function):
    """Weighted neighbourhood sum as a CSR product, with a hand-written backward.

    Autograd through gather-multiply-scatter would store an ``[E, H, F]`` message tensor; here the backward
    needs only the inputs: ``grad_values = A^T @ grad_out`` (another CSR product) and
    ``grad_weights[e] = <grad_out[target_e], values[source_e]>``, a sampled dense-dense product (SDDMM)
    evaluated only on A's nonzeros.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, plan: AggregationPlan) -> torch.Tensor:
        num_nodes, num_heads, num_features = values.shape
        flat_values = values.reshape(plan.num_rows, num_features)
        out = plan.matrix(weights) @ flat_values
        ctx.save_for_backward(weights, values)
        ctx.plan = plan
        return out.view(num_nodes, num_heads, num_features)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        weights, values = ctx.saved_tensors
        plan: AggregationPlan = ctx.plan
        flat_grad = grad_out.reshape(plan.num_rows, -1).contiguous()
        grad_weights = grad_values = None
        if ctx.needs_input_grad[0]:
            flat_values = values.reshape(plan.num_rows, -1)
            sampled = torch.sparse.sampled_addmm(plan.matrix(weights), flat_grad, flat_values.t(), beta=0.0)
            grad_weights = sampled.values()[plan.edge_order].view_as(weights)
        if ctx.needs_input_grad[1]:
            grad_values = (plan.transposed_matrix(weights) @ flat_grad).view_as(values)
        return grad_weights, grad_values, None


def sparse_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout that also works on a sparse CSR ``x`` by dropping its stored values.

    The zeros of a sparse matrix stay zero under dense dropout too, so dropping only the stored values draws
    from exactly the same distribution, at the cost of nnz instead of N * F random numbers.
    """
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        values = F.dropout(x.values(), p, training=True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape, check_invariants=False)
    return F.dropout(x, p, training=True)


def project(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` for a dense or sparse CSR ``x`` (the sparse product is what makes Cora's first layer fast)."""
    if x.layout == torch.sparse_csr:
        return torch.sparse.mm(x, weight.t())
    return F.linear(x, weight)
