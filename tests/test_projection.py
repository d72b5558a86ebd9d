"""The input projection (gat.projection) against plain products in float64, dense and sparse."""

import pytest
import torch

from gat import projection
from gat.layers import input_major
from gat.ops import dropout
from gat.projection import project


@pytest.mark.parametrize("block_bytes", [projection.GRADIENT_BLOCK_BYTES, 200, 1])
def test_sparse_projection_matches_dense_and_rebuilds_its_cache_for_new_features(block_bytes, device, monkeypatch):
    # On CPU the weight gradient sums partial products over blocks of nodes: rows of 6 float64 outputs (48 bytes)
    # make 1 block of the 50 nodes, 13 of 4 nodes (the last one short), or 50 of 1. Other devices use one block.
    monkeypatch.setattr(projection, "GRADIENT_BLOCK_BYTES", block_bytes)
    torch.manual_seed(0)
    weight = torch.randn(6, 30, dtype=torch.float64, device=device, requires_grad=True)
    for density in (0.1, 0.3):  # two different sparsity structures, one after the other
        x = torch.randn(50, 30, dtype=torch.float64) * (torch.rand(50, 30) < density)
        x = x.to_sparse_csr().to(device)
        for features in (x, dropout(x, 0.5, True)):
            dense = features.to_dense()
            grad_out = torch.randn(50, 6, dtype=torch.float64, device=device)
            sparse_grad = torch.autograd.grad(project(features, weight), weight, grad_out)[0]
            dense_grad = torch.autograd.grad(dense @ weight.t(), weight, grad_out)[0]
            torch.testing.assert_close(project(features, weight), dense @ weight.t(), rtol=0, atol=1e-12)
            torch.testing.assert_close(sparse_grad, dense_grad, rtol=0, atol=1e-12)


def test_dense_projection_gradients_match_autograd_for_an_input_major_weight(device):
    torch.manual_seed(0)
    for out_features in (2, 7, 64):  # narrow outputs are why project() computes the weight gradient itself
        weight = input_major(torch.nn.Linear(30, out_features, bias=False)).weight.detach().double().to(device)
        weight.requires_grad_(True)
        x = torch.randn(50, 30, dtype=torch.float64, device=device, requires_grad=True)
        grad_out = torch.randn(50, out_features, dtype=torch.float64, device=device)
        ours = torch.autograd.grad(project(x, weight), (x, weight), grad_out)
        reference = torch.autograd.grad(x @ weight.t(), (x, weight), grad_out)
        torch.testing.assert_close(project(x, weight), x @ weight.t(), rtol=0, atol=1e-12)
        for got, expected in zip(ours, reference, strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(project, (x, weight))
