"""Edge-list kernels behind the GAT layers: edge attention, neighbourhood softmax, weighted aggregation, dropout
and ELU (the input projection is :mod:`gat.projection`).

Everything here works on an edge list sorted by target node (:mod:`gat.neighbourhoods`), so that a node's
incoming edges are one contiguous run (CSR order). Memory is O(E * heads + N * heads * features): no N x N tensor
and no per-edge copy of the feature vectors is ever made.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gat.neighbourhoods import AggregationPlan, Neighbourhoods


def neighbourhood_softmax(scores: torch.Tensor, neighbourhoods: Neighbourhoods) -> torch.Tensor:
    r"""Softmax of edge ``scores`` (``[E, H]``) over each target node's incoming edges, per head.

    :math:`\alpha_{ij} = \exp(e_{ij} - m_i) / \sum_{l} \exp(e_{il} - m_i)` with :math:`m_i` the neighbourhood
    maximum, so no exponent exceeds 0 and nothing overflows. Edges are sorted by target, so every
    neighbourhood is a contiguous segment and the max and sum are segment reductions over ``row_pointers``.
    """
    return _NeighbourhoodSoftmax.apply(scores, neighbourhoods)


def _softmax(
    scores: torch.Tensor, neighbourhoods: Neighbourhoods, upper_bound: torch.Tensor | None = None
) -> torch.Tensor:
    """The forward of :func:`neighbourhood_softmax`.

    Softmax is shift-invariant: subtracting any per-node value :math:`m_i` from node ``i``'s scores changes
    nothing but the numerics. The neighbourhood maximum (a segment reduction over all edges) makes every
    exponent at most 0, so nothing overflows. A cheaper ``upper_bound`` (``[N, H]``, at least every score into
    each node) does the same, but if it lies far above all of a neighbourhood's scores, their exponentials
    underflow and lose precision; the maximum is then used after all. Overwrites ``scores`` unless an
    ``upper_bound`` is given.
    """
    if upper_bound is not None:
        exponentials = (scores - neighbourhoods.at_target(upper_bound)).exp_()
        denominators = neighbourhoods.at_target(neighbourhoods.sum_by_target(exponentials))
        # An exponential below finfo.tiny is a subnormal (or 0); where every sum is at least tiny / eps, such a
        # term is less than one rounding error of its sum, so losing its precision changes nothing.
        finfo = torch.finfo(scores.dtype)
        if denominators.numel() == 0 or bool(denominators.amin() >= finfo.tiny / finfo.eps):
            return exponentials.div_(denominators)
        scores = scores.clone()
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
    def backward(ctx, grad_attention: torch.Tensor) -> tuple[torch.Tensor, None]:
        (attention,) = ctx.saved_tensors
        return _softmax_backward(attention, grad_attention, ctx.neighbourhoods), None


def edge_attention(node_scores: torch.Tensor, neighbourhoods: Neighbourhoods, negative_slope: float) -> torch.Tensor:
    r"""GAT attention coefficients from the two per-node halves of the score.

    :math:`\alpha_{ij} = \mathrm{softmax}_j\big(\mathrm{LeakyReLU}(s_j + t_i)\big)` over each target's
    neighbourhood, where ``node_scores[:, 0]`` is the source half :math:`s = \mathbf{a}_s^\top \mathbf{W}\mathbf{h}`
    and ``node_scores[:, 1]`` the target half :math:`t = \mathbf{a}_t^\top \mathbf{W}\mathbf{h}`.

    One autograd function for gather, add, LeakyReLU and softmax: on small graphs a training step is dominated by
    the number of operations, not their size, and this one needs three ``[E, H]`` passes backward instead of
    a dozen.

    Args:
        node_scores: ``[N, 2, H]`` (only the first ``neighbourhoods.num_targets`` target halves are read).
        neighbourhoods: the target-sorted edges (:func:`build_neighbourhoods`).
        negative_slope: the LeakyReLU slope.

    Returns:
        ``[E, H]`` attention, summing to 1 over every target's incoming edges.
    """
    return _EdgeAttention.apply(node_scores, neighbourhoods, negative_slope)


class _EdgeAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, node_scores: torch.Tensor, neighbourhoods: Neighbourhoods, negative_slope: float) -> torch.Tensor:
        source_scores, target_scores = node_scores[:, 0], node_scores[: neighbourhoods.num_targets, 1]
        scores = neighbourhoods.at_source(source_scores)
        scores += neighbourhoods.at_target(target_scores)
        activated = F.leaky_relu_(scores, negative_slope)
        if activated.device.type == "cpu":
            # LeakyReLU is increasing, so every score into node i, LeakyReLU(s_j + t_i), is at most
            # LeakyReLU(max_j s_j + t_i) over ALL nodes j: a softmax shift from one max over the nodes instead of
            # a segment max over the edges (see _softmax for when it falls back to that).
            upper_bound = F.leaky_relu(source_scores.amax(0) + target_scores, negative_slope)
            attention = _softmax(activated, neighbourhoods, upper_bound)
        else:
            # On a GPU the segment max is one cheap kernel, and the bound's fallback test would need the host to
            # wait for the device, which a captured CUDA graph cannot do (gat.steps.CapturedStep).
            attention = _softmax(activated.clone(), neighbourhoods)
        # LeakyReLU keeps the sign, so its output is enough for its derivative (1 or the slope).
        ctx.save_for_backward(attention, activated if ctx.needs_input_grad[0] else None)
        ctx.neighbourhoods, ctx.negative_slope = neighbourhoods, negative_slope
        return attention

    @staticmethod
    def backward(ctx, grad_attention: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        attention, activated = ctx.saved_tensors
        neighbourhoods: Neighbourhoods = ctx.neighbourhoods
        grad_activated = _softmax_backward(attention, grad_attention, neighbourhoods)
        grad_scores = torch.ops.aten.leaky_relu_backward(grad_activated, activated, ctx.negative_slope, True)
        # Each half was gathered from its node, so its gradient is the sum over that node's edges (no edge reads
        # the target half of a node that is no target).
        grad_targets = neighbourhoods.sum_by_target(grad_scores)
        if neighbourhoods.num_targets < neighbourhoods.num_nodes:
            grad_targets = F.pad(grad_targets, (0, 0, 0, neighbourhoods.num_nodes - neighbourhoods.num_targets))
        return torch.stack([neighbourhoods.sum_by_source(grad_scores), grad_targets], dim=1), None, None


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
    """Weighted neighbourhood sum as a CSR product, with a hand-written backward.

    Autograd through gather-multiply-scatter would store an ``[E, H, F]`` message tensor; here the backward
    needs only the inputs: ``grad_values = A^T @ grad_out`` (another CSR product) and
    ``grad_weights[e] = <grad_out[target_e], values[source_e]>``, a sampled dense-dense product (SDDMM)
    evaluated only on A's nonzeros.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, plan: AggregationPlan) -> torch.Tensor:
        _, num_heads, num_features = values.shape
        out = plan.product(plan.csr_values(weights), values.reshape(plan.num_columns, num_features))
        ctx.save_for_backward(weights, values)
        ctx.plan = plan
        return out.view(-1, num_heads, num_features)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        weights, values = ctx.saved_tensors
        plan: AggregationPlan = ctx.plan
        flat_grad = grad_out.reshape(plan.num_rows, -1).contiguous()
        grad_weights = grad_values = None
        if ctx.needs_input_grad[0]:
            grad_weights = plan.edge_values(plan.sampled_products(flat_grad, values.reshape(plan.num_columns, -1)))
        if ctx.needs_input_grad[1]:
            grad_values = plan.transposed_product(weights, flat_grad).view_as(values)
        return grad_weights, grad_values, None


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
    num_dropped = round(p * _LEVELS)
    if num_dropped >= _LEVELS:
        return torch.zeros_like(x)
    mask_type = torch.promote_types(x.dtype, torch.float32)
    scaled_mask = _scaled_keep_mask(x.numel(), num_dropped, mask_type, x.device).view_as(x)
    return x * scaled_mask.to(x.dtype)  # a no-op for float32/64; half precision is masked in float32 first


