"""The edge-list kernels on their own: dropout, the cached sparse projection, the aggregation plan."""

import pytest
import torch
import torch.nn.functional as F

from gat.neighbourhoods import AggregationPlan, build_neighbourhoods
from gat.ops import aggregate, dropout, elu, project
from tests.test_layers import random_graph


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout_keeps_the_expected_share_and_preserves_the_mean(p):
    torch.manual_seed(0)
    x = torch.rand(400, 500, dtype=torch.float64) + 0.5
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


def test_sparse_dropout_drops_only_stored_values_and_keeps_the_structure():
    torch.manual_seed(0)
    x = (torch.rand(300, 200) * (torch.rand(300, 200) < 0.05)).to_sparse_csr()
    dropped = dropout(x, 0.5, training=True)
    assert dropped.layout == torch.sparse_csr
    assert torch.equal(dropped.crow_indices(), x.crow_indices()) and torch.equal(dropped.col_indices(), x.col_indices())
    kept = dropped.values() != 0
    assert kept.float().mean().item() == pytest.approx(0.5, abs=0.03)
    torch.testing.assert_close(dropped.values()[kept], x.values()[kept] * 2)  # p = 0.5 is exact in 16 bits


def test_elu_matches_torch_in_value_and_gradient():
    torch.manual_seed(0)
    edge_cases = torch.tensor([0.0, -0.0, 1e-300, -1e-300, -800.0, 800.0], dtype=torch.float64)
    x = torch.cat([torch.randn(500, dtype=torch.float64) * 5, edge_cases])
    ours, reference = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_out = torch.randn_like(x)
    elu(ours).backward(grad_out)
    F.elu(reference).backward(grad_out)
    torch.testing.assert_close(elu(x), F.elu(x), rtol=0, atol=1e-15)
    torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-15, atol=0)
    assert torch.autograd.gradcheck(elu, (torch.randn(30, dtype=torch.float64, requires_grad=True),))
    assert elu(torch.tensor([float("nan")])).isnan().all()


def test_elu_float32_error_is_below_one_rounding_of_one():
    x = torch.linspace(-20, 20, 100_001)
    assert (elu(x).double() - F.elu(x.double())).abs().max() <= 2**-24


def test_sparse_projection_matches_dense_and_rebuilds_its_cache_for_new_features():
    torch.manual_seed(0)
    weight = torch.randn(6, 30, dtype=torch.float64, requires_grad=True)
    for density in (0.1, 0.3):  # two different sparsity structures, one after the other
        x = torch.randn(50, 30, dtype=torch.float64) * (torch.rand(50, 30) < density)
        for features in (x.to_sparse_csr(), dropout(x.to_sparse_csr(), 0.5, True)):
            dense = features.to_dense()
            grad_out = torch.randn(50, 6, dtype=torch.float64)
            sparse_grad = torch.autograd.grad(project(features, weight), weight, grad_out)[0]
            dense_grad = torch.autograd.grad(dense @ weight.t(), weight, grad_out)[0]
            torch.testing.assert_close(project(features, weight), dense @ weight.t(), rtol=0, atol=1e-12)
            torch.testing.assert_close(sparse_grad, dense_grad, rtol=0, atol=1e-12)


def test_aggregate_matches_a_dense_weighted_sum():
    torch.manual_seed(0)
    edge_index = random_graph(40, 200, seed=11, isolated=3)
    neighbourhoods = build_neighbourhoods(edge_index, 40, add_self_loops=False)
    weights = torch.rand(neighbourhoods.source.numel(), 3, dtype=torch.float64, requires_grad=True)
    values = torch.randn(40, 3, 5, dtype=torch.float64, requires_grad=True)
    dense = torch.zeros(3, 40, 40, dtype=torch.float64)
    dense = dense.index_put(
        (
            torch.arange(3).repeat(len(weights)),
            neighbourhoods.target.repeat_interleave(3),
            neighbourhoods.source.repeat_interleave(3),
        ),
        weights.reshape(-1),
    )
    expected = torch.einsum("hij,jhf->ihf", dense, values)
    torch.testing.assert_close(aggregate(weights, values, neighbourhoods), expected, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w, v: aggregate(w, v, neighbourhoods), (weights, values))


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
            csr_order, transpose_order = plan.csr_order, plan.transpose_order.long()
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
