"""GATLayer (and, in the tests shared by every attention layer, GATv2Layer) against a straightforward dense
reference (masked N x N softmax), in float64."""

import copy

import pytest
import torch

from gat.nn.kernels.neighbourhoods import build_neighbourhoods
from gat.nn.kernels.ops import neighbourhood_softmax
from gat.nn.layers import GATLayer, MeanLayer
from tests.helpers import (
    DENSE_REFERENCES,
    assert_matches_dense,
    dense_reference,
    each_layer,
    make_layer,
    mean_dense_reference,
    random_graph,
)


@pytest.mark.parametrize("num_nodes,num_edges,isolated", [(5, 8, 0), (40, 200, 5), (300, 3000, 30)])
@pytest.mark.parametrize("heads,concat", [(1, True), (4, True), (3, False)])
def test_matches_dense_reference(num_nodes, num_edges, isolated, heads, concat, device):
    torch.manual_seed(num_nodes + heads)
    assert_matches_dense(make_layer(7, 5, heads, concat), dense_reference, num_nodes, num_edges, isolated, device)


def test_mean_layer_is_the_mean_over_each_neighbourhood_by_hand():
    # edges 0 -> 2, 1 -> 2, 2 -> 0 (and a self-loop each); node 3 has only its self-loop
    layer = MeanLayer(2, 2, num_heads=1).double()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.eye(2))
        layer.bias.copy_(torch.tensor([0.5, -1.0]))
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0], [7.0, 11.0], [13.0, 17.0]], dtype=torch.float64)
    out, (used_edges, attention) = layer(x, torch.tensor([[0, 1, 2], [2, 2, 0]]), return_attention=True)
    expected = torch.tensor(
        [
            [(1.0 + 7.0) / 2, (2.0 + 11.0) / 2],  # node 0: itself and node 2
            [3.0, 5.0],  # node 1: itself
            [(1.0 + 3.0 + 7.0) / 3, (2.0 + 5.0 + 11.0) / 3],  # node 2: nodes 0, 1 and itself
            [13.0, 17.0],
        ],
        dtype=torch.float64,
    ) + torch.tensor([0.5, -1.0], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)
    degree = torch.bincount(used_edges[1], minlength=4).double()
    torch.testing.assert_close(attention, (1 / degree)[used_edges[1]].unsqueeze(1), rtol=0, atol=0)


@pytest.mark.parametrize("heads,concat", [(1, True), (4, True), (3, False)])
def test_mean_layer_matches_dense_reference(heads, concat, device):
    torch.manual_seed(heads)
    layer = make_layer(7, 5, heads, concat, layer_class=MeanLayer)
    assert_matches_dense(layer, mean_dense_reference, 40, 200, 5, device)


def test_mean_layer_drops_its_coefficients_in_training_only():
    torch.manual_seed(0)
    layer = MeanLayer(3, 2, num_heads=2, dropout=0.5).double()
    x, edge_index = torch.randn(12, 3, dtype=torch.float64), random_graph(12, 40, seed=9)
    evaluated = layer.eval()(x, edge_index)
    torch.testing.assert_close(evaluated, mean_dense_reference(layer, x, edge_index)[0], rtol=0, atol=1e-12)
    assert not torch.allclose(layer.train()(x, edge_index), evaluated)


def test_attention_sums_to_one_per_target_and_includes_one_self_loop():
    torch.manual_seed(0)
    layer = make_layer(4, 3, heads=2, concat=True)
    edge_index = random_graph(50, 300, seed=1, isolated=10)
    edge_index = torch.cat([edge_index, torch.tensor([[3, 7], [3, 7]])], dim=1)  # existing self-loops
    _, (used_edges, attention) = layer(torch.randn(50, 4, dtype=torch.float64), edge_index, return_attention=True)
    sums = torch.zeros(50, 2, dtype=torch.float64).index_add_(0, used_edges[1], attention)
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-12)
    self_loops = used_edges[0] == used_edges[1]
    assert torch.equal(torch.bincount(used_edges[1][self_loops], minlength=50), torch.ones(50, dtype=torch.long))


