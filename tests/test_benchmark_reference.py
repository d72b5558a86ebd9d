"""The benchmark compares like with like: its reference models compute our GAT's function."""

import pytest
import torch

from benchmarks.reference_models import DenseGAT, PyGGAT, copy_weights
from gat.model import GAT
from tests.test_layers import random_graph


def models_with_shared_weights(reference: type, dropout: float = 0.6) -> tuple[GAT, torch.nn.Module]:
    torch.manual_seed(0)
    ours = GAT(12, 4, hidden=5, heads=(3, 2), dropout=dropout).double()
    with torch.no_grad():
        for layer in ours.layers:
            layer.bias.normal_()  # a zero bias would hide a misplaced one
    theirs = reference(12, 4, hidden=5, heads=(3, 2), dropout=dropout).double()
    copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("reference", ["dense", "pyg"])
def test_reference_computes_our_function(reference):
    if reference == "pyg":
        pytest.importorskip("torch_geometric", reason="PyG is an optional reference")
    ours, theirs = models_with_shared_weights({"dense": DenseGAT, "pyg": PyGGAT}[reference])
    edge_index = random_graph(60, 400, seed=5, isolated=6)  # isolated nodes attend only to themselves
    x = torch.randn(60, 12, dtype=torch.float64)
    expected = ours.eval()(x, edge_index)
    torch.testing.assert_close(theirs.eval()(x, edge_index), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours(x.to_sparse_csr(), edge_index), expected, rtol=0, atol=1e-10)
