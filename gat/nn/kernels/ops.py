"""Edge-list kernels behind the GAT layers: GAT attention, neighbourhood softmax, weighted aggregation and dropout
(the input projection is :mod:`gat.nn.kernels.projection`).

Everything here works on an edge list sorted by target node (:mod:`gat.nn.kernels.neighbourhoods`), so that a node's
incoming edges are one contiguous run (CSR order). Memory is O(E * heads + N * heads * features): no N x N tensor
and no per-edge copy of the feature vectors is ever made.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from gat.nn.kernels.neighbourhoods import AggregationPlan, Neighbourhoods


def neighbourhood_softmax(scores: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    r"""Softmax of edge ``scores`` (``[E, H]``) over each target node's incoming edges, per head.

    :math:`\alpha_{ij} = \exp(e_{ij} - m_i) / \sum_{l} \exp(e_{il} - m_i)` with :math:`m_i` the neighbourhood
    maximum, so no exponent exceeds 0 and nothing overflows. Edges are sorted by target, so every
    neighbourhood is a contiguous segment and the max and sum are segment reductions over ``row_pointers``.
    """
    return _NeighbourhoodSoftmax.apply(scores, neighbourhoods)


def _softmax(scores: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    """The forward of :func:`neighbourhood_softmax`; overwrites ``scores``. Subtracting each neighbourhood's
    maximum (a segment reduction) changes nothing but the numerics: every exponent is at most 0."""
    maximum = torch.segment_reduce(scores, "max", offsets=neighbourhoods.row_pointers, axis=0)
    exponentials = scores.sub_(neighbourhoods.at_target(maximum)).exp_()
    return exponentials.div_(neighbourhoods.at_target(neighbourhoods.sum_by_target(exponentials)))


def _softmax_backward(
    attention: torch.Tensor, grad_attention: torch.Tensor, neighbourhoods: Neighbourhoods
) -> torch.Tensor:
    r"""The softmax Jacobian-vector product needs only the output:
    :math:`\partial L / \partial e_{ij} = \alpha_{ij} (g_{ij} - \sum_l \alpha_{il} g_{il})`."""
    weighted = neighbourhoods.sum_by_target(grad_attention * attention)
    return attention * (grad_attention - neighbourhoods.at_target(weighted))


class _NeighbourhoodSoftmax(torch.autograd.Function):
    """Fused forward and backward: autograd through max/exp/sum/divide would keep four ``[E, H]`` tensors."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
        attention = _softmax(scores.clone(), neighbourhoods)
        ctx.save_for_backward(attention)
        ctx.neighbourhoods = neighbourhoods
        return attention

    @staticmethod
    @once_differentiable  # its backward uses detached CSR products: no second derivative
    def backward(ctx, grad_attention: torch.Tensor) -> tuple[torch.Tensor, None]:
        (attention,) = ctx.saved_tensors
        return _softmax_backward(attention, grad_attention, ctx.neighbourhoods), None


