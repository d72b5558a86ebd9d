"""The input projection (gat.nn.kernels.projection) against plain products in float64, dense and sparse."""

import pytest
import torch

from gat.nn.kernels import projection
from gat.nn.kernels.ops import dropout
from gat.nn.kernels.projection import project


@pytest.mark.parametrize("block_bytes", [None, 200, 1])  # None: the default
def test_sparse_projection_matches_dense_and_rebuilds_its_cache_for_new_features(block_bytes, device, monkeypatch):
    # On CPU the weight gradient sums partial products over blocks of nodes: rows of 6 float64 outputs (48 bytes)
    # make 1 block of the 50 nodes, or blocks of 4 nodes (the last one short), or of 2-4 (as few as nnz / 30
    # features allows). Other devices use one block.
    if block_bytes is not None:
        monkeypatch.setattr(projection, "GRADIENT_BLOCK_BYTES", block_bytes)
    torch.manual_seed(0)
    weight = torch.randn(6, 30, dtype=torch.float64, device=device, requires_grad=True)
    for density in (0.3, 0.9):  # two different sparsity structures, one after the other
        x = torch.randn(50, 30, dtype=torch.float64) * (torch.rand(50, 30) < density)
        x = x.to_sparse_csr().to(device)
        for features in (x, dropout(x, 0.5, True)):
            dense = features.to_dense()
            grad_out = torch.randn(50, 6, dtype=torch.float64, device=device)
            sparse_grad = torch.autograd.grad(project(features, weight), weight, grad_out)[0]
            dense_grad = torch.autograd.grad(dense @ weight.t(), weight, grad_out)[0]
            torch.testing.assert_close(project(features, weight), dense @ weight.t(), rtol=0, atol=1e-12)
            torch.testing.assert_close(sparse_grad, dense_grad, rtol=0, atol=1e-12)
            num_blocks = projection.cached_transposes()[0].num_blocks
            assert num_blocks == 1 if block_bytes is None or device != "cpu" else 10 < num_blocks < 26


def test_one_block_is_shared_by_weights_of_any_width_and_sparse_features_cap_the_blocks(monkeypatch):
    torch.manual_seed(0)
    x = (torch.randn(50, 30, dtype=torch.float64) * (torch.rand(50, 30) < 0.3)).to_sparse_csr()
    for out_features in (6, 64):  # a layer's weight and a skip connection's, say: one transpose for both
        weight = torch.randn(out_features, 30, dtype=torch.float64, requires_grad=True)
        project(x, weight).sum().backward()
    crow = x.crow_indices().data_ptr()
    assert sum(structure.crow.data_ptr() == crow for structure in projection.cached_transposes()) == 1
    monkeypatch.setattr(projection, "GRADIENT_BLOCK_BYTES", 1)  # a node per block, were it not for the cap
    wide = (torch.rand(50, 1000, dtype=torch.float64) < 0.002).double().to_sparse_csr()  # ~100 nonzeros
    weight = torch.randn(6, 1000, dtype=torch.float64, requires_grad=True)
    gradient = torch.autograd.grad(project(wide, weight).sum(), weight)[0]
    torch.testing.assert_close(gradient, torch.ones(6, 50, dtype=torch.float64) @ wide.to_dense(), rtol=0, atol=1e-12)
    assert projection.cached_transposes()[0].num_blocks <= wide.values().numel() / 1000 + 1
