"""The GAT model: the paper's architecture, inspection outputs, skip connections, sparse inputs."""

import pytest
import torch
import torch.nn.functional as F

from gat.nn.model import GAT
from tests.helpers import random_graph


def test_default_is_the_papers_cora_model():
    model = GAT(1433, 7)
    first, second = model.layers
    assert (first.num_heads, first.out_features, first.concat) == (8, 8, True)
    assert (second.in_features, second.num_heads, second.out_features, second.concat) == (64, 1, 7, False)
    assert model.dropout == first.dropout == second.dropout == 0.6
    # 1433*64 + 2*64 + 64  +  64*7 + 2*7 + 7: the paper's model has 92,373 parameters
    assert sum(p.numel() for p in model.parameters()) == 92373


def test_forward_equals_manual_layer_composition_in_eval():
    torch.manual_seed(0)
    model = GAT(10, 3, hidden=4, heads=(2, 3, 2), num_layers=3).double().eval()
    x, edge_index = torch.randn(25, 10, dtype=torch.float64), random_graph(25, 90, seed=1)
    h = F.elu(model.layers[0](x, edge_index))
    h = F.elu(model.layers[1](h, edge_index))
    expected = model.layers[2](h, edge_index)
    torch.testing.assert_close(model(x, edge_index), expected, rtol=0, atol=0)


def test_inspect_returns_every_layer():
    torch.manual_seed(0)
    model = GAT(10, 3, hidden=4, heads=(2, 3, 2), num_layers=3).eval()
    x, edge_index = torch.randn(25, 10), random_graph(25, 90, seed=2)
    result = model.inspect(x, edge_index)
    assert [h.shape for h in result.hidden] == [(25, 8), (25, 12), (25, 3)]
    assert [a.shape[1] for a in result.attention] == [2, 3, 2]
    assert all(a.shape[0] == result.edge_index.shape[1] for a in result.attention)
    assert result.edge_index.shape[1] == edge_index.shape[1] + 25  # one self-loop per node added
    torch.testing.assert_close(result.logits, model(x, edge_index))
    assert result.hidden[-1] is result.logits


def test_skip_connections_add_projected_or_identity_input():
    torch.manual_seed(0)
    model = GAT(10, 3, hidden=4, heads=(2, 2, 1), num_layers=3, skip_connection=True).double().eval()
    assert isinstance(model.skips[0], torch.nn.Linear)  # 10 -> 8: projected
    assert isinstance(model.skips[1], torch.nn.Identity)  # 8 -> 8: identity
    x, edge_index = torch.randn(20, 10, dtype=torch.float64), random_graph(20, 60, seed=3)
    h = F.elu(model.layers[0](x, edge_index) + model.skips[0](x))
    h = F.elu(model.layers[1](h, edge_index) + h)
    expected = model.layers[2](h, edge_index) + model.skips[2](h)
    torch.testing.assert_close(model(x, edge_index), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(model(x.to_sparse_csr(), edge_index), expected, rtol=0, atol=1e-12)


def test_sparse_features_give_the_same_gradients_as_dense_ones(device):
    torch.manual_seed(0)
    x = (torch.randn(40, 30, dtype=torch.float64) * (torch.rand(40, 30) < 0.1)).to(device)
    edge_index = random_graph(40, 160, seed=4).to(device)
    model = GAT(30, 4).double().eval().to(device)

    def gradients(features: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        model(features, edge_index).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    for got, want in zip(gradients(x.to_sparse_csr()), gradients(x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_training_mode_applies_dropout_and_eval_is_deterministic():
    torch.manual_seed(0)
    model = GAT(10, 3)
    x, edge_index = torch.rand(30, 10).to_sparse_csr(), random_graph(30, 100, seed=5)
    model.train()
    assert not torch.equal(model(x, edge_index), model(x, edge_index))
    model.eval()
    assert torch.equal(model(x, edge_index), model(x, edge_index))


def test_rejects_heads_of_wrong_length():
    with pytest.raises(ValueError, match="one entry per layer"):
        GAT(10, 3, heads=(8, 8, 1), num_layers=2)


def test_rejects_graphs_or_target_counts_of_wrong_length():
    model, x, edge_index = GAT(10, 3), torch.rand(30, 10), random_graph(30, 100, seed=5)
    with pytest.raises(ValueError, match="one graph per layer: got 3 for 2"):
        model(x, [edge_index] * 3)
    with pytest.raises(ValueError, match="one count per layer: got 1 for 2"):
        model(x, [edge_index] * 2, num_targets=[30])
    second = edge_index[:, (edge_index[0] < 20) & (edge_index[1] < 5)]  # reads the 20 nodes the first computes
    assert model(x, [edge_index[:, edge_index[1] < 20], second], [20, 5]).shape == (5, 3)


def test_learns_a_separable_toy_problem(device):
    torch.manual_seed(0)
    num_nodes = 60
    y = torch.arange(num_nodes) % 3
    x = F.one_hot(y, 3).double() + 0.5 * torch.randn(num_nodes, 3, dtype=torch.float64)
    same_class = y[:, None] == y[None, :]
    x, y, edge_index = x.to(device), y.to(device), same_class.nonzero().t().to(device)
    model = GAT(3, 3, hidden=4, heads=(2, 1), dropout=0.0).double().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, edge_index), y)
        loss.backward()
        optimizer.step()
    assert (model(x, edge_index).argmax(1) == y).float().mean() == 1.0
