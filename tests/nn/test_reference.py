"""The readable reference layers (gat.nn.reference) against the fast ones (gat.nn.layers), in float64: the same output,
attention and gradients to 1e-10, for single layers and for a whole model."""

import pytest
import torch
import torch.nn.functional as F

from gat.nn.layers import GATLayer, GATv2Layer
from gat.nn.model import GAT
from gat.nn.reference import ReferenceGATLayer, ReferenceGATv2Layer, neighbourhood_softmax

REFERENCES = {GATLayer: ReferenceGATLayer, GATv2Layer: ReferenceGATv2Layer}
each_layer = pytest.mark.parametrize("layer_class", list(REFERENCES), ids=lambda cls: cls.__name__)
TOLERANCE = {"rtol": 0.0, "atol": 1e-10}


def random_graph(num_nodes: int, num_edges: int, seed: int, isolated: int = 0) -> torch.Tensor:
    """Duplicate-free random directed edges among the first ``num_nodes - isolated`` nodes (the rest stay isolated),
    a few self-loops among them (a layer with ``add_self_loops`` replaces them by its own)."""
    generator = torch.Generator().manual_seed(seed)
    connected = num_nodes - isolated
    edge_index = torch.randint(0, connected, (2, num_edges), generator=generator)
    loops = torch.arange(0, connected, 3).expand(2, -1)
    edge_index = torch.unique(torch.cat([edge_index, loops], dim=1), dim=1)
    return edge_index[:, torch.randperm(edge_index.shape[1], generator=generator)]  # in no particular order


def random_features(num_nodes: int, in_features: int, sparse: bool) -> torch.Tensor:
    """float64 features, half of them zero: dense, or sparse CSR (which the fast layer multiplies as sparse)."""
    x = torch.randn(num_nodes, in_features, dtype=torch.float64) * (torch.rand(num_nodes, in_features) < 0.5)
    return x.to_sparse_csr() if sparse else x.requires_grad_()


def fast_and_reference(
    layer_class: type, heads: int, concat: bool, training: bool = True, **kwargs
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A float64 fast layer with a random non-zero bias (a zero bias would hide a misplaced one), in training or
    evaluation mode, and its reference twin (which takes the layer's mode)."""
    layer = layer_class(6, 4, num_heads=heads, concat=concat, **kwargs).double().train(training)
    with torch.no_grad():
        layer.bias.normal_()
    return layer, REFERENCES[layer_class].from_layer(layer)


def forward_and_gradients(
    layer: torch.nn.Module, x: torch.Tensor, edge_index: torch.Tensor, num_targets: int | None = None
) -> dict[str, torch.Tensor]:
    """Output, used edges, attention, and the gradients of every parameter (and of a dense ``x``) for a loss
    that reads both the output and the attention, so the attention's own backward is checked too."""
    x = x.detach().requires_grad_() if x.layout == torch.strided else x
    out, (used_edges, attention) = layer(x, edge_index, return_attention=True, num_targets=num_targets)
    generator = torch.Generator().manual_seed(0)
    out_weights = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    attention_weights = torch.randn(attention.shape, generator=generator, dtype=torch.float64)
    layer.zero_grad()
    ((out * out_weights).sum() + (attention * attention_weights).sum()).backward()
    results = {"out": out.detach(), "used_edges": used_edges, "attention": attention.detach()}
    results |= {f"grad {name}": parameter.grad for name, parameter in layer.named_parameters()}
    if x.layout == torch.strided:
        results["grad x"] = x.grad
    return results


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], **TOLERANCE, msg=lambda message, n=name: f"{n}: {message}")


@each_layer
@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (3, False)])
@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dropout,training", [(0.0, True), (0.5, False)], ids=["train", "eval"])
def test_matches_the_fast_layer(layer_class, heads, concat, add_self_loops, sparse, dropout, training):
    torch.manual_seed(heads)
    layer, reference = fast_and_reference(
        layer_class, heads, concat, training, add_self_loops=add_self_loops, dropout=dropout
    )
    x = random_features(50, 6, sparse)
    edge_index = random_graph(50, 300, seed=heads, isolated=5)
    assert_same(forward_and_gradients(reference, x, edge_index), forward_and_gradients(layer, x, edge_index))


@each_layer
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_matches_the_fast_layer_on_fewer_targets(layer_class, sparse):
    # A sampled batch's layer: only the first 20 nodes are targets, every edge points into one of them.
    torch.manual_seed(0)
    layer, reference = fast_and_reference(layer_class, 3, True)
    edge_index = random_graph(50, 300, seed=7, isolated=5)
    edge_index = edge_index[:, edge_index[1] < 20]
    x = random_features(50, 6, sparse)
    got = forward_and_gradients(reference, x, edge_index, num_targets=20)
    assert got["out"].shape[0] == 20
    assert_same(got, forward_and_gradients(layer, x, edge_index, num_targets=20))