_LEVELS = 2**16  # the number of values a dropout draw can take


def _scaled_keep_mask(count: int, num_dropped: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``count`` values of ``dtype``: the inverse keep probability where a 16-bit random integer (four per word
    of :func:`random_words`, each of the ``2**16`` values equally likely) is at least the threshold below which
    ``num_dropped`` of them lie, and 0 elsewhere."""
    threshold, scale = num_dropped - _LEVELS // 2, _LEVELS / (_LEVELS - num_dropped)
    num_words = (count + 3) // 4
    if device.type == "cpu":
        # numpy compares and converts the integers in two calls where torch needs four, and inside a training
        # step each call costs far more than its arithmetic (benchmarks/NOTES.md, session 12).
        uniform = _cpu_random_words(num_words).view(np.int16)[:count]
        mask = (uniform >= threshold).astype(np.float64 if dtype == torch.float64 else np.float32)
        mask *= mask.dtype.type(scale)
        return torch.from_numpy(mask)
    uniform = random_words(num_words, device).view(torch.int16)[:count]
    # In floating point these integers are exact: clamp(uniform - threshold + 1, 0, 1) is 1 for kept and 0 for
    # dropped elements, one pass cheaper than comparing (a bool tensor) and converting.
    return uniform.to(dtype).sub_(threshold - 1).clamp_(0, 1).mul_(scale)


def random_words(count: int, device: torch.device) -> torch.Tensor:
    """``count`` uniformly random 64-bit words (``int64``), drawn from torch's default generator.

    On CPU, torch's generator (a Mersenne twister, one thread) makes ~200 M words/s; numpy's SFC64 makes them
    ~2.5x faster. So on CPU three words drawn from torch's generator become SFC64's state, and SFC64 makes the
    rest: the words are still a function of torch's RNG state alone, so ``torch.manual_seed`` and a
    checkpoint's saved RNG state reproduce them exactly. (Setting the state directly is ~5x cheaper than
    seeding a new generator, which a step with four dropouts would pay four times.) Other devices draw with
    torch on the device.
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


def elu(x: torch.Tensor) -> torch.Tensor:
    r"""ELU, :math:`x` for :math:`x > 0` and :math:`e^x - 1` otherwise, in four cheap passes and a one-multiply
    backward.

    With :math:`u = e^{\min(x, 0)}`: :math:`\mathrm{ELU}(x) = \max(u - 1, x)` (for :math:`x > 0`, :math:`u - 1 = 0
    < x`; for :math:`x \le 0`, :math:`e^x - 1 \ge x`), and the derivative is :math:`u` itself (1 for :math:`x > 0`,
    :math:`e^x` otherwise), so the backward pass is ``grad * u``. torch's CPU ELU evaluates ``expm1`` per element
    and costs ~2.5x more forward and backward. ``exp(x) - 1`` instead of ``expm1(x)`` is off by at most
    :math:`2^{-24}` in float32 for :math:`x` near 0, below the rounding of the next layer's products.
    """
    return _ELU.apply(x)


class _ELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        derivative = x.clamp(max=0).exp_()
        ctx.save_for_backward(derivative)
        return torch.maximum(derivative - 1, x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (derivative,) = ctx.saved_tensors
        return grad_out * derivative