@each_layer
def test_without_self_loops_isolated_nodes_get_only_the_bias(layer_class):
    torch.manual_seed(0)
    layer = make_layer(4, 3, heads=2, concat=True, self_loops=False, layer_class=layer_class)
    edge_index = random_graph(30, 100, seed=2, isolated=6)
    x = torch.randn(30, 4, dtype=torch.float64)
    out = layer(x, edge_index)
    torch.testing.assert_close(out, DENSE_REFERENCES[layer_class](layer, x, edge_index)[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(out[-6:], layer.bias.expand(6, -1).detach(), rtol=0, atol=0)


@each_layer
def test_sparse_input_equals_dense_input(layer_class, device):
    torch.manual_seed(0)
    layer = make_layer(20, 4, heads=3, concat=True, layer_class=layer_class).to(device)
    x = (torch.randn(60, 20, dtype=torch.float64) * (torch.rand(60, 20) < 0.1)).to(device)
    edge_index = random_graph(60, 400, seed=3).to(device)
    dense = layer(x, edge_index)
    sparse = layer(x.to_sparse_csr(), edge_index)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-12)


@each_layer
@pytest.mark.parametrize("concat", [True, False])
def test_gradcheck(layer_class, concat):
    torch.manual_seed(0)
    layer = make_layer(3, 2, heads=2, concat=concat, layer_class=layer_class)
    edge_index = random_graph(8, 20, seed=4, isolated=1)
    names = [name for name, _ in layer.named_parameters()]
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    parameters = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def function(x, *parameters):
        return torch.func.functional_call(layer, dict(zip(names, parameters, strict=True)), (x, edge_index))

    assert torch.autograd.gradcheck(function, (x, *parameters))


@each_layer
@pytest.mark.parametrize("concat", [True, False])
def test_gradients_match_dense_reference(layer_class, concat, device):
    torch.manual_seed(0)
    layer = make_layer(6, 4, heads=3, concat=concat, layer_class=layer_class)
    edge_index = random_graph(80, 500, seed=5, isolated=4)
    x = torch.randn(80, 6, dtype=torch.float64)
    weights = torch.randn(80, 12 if concat else 4, dtype=torch.float64)

    on_device, x_on_device = copy.deepcopy(layer).to(device), x.to(device).requires_grad_()
    (on_device(x_on_device, edge_index.to(device)) * weights.to(device)).sum().backward()
    gradients = [x_on_device.grad.cpu()] + [p.grad.cpu() for p in on_device.parameters()]
    x.requires_grad_()
    (DENSE_REFERENCES[layer_class](layer, x, edge_index)[0] * weights).sum().backward()
    expected = [x.grad] + [p.grad for p in layer.parameters()]
    for got, want in zip(gradients, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@each_layer
@pytest.mark.parametrize("concat", [True, False])
def test_fewer_targets_give_the_first_rows_and_their_gradients(layer_class, concat, device):
    # With every edge into nodes 0-29 kept, computing only those 30 targets changes nothing they see: the same
    # rows and, for a loss on them, the same gradients (sparse input too: the first layer of a sampled batch).
    torch.manual_seed(0)
    layer = make_layer(6, 4, heads=3, concat=concat, layer_class=layer_class).to(device)
    edge_index = random_graph(80, 500, seed=6, isolated=4).to(device)
    into_targets = edge_index[:, edge_index[1] < 30]
    x = (torch.randn(80, 6, dtype=torch.float64) * (torch.rand(80, 6) < 0.5)).to(device)
    weights = torch.randn(30, 12 if concat else 4, dtype=torch.float64, device=device)
    results = []
    for inputs, edges, num_targets in ((x, edge_index, None), (x.to_sparse_csr(), into_targets, 30)):
        layer.zero_grad()
        out = layer(inputs, edges, num_targets=num_targets)
        (out[:30] * weights).sum().backward()
        results.append([out[:30].detach(), *(p.grad.clone() for p in layer.parameters())])
    assert layer(x, into_targets, num_targets=30).shape[0] == 30
    for got, want in zip(*results[::-1], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_huge_scores_do_not_overflow():
    # edges 0->1, 1->1, 2->2 (already in target order): node 1 has two huge scores, node 2 one tiny score
    neighbourhoods = build_neighbourhoods(torch.tensor([[0, 1, 2], [1, 1, 2]]), num_nodes=3, add_self_loops=False)
    scores = torch.tensor([[1e4], [1e4 - 1.0], [-1e4]], dtype=torch.float32)
    attention = neighbourhood_softmax(scores, neighbourhoods)
    assert torch.isfinite(attention).all()
    expected = torch.softmax(torch.tensor([1e4, 1e4 - 1.0], dtype=torch.float64), 0).float()
    torch.testing.assert_close(attention[:2, 0], expected)
    assert attention[2, 0] == 1.0


def test_layer_with_huge_weights_stays_finite():
    torch.manual_seed(0)
    layer = GATLayer(5, 4, num_heads=2)
    with torch.no_grad():
        layer.att_source.mul_(1e6)
        layer.att_target.mul_(1e6)
    out = layer(torch.randn(30, 5), random_graph(30, 150, seed=6))
    assert torch.isfinite(out).all()


def test_neighbourhoods_are_cached_and_rebuilt_on_change():
    layer = GATLayer(3, 2)
    edge_index = random_graph(10, 30, seed=7)
    first = layer.neighbourhoods(edge_index, 10)
    assert layer.neighbourhoods(edge_index, 10) is first
    assert layer.neighbourhoods(edge_index.clone(), 10) is not first
    edge_index[0, 0] = 9  # an in-place edit must not reuse the stale sort
    assert layer.neighbourhoods(edge_index, 10) is not first


@each_layer
def test_caches_built_in_inference_mode_serve_a_later_training_step(layer_class):
    # Evaluation runs in inference mode (gat.training.steps.evaluate) and may build a layer's caches (sorted edges,
    # aggregation plan, segment sums) first; a training step on the same graph must still save them for backward.
    torch.manual_seed(0)
    layer = make_layer(3, 2, heads=2, concat=True, layer_class=layer_class)
    x, edge_index = torch.randn(10, 3, dtype=torch.float64), random_graph(10, 30, seed=7)
    with torch.inference_mode():
        evaluated = layer(x, edge_index)
    trained = layer(x, edge_index)
    trained.square().sum().backward()
    torch.testing.assert_close(trained.detach(), evaluated, rtol=0, atol=0)
    assert all(parameter.grad is not None for parameter in layer.parameters())


@each_layer
def test_second_derivatives_are_refused_rather_than_wrong(layer_class):
    # The hand-written backwards are not themselves differentiable (they use detached CSR products): a gradient
    # penalty through a layer must fail loudly, not return a partial second derivative.
    torch.manual_seed(0)
    layer = make_layer(3, 2, heads=2, concat=True, layer_class=layer_class)
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    (grad_x,) = torch.autograd.grad(layer(x, random_graph(8, 20, seed=4)).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad_x.square().sum().backward()


def test_output_shapes():
    x, edge_index = torch.randn(12, 6), random_graph(12, 40, seed=8)
    assert GATLayer(6, 5, num_heads=3, concat=True)(x, edge_index).shape == (12, 15)
    assert GATLayer(6, 5, num_heads=3, concat=False)(x, edge_index).shape == (12, 5)
    assert GATLayer(6, 5, num_heads=3, bias=False).bias is None


def test_matches_torch_geometric_gatconv():
    torch_geometric = pytest.importorskip("torch_geometric", reason="PyG is an optional test-only reference")
    torch.manual_seed(0)
    edge_index = random_graph(50, 300, seed=9)
    x = torch.randn(50, 6, dtype=torch.float64)
    for concat in (True, False):
        ours = make_layer(6, 4, heads=3, concat=concat)
        theirs = torch_geometric.nn.GATConv(6, 4, heads=3, concat=concat).double()
        with torch.no_grad():
            theirs.lin.weight.copy_(ours.linear.weight)
            theirs.att_src.copy_(ours.att_source)
            theirs.att_dst.copy_(ours.att_target)
            theirs.bias.copy_(ours.bias)
        torch.testing.assert_close(ours(x, edge_index), theirs(x, edge_index), rtol=0, atol=1e-10)
