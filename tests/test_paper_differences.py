"""The paper-differences experiment changes only what each variant names: its plain-op forward computes the library's
model, each change does what the paper's code does, and the library is restored afterwards."""

import math

import torch

from benchmarks import paper_differences
from gat.nn.layers import GATLayer
from gat.nn.model import GAT
from tests.helpers import random_graph


def logits(variant: str, training: bool, seed: int = 0) -> torch.Tensor:
    """A small float64 GAT built and run (training mode: with dropout) under ``variant``, from the same seeds."""
    with paper_differences.variant(variant):
        torch.manual_seed(seed)
        model = GAT(12, 4, hidden=5, heads=(3, 2), dropout=0.6).double().train(training)
        x = torch.rand(40, 12, dtype=torch.float64).to_sparse_csr()
        torch.manual_seed(seed + 1)
        return model(x, random_graph(40, 200, seed=seed))


def test_the_plain_op_forward_computes_the_library_model_dropout_included():
    torch.testing.assert_close(logits("unfused", training=True), logits("base", training=True), rtol=0, atol=1e-12)


def test_zero_score_biases_change_nothing_until_they_learn():
    torch.testing.assert_close(logits("scorebias", training=True), logits("base", training=True), rtol=0, atol=1e-12)


def test_per_head_input_dropout_differs_in_training_only():
    assert not torch.allclose(logits("headin", training=True), logits("base", training=True))
    torch.testing.assert_close(logits("headin", training=False), logits("base", training=False), rtol=0, atol=1e-12)


def test_without_dropout_on_the_values_differs_in_training_only():
    assert not torch.allclose(logits("novaluedrop", training=True), logits("base", training=True))
    torch.testing.assert_close(
        logits("novaluedrop", training=False), logits("base", training=False), rtol=0, atol=1e-12
    )


def test_tensorflow_fans_are_per_head():
    with paper_differences.variant("tfinit"):
        torch.manual_seed(0)
        layer = GATLayer(300, 8, num_heads=8)
    assert layer.linear.weight.abs().max() <= math.sqrt(6 / (300 + 8))
    # The attention vectors' bound is sqrt(6 / 9): far above torch's sqrt(6 / 72) for a [1, 8, 8] tensor.
    assert math.sqrt(6 / 72) < layer.att_source.abs().max() <= math.sqrt(6 / 9)


def test_the_library_is_restored_after_a_variant():
    originals = (GATLayer.forward, GATLayer.reset_parameters, GATLayer._create_parameters, GAT.apply_layer)
    with paper_differences.variant("headin+tfinit+scorebias"):
        assert GATLayer.forward is not originals[0]
    assert (GATLayer.forward, GATLayer.reset_parameters, GATLayer._create_parameters, GAT.apply_layer) == originals
    assert not hasattr(GATLayer(4, 2), "score_bias")
