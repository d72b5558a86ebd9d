"""The edge-list kernels on their own: dropout, GAT attention, the aggregation plan."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

import gat.nn.kernels.neighbourhoods
from gat.nn.kernels.neighbourhoods import (
    AggregationPlan,
    build_neighbourhoods,
    csr_product,
    gather_elements,
    gather_flat,
    scatter_flat,
    select_rows,
)
from gat.nn.kernels.ops import aggregate, dropout, gat_attention, random_words
from tests.helpers import random_graph


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout_keeps_the_expected_share_and_preserves_the_mean(p, device):
    torch.manual_seed(0)
    x = torch.rand(400, 500, dtype=torch.float64, device=device) + 0.5
    dropped = dropout(x, p, training=True)
    kept = dropped != 0
    assert kept.double().mean().item() == pytest.approx(1 - p, abs=0.01)
    # inverted dropout: survivors rescaled by 1 / keep-probability, with p rounded to a multiple of 2**-16
    keep_probability = 1 - round(p * 2**16) / 2**16
    assert keep_probability == pytest.approx(1 - p, abs=2**-17)
    torch.testing.assert_close(dropped[kept], x[kept] / keep_probability, rtol=1e-15, atol=0)
    assert dropped.mean().item() == pytest.approx(x.mean().item(), rel=0.01)


def test_dropout_is_identity_in_eval_and_zero_at_p_one():
    x = torch.rand(10, 4)
    assert dropout(x, 0.6, training=False) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_keeps_exactly_the_elements_whose_16_bit_draw_reaches_the_threshold(dtype, device):
    # The rule in its plain form: four 16-bit integers per random word; keep where one is at least the threshold
    # below which round(p * 2**16) of the 2**16 values lie; survivors scaled by 1 / keep probability, rounded once.
    p, count = 0.6, 1_000_003  # ~15 draws hit the threshold itself; not a multiple of 4: the last word in part
    torch.manual_seed(11)
    uniform = random_words((count + 3) // 4, device).view(torch.int16)[:count]
    torch.manual_seed(11)
    dropped = dropout(torch.ones(count, dtype=dtype, device=device), p, training=True)
    num_dropped = round(p * 2**16)
    scale = torch.tensor(2**16 / (2**16 - num_dropped), dtype=dtype)
    expected = torch.where(
        uniform >= num_dropped - 2**15, scale.to(device), torch.zeros((), dtype=dtype, device=device)
    )
    assert torch.equal(dropped, expected)


def test_dropout_of_nothing_is_nothing(device):
    empty = torch.rand(5, 0, 3, device=device)
    assert dropout(empty, 0.6, training=True).shape == (5, 0, 3)
    no_values = torch.zeros(4, 6, device=device).to_sparse_csr()
    assert dropout(no_values, 0.6, training=True).values().numel() == 0


def test_sparse_dropout_drops_only_stored_values_and_keeps_the_structure(device):
    torch.manual_seed(0)
    x = (torch.rand(300, 200) * (torch.rand(300, 200) < 0.05)).to_sparse_csr().to(device)
    dropped = dropout(x, 0.5, training=True)
    assert dropped.layout == torch.sparse_csr
    assert torch.equal(dropped.crow_indices(), x.crow_indices()) and torch.equal(dropped.col_indices(), x.col_indices())
    kept = dropped.values() != 0
    assert kept.float().mean().item() == pytest.approx(0.5, abs=0.03)
    torch.testing.assert_close(dropped.values()[kept], x.values()[kept] * 2)  # p = 0.5 is exact in 16 bits


def test_random_words_follow_torchs_seed_and_every_bit_is_fair(device):
    torch.manual_seed(5)
    first, second = random_words(1000, device), random_words(1000, device)
    torch.manual_seed(5)
    assert torch.equal(random_words(1000, device), first)  # a function of torch's RNG state
    assert not torch.equal(first, second)  # and each call moves that state on
    words = random_words(200_000, device)
    assert words.device.type == device
    bit_means = ((words[:, None] >> torch.arange(64, device=device)) & 1).double().mean(0)
    assert (bit_means - 0.5).abs().max() < 0.005  # 4.5 standard deviations for 200k draws


def reference_edge_attention(node_scores: torch.Tensor, neighbourhoods, negative_slope: float) -> torch.Tensor:
    """Softmax of LeakyReLU(s_j + t_i) over each target's incoming edges, one neighbourhood at a time, float64."""
    scores = node_scores.double()
    edge_scores = F.leaky_relu(scores[neighbourhoods.source, 0] + scores[neighbourhoods.target, 1], negative_slope)
    attention = torch.empty_like(edge_scores)
    for node in range(neighbourhoods.num_targets):
        incoming = neighbourhoods.target == node
        attention[incoming] = torch.softmax(edge_scores[incoming], dim=0)
    return attention