def gat_attention(
    projected: torch.Tensor,
    att_source: torch.Tensor,
    att_target: torch.Tensor,
    neighbourhoods: Neighbourhoods,
    negative_slope: float,
    dropout_p: float,
    value_dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""GAT's attention and aggregation after the projection, as one autograd function.

    Per head :math:`k`, with source scores :math:`s_j = \mathbf{a}_s^{k\top} \mathbf{W}^k \mathbf{h}_j` and target
    scores :math:`t_i = \mathbf{a}_t^{k\top} \mathbf{W}^k \mathbf{h}_i` of every node:

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)} \mathrm{LeakyReLU}(s_j + t_i), \qquad
        \text{out}_i = \sum_{j \in \mathcal{N}(i)} \mathrm{dropout}(\alpha_{ij}) \,
            \mathrm{dropout}(\mathbf{W}^k \mathbf{h}_j).

    The scores read the projected features as they are; only the aggregated values are dropped (with
    ``value_dropout_p``, a mask of its own per node, head and feature), as in the GAT paper's code.

    The scores of both halves and all heads come from ONE product of ``projected`` with a block-diagonal
    ``[2 * H, H * F]`` matrix of the attention vectors, so each is one dot product per *node*; only their sum is
    formed per edge. On a small graph a training step costs per operation, not per element, and separate
    autograd functions for the score product, the attention, its dropout and the aggregation would cost about
    twenty more operations a layer, forward and backward. One function also adds the two gradients of
    ``projected`` (through the scores and through the aggregated values) in the product that computes one of
    them, instead of in an extra pass.

    Args:
        projected: ``[N, H, F]``, the projected node features :math:`\mathbf{W}\mathbf{h}`.
        att_source, att_target: ``[1, H, F]``, the attention vectors :math:`\mathbf{a}_s`, :math:`\mathbf{a}_t`.
        neighbourhoods: the target-sorted edges (:func:`gat.nn.kernels.neighbourhoods.build_neighbourhoods`).
        negative_slope: the LeakyReLU slope.
        dropout_p: dropout probability on the attention coefficients (0 in evaluation), as :func:`dropout`.
        value_dropout_p: dropout probability on the aggregated values ``projected`` (0 in evaluation); its mask
            is drawn after the attention's.

    Returns:
        ``(aggregated, attention)``: ``[T, H, F]`` (``T = neighbourhoods.num_targets``) and the ``[E, H]``
        attention before dropout, summing to 1 over every target's incoming edges.
    """
    return _GATAttention.apply(
        projected, att_source, att_target, neighbourhoods, negative_slope, dropout_p, value_dropout_p
    )


class _GATAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, projected, att_source, att_target, neighbourhoods, negative_slope, dropout_p, value_dropout_p):
        num_heads = projected.shape[1]
        halves = torch.cat([att_source, att_target])
        attention, activated = _edge_attention(_node_scores(projected, halves), neighbourhoods, negative_slope)
        mask = _keep_mask(attention, dropout_p)
        weights = attention if mask is None else attention * mask
        value_mask = _keep_mask(projected, value_dropout_p)
        plan = neighbourhoods.plan(num_heads)
        aggregated = _aggregate(weights, projected if value_mask is None else projected * value_mask, plan)
        ctx.save_for_backward(projected, halves, attention, activated, mask, value_mask)
        ctx.neighbourhoods, ctx.negative_slope = neighbourhoods, negative_slope
        ctx.vector_layout = att_source.shape, att_source.stride(), att_target.stride()
        ctx.set_materialize_grads(False)  # the attention is returned for inspection and rarely differentiated
        return aggregated, attention

    @staticmethod
    @once_differentiable  # its backward uses detached CSR products: no second derivative
    def backward(ctx, grad_aggregated: torch.Tensor | None, grad_attention: torch.Tensor | None) -> tuple:
        projected, halves, attention, activated, mask, value_mask = ctx.saved_tensors
        neighbourhoods: Neighbourhoods = ctx.neighbourhoods
        num_heads = projected.shape[1]
        grad_values = None
        if grad_aggregated is not None:
            # The dropped attention and values are recomputed (one multiply each) rather than kept from the forward
            # pass, and freed once the aggregation's gradients are made: at scale the attention is an [E, H] array.
            grad_dropped, grad_values = _aggregate_backward(
                attention if mask is None else attention * mask,
                projected if value_mask is None else projected * value_mask,
                neighbourhoods.plan(num_heads),
                grad_aggregated,
                needs_weights=True,
                needs_values=True,
            )
            grad_dropped = grad_dropped if mask is None else grad_dropped.mul_(mask)
            grad_attention = grad_dropped if grad_attention is None else grad_dropped + grad_attention
            if value_mask is not None:
                grad_values = grad_values.view_as(value_mask).mul_(value_mask)
        if grad_attention is None:
            return None, None, None, None, None, None, None
        grad_scores = _edge_attention_backward(attention, activated, grad_attention, neighbourhoods, ctx.negative_slope)
        grad_projected, grad_halves = _node_scores_backward(grad_scores, projected, halves, grad_values)
        shape, source_strides, target_strides = ctx.vector_layout
        grad_source = in_layout(grad_halves[:1], shape, source_strides)
        grad_target = in_layout(grad_halves[1:], shape, target_strides)
        return grad_projected.view_as(projected), grad_source, grad_target, None, None, None, None


def _node_scores(projected: torch.Tensor, halves: torch.Tensor) -> torch.Tensor:
    """Every node's source and target score per head, ``[N, 2, H]``, from ``projected`` ``[N, H, F]`` and the
    attention vectors ``halves`` ``[2, H, F]``: one matrix product with their block-diagonal ``[2 * H, H * F]``
    matrix, where per-head dot products would take a multiply and a reduction each way."""
    num_nodes, num_heads, num_features = projected.shape
    flat = projected.reshape(num_nodes, num_heads * num_features)
    return (flat @ _block_diagonal(halves).t()).view(num_nodes, 2, num_heads)


def _node_scores_backward(
    grad_scores: torch.Tensor, projected: torch.Tensor, halves: torch.Tensor, grad_values: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_node_scores` for ``projected`` (``[N, H * F]``, plus ``grad_values`` when given, the
    gradient that reached ``projected`` through the aggregation) and for ``halves`` (``[2, H, F]``)."""
    num_nodes, num_heads, num_features = projected.shape
    grad_scores = grad_scores.view(num_nodes, 2 * num_heads)
    score_weight = _block_diagonal(halves)
    if grad_values is None:
        grad_projected = grad_scores @ score_weight
    else:  # addmm adds the gradient through the scores to the one through the values as it computes it
        grad_projected = torch.addmm(grad_values.view(num_nodes, -1), grad_scores, score_weight)
    # Only the diagonal blocks of grad_scores^T @ flat are weights.
    flat = projected.reshape(num_nodes, num_heads * num_features)
    return grad_projected, _diagonal_blocks(grad_scores.t() @ flat, num_heads)