@each_layer
def test_shares_the_fast_layers_state_dict(layer_class):
    # Keys and shapes are the same, so a state dict loads either way.
    layer = layer_class(6, 4, num_heads=2)
    reference = REFERENCES[layer_class](6, 4, num_heads=2)
    assert {k: v.shape for k, v in reference.state_dict().items()} == {
        k: v.shape for k, v in layer.state_dict().items()
    }
    reference.load_state_dict(layer.state_dict())
    assert torch.equal(reference.linear.weight, layer.linear.weight)
    layer.load_state_dict(REFERENCES[layer_class](6, 4, num_heads=2).state_dict())


@each_layer
def test_attention_dropout_in_training_keeps_the_expectation(layer_class):
    # In training the returned attention (before dropout) is the evaluation attention, summing to 1 over each
    # neighbourhood; the aggregation uses dropped attention, scaled by 1 / (1 - p), so the output varies from
    # draw to draw but averages to the evaluation output.
    torch.manual_seed(0)
    _, reference = fast_and_reference(layer_class, 2, True, dropout=0.5)
    x = torch.randn(12, 6, dtype=torch.float64)
    edge_index = random_graph(12, 40, seed=3)
    with torch.no_grad():
        expected, (_, expected_attention) = reference.eval()(x, edge_index, return_attention=True)
        reference.train()
        out, (used_edges, attention) = reference(x, edge_index, return_attention=True)
        draws = torch.stack([reference(x, edge_index) for _ in range(2000)])

    torch.testing.assert_close(attention, expected_attention, rtol=0, atol=0)
    sums = torch.zeros(12, 2, dtype=torch.float64).index_add_(0, used_edges[1], attention)
    torch.testing.assert_close(sums, torch.ones_like(sums), **TOLERANCE)
    assert not torch.allclose(out, expected)
    # The mean of 2000 draws: its error is under 5 standard errors everywhere.
    standard_error = draws.std(dim=0) / 2000**0.5
    assert ((draws.mean(dim=0) - expected).abs() <= 5 * standard_error + 1e-12).all()


def test_reference_softmax_shifts_huge_scores_instead_of_overflowing():
    # Edges into node 1 score 1e4 and 1e4 - 1 (exp overflows float32 without the max shift); node 2's scores -1e4
    # (exp underflows to 0 without it); node 0 has no edge.
    target = torch.tensor([1, 1, 2])
    scores = torch.tensor([[1e4], [1e4 - 1.0], [-1e4]], dtype=torch.float32)
    attention = neighbourhood_softmax(scores, target, num_targets=3)
    expected = torch.softmax(torch.tensor([1e4, 1e4 - 1.0], dtype=torch.float64), 0).float()
    torch.testing.assert_close(attention[:2, 0], expected)
    assert attention[2, 0] == 1.0


def reference_model(model: GAT) -> list[torch.nn.Module]:
    """The model's layers as reference layers with the same weights."""
    return [REFERENCES[type(layer)].from_layer(layer) for layer in model.layers]


def run_reference_model(layers: list[torch.nn.Module], x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """The paper's model in evaluation: every layer but the last followed by ELU."""
    h = x
    for index, layer in enumerate(layers):
        h = layer(h, edge_index)
        h = h if index == len(layers) - 1 else F.elu(h)
    return h


@pytest.mark.parametrize("layer", ["gat", "gatv2"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_a_whole_model_matches_a_stack_of_reference_layers(layer, sparse):
    torch.manual_seed(0)
    model = GAT(6, 5, hidden=4, heads=(3, 2), num_layers=2, dropout=0.6, layer=layer).double().eval()
    with torch.no_grad():
        for attention_layer in model.layers:
            attention_layer.bias.normal_()
    references = reference_model(model)
    x = random_features(60, 6, sparse)
    edge_index = random_graph(60, 400, seed=11, isolated=6)
    weights = torch.randn(60, 5, dtype=torch.float64)

    results = []
    for run, parameters in (
        (lambda inputs: model(inputs, edge_index), model.named_parameters()),
        (lambda inputs: run_reference_model(references, inputs, edge_index), reference_parameters(references)),
    ):
        inputs = x.detach().requires_grad_() if not sparse else x
        logits = run(inputs)
        (logits * weights).sum().backward()
        result = {"logits": logits.detach()} | {name: p.grad for name, p in parameters}
        results.append(result | ({} if sparse else {"grad x": inputs.grad}))
    assert_same(results[1], results[0])


def reference_parameters(layers: list[torch.nn.Module]) -> list[tuple[str, torch.nn.Parameter]]:
    """The reference stack's parameters under the model's names (``layers.0.linear.weight``, ...)."""
    return [(f"layers.{index}.{name}", p) for index, layer in enumerate(layers) for name, p in layer.named_parameters()]