def scoring_inputs(node_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(projected, att_source, att_target)`` whose node scores are exactly ``node_scores`` (``[N, 2, H]``): two
    features per head, the source score and the target score, each picked out by a one-hot attention vector."""
    projected = node_scores.transpose(1, 2).contiguous()  # [N, H, 2]
    num_heads = node_scores.shape[2]
    one_hot = torch.eye(2, dtype=node_scores.dtype, device=node_scores.device)
    return projected, one_hot[0].expand(1, num_heads, 2).clone(), one_hot[1].expand(1, num_heads, 2).clone()


def reference_aggregation(attention: torch.Tensor, projected: torch.Tensor, neighbourhoods) -> torch.Tensor:
    """out_i = sum over edges j -> i of attention_ji * projected_j, per head, by index_add."""
    messages = attention[:, :, None] * projected[neighbourhoods.source]
    out = torch.zeros(neighbourhoods.num_targets, *projected.shape[1:], dtype=projected.dtype, device=projected.device)
    return out.index_add(0, neighbourhoods.target, messages)


@pytest.mark.parametrize(
    "dtype, gap", [(torch.float32, 0.0), (torch.float32, 300.0), (torch.float32, 1000.0), (torch.float64, 1e4)]
)
def test_gat_attention_matches_a_per_neighbourhood_softmax(dtype, gap, device):
    # Nodes 0-9 only hear nodes whose source scores lie `gap` below every other node's (a fifth of that after the
    # LeakyReLU): a softmax shifted by anything but each neighbourhood's own maximum underflows there, from a gap
    # of ~450 (float32) or ~3700 (float64).
    torch.manual_seed(0)
    num_nodes = 40
    edge_index = random_graph(num_nodes, 200, seed=3)
    low = edge_index[1] < 10
    edge_index[0, low] = edge_index[0, low] % 10  # nodes 0-9 hear only nodes 0-9
    neighbourhoods = build_neighbourhoods(edge_index, num_nodes)
    node_scores = torch.randn(num_nodes, 2, 3, dtype=dtype) * 3
    node_scores[:10, 0] -= gap
    expected = reference_edge_attention(node_scores, neighbourhoods, 0.2).to(device=device, dtype=dtype)
    neighbourhoods = build_neighbourhoods(edge_index.to(device), num_nodes)
    inputs = scoring_inputs(node_scores.to(device))
    aggregated, attention = gat_attention(*inputs, neighbourhoods, negative_slope=0.2, dropout_p=0.0)
    # float32: s_j + t_i near -1000 is rounded to ~3e-5, which the softmax turns into a relative error of that size
    tolerance = {"rtol": 1e-4 if dtype == torch.float32 else 1e-12, "atol": 1e-4 if dtype == torch.float32 else 0}
    torch.testing.assert_close(attention, expected, rtol=tolerance["rtol"], atol=0)
    torch.testing.assert_close(aggregated, reference_aggregation(expected, inputs[0], neighbourhoods), **tolerance)
    if dtype == torch.float64:
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        assert torch.autograd.gradcheck(lambda *xs: gat_attention(*xs, neighbourhoods, 0.2, 0.0), leaves)


def test_gat_attention_with_fewer_targets_matches_the_reference():
    # Only nodes 0-14 are targets (of all their edges, and of self-loops); all 40 nodes are sources.
    torch.manual_seed(0)
    edge_index = random_graph(40, 300, seed=8)
    edge_index = edge_index[:, edge_index[1] < 15]
    neighbourhoods = build_neighbourhoods(edge_index, 40, num_targets=15)
    assert neighbourhoods.target.max() == 14 and neighbourhoods.row_pointers.numel() == 16
    node_scores = torch.randn(40, 2, 3, dtype=torch.float64)
    inputs = [tensor.requires_grad_() for tensor in scoring_inputs(node_scores)]
    aggregated, attention = gat_attention(*inputs, neighbourhoods, negative_slope=0.2, dropout_p=0.0)
    expected = reference_edge_attention(node_scores, neighbourhoods, 0.2)
    torch.testing.assert_close(attention, expected, rtol=1e-12, atol=0)
    expected_aggregation = reference_aggregation(expected, inputs[0].detach(), neighbourhoods)
    torch.testing.assert_close(aggregated, expected_aggregation, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *xs: gat_attention(*xs, neighbourhoods, 0.2, 0.0), inputs)


def test_gat_attention_drops_attention_and_values_as_dropout_does_and_differentiates_through_the_masks(device):
    # The attention dropout inside draws the same mask as dropout() would from the same random state, then the
    # values' mask; re-seeded before every call, the function is deterministic and gradcheck can compare its
    # backward with finite differences of the dropped aggregation (several heads and features, real attention
    # vectors). The scores read the undropped values: only the aggregation sees the values' mask.
    torch.manual_seed(0)
    neighbourhoods = build_neighbourhoods(random_graph(30, 150, seed=2, isolated=2).to(device), 30)
    projected = torch.randn(30, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    att_source, att_target = (
        torch.randn(1, 3, 4, dtype=torch.float64, device=device, requires_grad=True) for _ in ("source", "target")
    )

    def dropped(*inputs: torch.Tensor, value_dropout_p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(5)
        return gat_attention(*inputs, neighbourhoods, 0.2, dropout_p=0.5, value_dropout_p=value_dropout_p)

    aggregated, attention = dropped(projected, att_source, att_target)
    undropped = gat_attention(projected, att_source, att_target, neighbourhoods, 0.2, 0.0)
    torch.testing.assert_close(attention, undropped[1])
    torch.manual_seed(5)
    weights = dropout(attention.detach(), 0.5, training=True)
    values = dropout(projected.detach(), 0.5, training=True)
    torch.testing.assert_close(aggregated, aggregate(weights, values, neighbourhoods), rtol=1e-12, atol=1e-12)
    only_attention = dropped(projected, att_source, att_target, value_dropout_p=0.0)[0]
    torch.testing.assert_close(only_attention, aggregate(weights, projected.detach(), neighbourhoods))
    assert not torch.allclose(aggregated, only_attention)
    assert torch.autograd.gradcheck(dropped, (projected, att_source, att_target))

    def loss_of_both_outputs(*inputs: torch.Tensor) -> torch.Tensor:  # both gradients arrive in one backward
        aggregated, attention = dropped(*inputs)
        return aggregated.square().sum() + attention.square().sum()

    assert torch.autograd.gradcheck(loss_of_both_outputs, (projected, att_source, att_target))


@pytest.mark.parametrize("num_targets", [None, 25])
def test_aggregate_matches_a_dense_weighted_sum(num_targets, device):
    torch.manual_seed(0)
    edge_index = random_graph(40, 200, seed=11, isolated=3).to(device)
    rows = num_targets or 40
    edge_index = edge_index[:, edge_index[1] < rows]
    neighbourhoods = build_neighbourhoods(edge_index, 40, add_self_loops=False, num_targets=num_targets)
    weights = torch.rand(neighbourhoods.source.numel(), 3, dtype=torch.float64, device=device, requires_grad=True)
    values = torch.randn(40, 3, 5, dtype=torch.float64, device=device, requires_grad=True)
    dense = torch.zeros(3, rows, 40, dtype=torch.float64, device=device)
    dense = dense.index_put(
        (
            torch.arange(3, device=device).repeat(len(weights)),
            neighbourhoods.target.repeat_interleave(3),
            neighbourhoods.source.repeat_interleave(3),
        ),
        weights.reshape(-1),
    )
    expected = torch.einsum("hij,jhf->ihf", dense, values)
    torch.testing.assert_close(aggregate(weights, values, neighbourhoods), expected, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w, v: aggregate(w, v, neighbourhoods), (weights, values))


def test_neighbourhoods_refuse_edges_outside_the_targets():
    edge_index = torch.tensor([[0, 1, 2], [1, 0, 3]])
    with pytest.raises(ValueError, match="points to node 3, outside the 2 target nodes"):
        build_neighbourhoods(edge_index, 4, num_targets=2)
    with pytest.raises(ValueError, match="num_targets must be between 0 and the 4 nodes"):
        build_neighbourhoods(edge_index, 4, num_targets=5)
    neighbourhoods = build_neighbourhoods(edge_index[:, :2], 4, num_targets=2)
    assert neighbourhoods.edge_index.tolist() == [[0, 1, 0, 1], [0, 0, 1, 1]]  # self-loops of targets only


def test_sampled_products_are_the_dense_products_at_the_plans_entries(device):
    # Written in place into a fresh pattern of zeros: the plan's own index arrays must come out untouched.
    torch.manual_seed(0)
    edge_index = random_graph(40, 200, seed=5, isolated=3).to(device)
    plan = build_neighbourhoods(edge_index, 40).plan(3)
    columns_before = plan.columns.clone()
    left = torch.randn(plan.num_rows, 5, dtype=torch.float64, device=device)
    right = torch.randn(plan.num_rows, 5, dtype=torch.float64, device=device)
    rows = torch.repeat_interleave(torch.arange(plan.num_rows, device=device), plan.row_pointers.diff().long())
    expected = (left @ right.T)[rows, plan.columns.long()]
    torch.testing.assert_close(plan.sampled_products(left, right), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(plan.columns, columns_before)


@pytest.mark.parametrize("add_self_loops", [True, False])
def test_aggregation_plan_layout_equals_sorting_every_entry(add_self_loops):
    # The plan regroups edges by index arithmetic; the plain definition sorts all E*H (row, column) keys.
    torch.manual_seed(0)
    for num_nodes, num_edges in ((1, 0), (7, 30), (25, 200)):
        edge_index = torch.randint(0, num_nodes, (2, num_edges))  # duplicates and self-loops included
        neighbourhoods = build_neighbourhoods(edge_index, num_nodes, add_self_loops)
        for num_heads in (1, 3, 8):
            plan = AggregationPlan.build(neighbourhoods, num_heads)
            heads = torch.arange(num_heads)
            rows = (neighbourhoods.target[:, None] * num_heads + heads).reshape(-1)
            columns = (neighbourhoods.source[:, None] * num_heads + heads).reshape(-1)
            size = num_nodes * num_heads
            by_row, by_column = torch.argsort(rows * size + columns), torch.argsort(columns * size + rows)
            csr_order, transpose_order = plan.csr_order, plan.transposed_order.long()  # flat edge entries
            if num_heads == 1:  # edges are sorted by target, then source: A's CSR order is the edge order
                assert torch.equal(csr_order, torch.arange(rows.numel()))
            assert torch.equal(torch.sort(csr_order).values, torch.arange(rows.numel()))  # a permutation
            assert torch.equal(rows[csr_order], rows[by_row]) and torch.equal(columns[csr_order], columns[by_row])
            assert torch.equal(plan.columns.long(), columns[by_row])
            assert torch.equal(plan.row_pointers.long(), torch.searchsorted(rows[by_row], torch.arange(size + 1)))
            assert torch.equal(columns[transpose_order], columns[by_column])
            assert torch.equal(rows[transpose_order], rows[by_column])
            assert torch.equal(plan.transposed_columns.long(), rows[by_column])
            assert torch.equal(
                plan.transposed_row_pointers.long(), torch.searchsorted(columns[by_column], torch.arange(size + 1))
            )


@pytest.mark.parametrize("shape", [(30,), (30, 1), (30, 8), (30, 3, 5)])
def test_both_row_selections_equal_index_select(shape, device):
    # On CUDA, select_rows takes the element-wise gather for rows of 16 bytes or more; on CPU, index_select.
    torch.manual_seed(0)
    values = torch.randn(shape, dtype=torch.float64, device=device)
    index = torch.randint(0, 30, (100,), device=device)
    expected = values.index_select(0, index)
    assert torch.equal(gather_elements(values, index), expected)
    assert torch.equal(gather_elements(values[:, None][:, 0], index), expected)  # a strided view too
    assert torch.equal(select_rows(values, index), expected)
    assert torch.equal(select_rows(values, index[:0]), expected[:0])


@pytest.mark.parametrize("parallel_from", [0, 2**40])  # every call cut into chunks / none
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_flat_gather_and_scatter_equal_index_select_and_scatter(parallel_from, threads, device, monkeypatch):
    # Chunk bounds for 3 threads split 1000 unevenly; the empty, one-element and int32 indices are edge cases.
    monkeypatch.setattr(gat.nn.kernels.neighbourhoods, "_PARALLEL_FROM", parallel_from)
    with torch_threads(threads):
        torch.manual_seed(0)
        for count in (0, 1, 2, 1000):
            values = torch.randn(count, dtype=torch.float64, device=device)
            permutation = torch.randperm(count, device=device)
            repeats = torch.randint(0, max(count, 1), (count // 2,), device=device)  # any index, not a permutation
            for index in (permutation, permutation.int(), repeats):
                assert torch.equal(gather_flat(values, index), values.index_select(0, index))
            expected = torch.empty_like(values).scatter_(0, permutation, values)
            assert torch.equal(scatter_flat(values, permutation), expected)
            assert torch.equal(scatter_flat(gather_flat(values, permutation), permutation), values)  # inverses
            with torch.no_grad():  # as inside an autograd function: the input requires grad, grad mode is off
                weights = values.clone().requires_grad_()
                assert torch.equal(gather_flat(weights, permutation), values[permutation])
                assert torch.equal(scatter_flat(weights, permutation), expected)
            with (
                torch.inference_mode()
            ):  # as in evaluation (gat.training.steps.evaluate), whose outputs the chunks write
                assert torch.equal(gather_flat(values, permutation), values[permutation])
                assert torch.equal(scatter_flat(values, permutation), expected)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5])
def test_csr_product_matches_a_dense_product(density, device):
    # Rows without entries (all of them at density 0) must come out 0.
    torch.manual_seed(0)
    dense_matrix = torch.rand(40, 30, dtype=torch.float64, device=device)
    dense_matrix *= torch.rand_like(dense_matrix) < density
    matrix = dense_matrix.to_sparse_csr()
    pointers, columns, values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    right = torch.randn(30, 7, dtype=torch.float64, device=device)
    expected = dense_matrix @ right
    torch.testing.assert_close(csr_product(pointers, columns, values, right), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(csr_product(pointers, columns, values, right.t().contiguous().t()), expected)
    # values=None: every stored entry counts as 1
    torch.testing.assert_close(csr_product(pointers, columns, None, right), (dense_matrix != 0).double() @ right)
    for index_type in (torch.int32, torch.int64):
        result = csr_product(pointers.to(index_type), columns.to(index_type), values, right)
        torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-12)
    assert csr_product(pointers, columns, values, right[:, :0]).shape == (40, 0)


def test_csr_product_is_the_same_bits_on_one_thread_and_on_several():
    # Each row is summed in order by one thread, so a run repeats bit for bit whatever the thread count; the inputs
    # require grad, as inside an autograd function (the product must not depend on autograd's bookkeeping either).
    torch.manual_seed(0)
    matrix = (torch.rand(3000, 2000) < 0.01).float().mul_(torch.rand(3000, 2000)).to_sparse_csr()
    values = matrix.values().requires_grad_()
    dense = torch.randn(2000, 16, requires_grad=True)
    results = []
    for threads in (1, 3):
        with torch_threads(threads), torch.no_grad():
            results.append(csr_product(matrix.crow_indices(), matrix.col_indices(), values, dense))
    assert torch.equal(results[0], results[1])
    torch.testing.assert_close(results[0], matrix.to_dense() @ dense.detach(), rtol=1e-5, atol=1e-5)
