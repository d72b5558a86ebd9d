"""GATv2Layer against a dense float64 reference (masked N x N softmax) and PyG's GATv2Conv; the checks every
attention layer shares (no self-loops, sparse input, gradcheck, gradients) are parametrized in test_layers.py."""

import functools

import pytest
import torch

from gat.nn.layers import GATv2Layer
from tests.helpers import assert_matches_dense, gatv2_dense_reference, random_graph
from tests.helpers import make_layer as make_any_layer

make_layer = functools.partial(make_any_layer, layer_class=GATv2Layer)


@pytest.mark.parametrize("num_nodes,num_edges,isolated", [(5, 8, 0), (40, 200, 5), (120, 900, 12)])
@pytest.mark.parametrize("heads,concat", [(1, True), (4, True), (3, False)])
def test_matches_dense_reference(num_nodes, num_edges, isolated, heads, concat, device):
    torch.manual_seed(num_nodes + heads)
    layer = make_layer(7, 5, heads, concat)
    assert_matches_dense(layer, gatv2_dense_reference, num_nodes, num_edges, isolated, device)


def test_attention_is_dynamic_unlike_gat():
    """The point of GATv2: two targets can rank the same two neighbours in opposite orders."""
    # Two hidden units s and -s with s = h_i + h_j, both weighted 1: the score is LeakyReLU(s) + LeakyReLU(-s)
    # = 0.8 |s|, which no static score a_t h_i + a_s h_j can express.
    layer = GATv2Layer(1, 2, add_self_loops=False).double()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        layer.linear_target.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        layer.att.fill_(1.0)
    # nodes 0 and 1 are the neighbours (features -1, +1); targets 2 (feature +3) and 3 (feature -3) see both
    x = torch.tensor([[-1.0], [1.0], [3.0], [-3.0]], dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 0, 1], [2, 2, 3, 3]])
    _, (used_edges, attention) = layer(x, edge_index, return_attention=True)
    by_edge = {(int(s), int(t)): float(a) for s, t, a in zip(*used_edges, attention[:, 0].detach(), strict=True)}
    assert by_edge[(1, 2)] > by_edge[(0, 2)]  # target 2 prefers neighbour 1
    assert by_edge[(0, 3)] > by_edge[(1, 3)]  # target 3 prefers neighbour 0


def test_output_shapes_and_parameters():
    x, edge_index = torch.randn(12, 6), random_graph(12, 40, seed=8)
    assert GATv2Layer(6, 5, num_heads=3, concat=True)(x, edge_index).shape == (12, 15)
    assert GATv2Layer(6, 5, num_heads=3, concat=False)(x, edge_index).shape == (12, 5)
    names = {name for name, _ in GATv2Layer(6, 5, num_heads=3).named_parameters()}
    assert names == {"linear.weight", "linear_target.weight", "att", "bias"}


def test_matches_torch_geometric_gatv2conv():
    torch_geometric = pytest.importorskip("torch_geometric", reason="PyG is an optional test-only reference")
    torch.manual_seed(0)
    edge_index = random_graph(50, 300, seed=9)
    x = torch.randn(50, 6, dtype=torch.float64)
    for concat in (True, False):
        ours = make_layer(6, 4, heads=3, concat=concat)
        theirs = torch_geometric.nn.GATv2Conv(6, 4, heads=3, concat=concat, share_weights=False).double()
        with torch.no_grad():
            theirs.lin_l.weight.copy_(ours.linear.weight)  # lin_l: source side, its output is aggregated
            theirs.lin_r.weight.copy_(ours.linear_target.weight)
            theirs.lin_l.bias.zero_()  # GATv2's equations have no bias inside the score
            theirs.lin_r.bias.zero_()
            theirs.att.copy_(ours.att)
            theirs.bias.copy_(ours.bias)
        out, (_, attention) = ours(x, edge_index, return_attention=True)
        their_out, (their_edges, their_attention) = theirs(x, edge_index, return_attention_weights=True)
        torch.testing.assert_close(out, their_out, rtol=0, atol=1e-10)
        # same attention per (source, target) edge, whatever order each library keeps its edges in
        num_nodes = x.shape[0]
        dense = torch.zeros(num_nodes, num_nodes, 3, dtype=torch.float64)
        dense[their_edges[1], their_edges[0]] = their_attention
        used = ours.neighbourhoods(edge_index, num_nodes).edge_index
        torch.testing.assert_close(attention, dense[used[1], used[0]], rtol=0, atol=1e-10)