def in_layout(grad: torch.Tensor, shape: torch.Size, strides: tuple[int, ...]) -> torch.Tensor:
    """``grad`` in the memory layout (``strides``) of the parameter of that ``shape`` it is the gradient of.

    DistributedDataParallel copies every gradient into a bucket laid out like its parameter and warns when the
    strides differ, even those of size-1 dimensions (which ``contiguous()`` leaves as they are)."""
    if grad.stride() == tuple(strides):
        return grad
    return torch.empty_strided(shape, strides, dtype=grad.dtype, device=grad.device).copy_(grad)


def _block_diagonal(halves: torch.Tensor) -> torch.Tensor:
    """``[2 * H, H * F]`` from ``halves`` ``[2, H, F]``: row ``h`` holds ``halves[0, h]`` in head ``h``'s ``F``
    columns, row ``H + h`` holds ``halves[1, h]``, zeros elsewhere."""
    _, num_heads, num_features = halves.shape
    blocks = halves.new_zeros(2, num_heads, num_heads, num_features)
    blocks.diagonal(dim1=1, dim2=2).copy_(halves.transpose(1, 2))
    return blocks.view(2 * num_heads, num_heads * num_features)


def _diagonal_blocks(matrix: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The inverse of :func:`_block_diagonal`: ``[2, H, F]`` from the diagonal blocks of ``[2 * H, H * F]``."""
    return matrix.view(2, num_heads, num_heads, -1).diagonal(dim1=1, dim2=2).transpose(1, 2)


def _edge_attention(
    node_scores: torch.Tensor, neighbourhoods: Neighbourhoods, negative_slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[E, H]`` attention from ``node_scores`` ``[N, 2, H]`` (source halves, then target halves; only the first
    ``num_targets`` target halves are read), and the activated scores its backward needs."""
    source_scores, target_scores = node_scores[:, 0], node_scores[: neighbourhoods.num_targets, 1]
    scores = neighbourhoods.at_source(source_scores)
    scores += neighbourhoods.at_target(target_scores)
    activated = F.leaky_relu_(scores, negative_slope)
    return _softmax(activated.clone(), neighbourhoods), activated


def _edge_attention_backward(
    attention: torch.Tensor,
    activated: torch.Tensor,
    grad_attention: torch.Tensor,
    neighbourhoods: Neighbourhoods,
    negative_slope: float,
) -> torch.Tensor:
    """The gradient ``[N, 2, H]`` of the node scores from that of the attention (:func:`_edge_attention`)."""
    grad_activated = _softmax_backward(attention, grad_attention, neighbourhoods)
    # LeakyReLU keeps the sign, so its output is enough for its derivative (1 or the slope).
    grad_scores = torch.ops.aten.leaky_relu_backward(grad_activated, activated, negative_slope, True)
    # Each half was gathered from its node, so its gradient is the sum over that node's edges (no edge reads the
    # target half of a node that is no target).
    grad_targets = neighbourhoods.sum_by_target(grad_scores)
    if neighbourhoods.num_targets < neighbourhoods.num_nodes:
        grad_targets = F.pad(grad_targets, (0, 0, 0, neighbourhoods.num_nodes - neighbourhoods.num_targets))
    return torch.stack([neighbourhoods.sum_by_source(grad_scores), grad_targets], dim=1)


def aggregate(weights: torch.Tensor, values: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    r"""Per head, :math:`\text{out}_i = \sum_{j \to i} w_{ji} \, v_j`.

    Args:
        weights: ``[E, H]`` edge weights, aligned with ``neighbourhoods.source/target``.
        values: ``[N, H, F]`` node values.

    Returns:
        ``[T, H, F]``, one row per target node (``T = neighbourhoods.num_targets``).
    """
    return _Aggregate.apply(weights, values, neighbourhoods.plan(values.shape[1]))


class _Aggregate(torch.autograd.Function):
    """Weighted neighbourhood sum as a CSR product, with a hand-written backward (:func:`_aggregate_backward`)."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, plan: AggregationPlan) -> torch.Tensor:
        ctx.save_for_backward(weights, values)
        ctx.plan = plan
        return _aggregate(weights, values, plan)

    @staticmethod
    @once_differentiable  # its backward uses detached CSR products: no second derivative
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        weights, values = ctx.saved_tensors
        grad_weights, grad_values = _aggregate_backward(weights, values, ctx.plan, grad_out, *ctx.needs_input_grad[:2])
        return grad_weights, None if grad_values is None else grad_values.view_as(values), None


def _aggregate(weights: torch.Tensor, values: torch.Tensor, plan: AggregationPlan) -> torch.Tensor:
    """The forward of :func:`aggregate`: ``[E, H]`` weights, ``[N, H, F]`` values, ``[T, H, F]`` out."""
    _, num_heads, num_features = values.shape
    out = plan.product(plan.csr_values(weights), values.reshape(plan.num_columns, num_features))
    return out.view(-1, num_heads, num_features)


def _aggregate_backward(
    weights: torch.Tensor,
    values: torch.Tensor,
    plan: AggregationPlan,
    grad_out: torch.Tensor,
    needs_weights: bool,
    needs_values: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`_aggregate` (each only if needed): ``[E, H]`` for the weights, ``[N * H, F]`` for the
    values.

    Autograd through gather-multiply-scatter would store an ``[E, H, F]`` message tensor; these need only the
    inputs: ``grad_values = A^T @ grad_out`` (another CSR product) and ``grad_weights[e] = <grad_out[target_e],
    values[source_e]>``, a sampled dense-dense product (SDDMM) evaluated only on A's nonzeros.
    """
    flat_grad = grad_out.reshape(plan.num_rows, -1).contiguous()
    grad_weights = grad_values = None
    if needs_weights:
        grad_weights = plan.edge_values(plan.sampled_products(flat_grad, values.reshape(plan.num_columns, -1)))
    if needs_values:
        grad_values = plan.transposed_product(weights, flat_grad)
    return grad_weights, grad_values


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout for a dense or sparse CSR ``x``.

    On a sparse ``x`` only the stored values are dropped: the zeros stay zero under dense dropout too, so this is
    the same distribution at the cost of nnz random numbers instead of N * F.

    Each element is kept when a 16-bit random integer is at least ``round(p * 2**16)``: one 64-bit random word
    (:func:`random_words`) yields four such integers, which is far cheaper on CPU than uniform floats or
    ``F.dropout``'s Bernoulli sampling. So ``p`` is rounded to a multiple of ``2**-16`` (0.6 becomes 0.600006),
    and survivors are scaled by the exact inverse of the rounded keep probability, keeping the expectation of
    the output equal to ``x``.
    """
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        values = dropout(x.values(), p, training)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape, check_invariants=False)
    return x * _keep_mask(x, p)


def _keep_mask(x: torch.Tensor, p: float) -> torch.Tensor | None:
    """What :func:`dropout` with probability ``p`` multiplies a dense ``x`` by: 0 for dropped elements, the inverse
    keep probability for kept ones (``None`` for ``p == 0``: nothing is dropped)."""
    if p == 0.0:
        return None
    num_dropped = round(p * _LEVELS)
    if num_dropped >= _LEVELS:
        return torch.zeros_like(x)
    mask_type = torch.promote_types(x.dtype, torch.float32)
    scaled_mask = _scaled_keep_mask(x.numel(), num_dropped, mask_type, x.device).view_as(x)
    return scaled_mask.to(x.dtype)  # a no-op for float32/64; half precision is masked in float32 first


_LEVELS = 2**16  # the number of values a dropout draw can take


def _scaled_keep_mask(count: int, num_dropped: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``count`` values of ``dtype``: the inverse keep probability where a 16-bit random integer (four per word
    of :func:`random_words`, each of the ``2**16`` values equally likely) is at least the threshold below which
    ``num_dropped`` of them lie, and 0 elsewhere."""
    threshold, scale = num_dropped - _LEVELS // 2, _LEVELS / (_LEVELS - num_dropped)
    if count == 0:  # an empty array's stride may be 0, which view() cannot reinterpret
        return torch.empty(0, dtype=dtype, device=device)
    uniform = random_words((count + 3) // 4, device).view(torch.int16)[:count]
    # In floating point these integers are exact: clamp(uniform - threshold + 1, 0, 1) is 1 for kept and 0 for
    # dropped elements, one pass cheaper than comparing (a bool tensor) and converting.
    return uniform.to(dtype).sub_(threshold - 1).clamp_(0, 1).mul_(scale)


def random_words(count: int, device: torch.device) -> torch.Tensor:
    """``count`` uniformly random 64-bit words (``int64``), drawn from torch's default generator.

    On CPU, torch's generator is a Mersenne twister on one thread; numpy's SFC64 makes words faster. So on CPU three
    words drawn from torch's generator become SFC64's state, and SFC64 makes the rest: the words are still a function of
    torch's RNG state alone, so ``torch.manual_seed`` and a checkpoint's saved RNG state reproduce them exactly.
    (Setting the state directly is cheaper than seeding a new generator, which a step with four dropouts would pay four
    times.) Other devices draw with torch on the device.
    """
    if torch.device(device).type != "cpu":
        return torch.empty(count, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    return torch.from_numpy(_cpu_random_words(count).view(np.int64))


def _cpu_random_words(count: int) -> np.ndarray:
    """:func:`random_words` on CPU, as the ``uint64`` numpy array SFC64 makes."""
    seed_words = torch.empty(3, dtype=torch.int64).random_(-(2**63), 2**63 - 1).numpy().view(np.uint64)
    # SFC64's state is three free words and a counter (which guarantees a period of at least 2**64).
    state = {
        "bit_generator": "SFC64",
        "state": {"state": np.append(seed_words, np.uint64(1))},
        "has_uint32": 0,
        "uinteger": 0,
    }
    with _SFC64.lock:
        _SFC64.state = state
        return _SFC64.random_raw(count)


_SFC64 = np.random.SFC64()  # its state is set from torch's generator before every use
