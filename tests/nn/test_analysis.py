"""The attention analyses against numbers worked out by hand on the four-node graph of ``tests.helpers``."""

from __future__ import annotations

import pytest
import torch

from gat.nn.analysis import attention_homophily, class_makeup, head_agreement, not_self_loops, uniform_attention
from tests.helpers import HAND_ATTENTION as ATTENTION
from tests.helpers import HAND_EDGE_INDEX as EDGE_INDEX
from tests.helpers import HAND_LABELS as LABELS


def test_class_counts_with_and_without_self_loops() -> None:
    counts = class_makeup(EDGE_INDEX, LABELS, 4, 2)
    assert counts.tolist() == [[2, 1], [2, 0], [1, 2], [0, 1]]
    between = EDGE_INDEX[:, not_self_loops(EDGE_INDEX)]
    assert class_makeup(between, LABELS, 4, 2).tolist() == [[1, 1], [1, 0], [1, 1], [0, 0]]


def test_attention_weighted_class_makeup() -> None:
    makeup = class_makeup(EDGE_INDEX, LABELS, 4, 2, weights=ATTENTION)
    # head 0 into node 0: class 0 gets 0.5 (itself) + 0.3 (node 1), class 1 gets 0.2 (node 2)
    expected = torch.tensor(
        [
            [[0.8, 0.2], [0.4, 0.6]],
            [[1.0, 0.0], [1.0, 0.0]],
            [[0.2, 0.8], [0.1, 0.9]],
            [[0.0, 1.0], [0.0, 1.0]],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(makeup, expected)


def test_attention_homophily_by_hand() -> None:
    result = attention_homophily(ATTENTION, EDGE_INDEX, LABELS)
    # Neighbour edges (self-loops out): same class 1->0, 0->1, 3->2; different class 2->0, 0->2.
    torch.testing.assert_close(result.mean_same, torch.tensor([1.3 / 3, 1.0 / 3], dtype=torch.float64))
    torch.testing.assert_close(result.mean_different, torch.tensor([0.2, 0.35], dtype=torch.float64))
    # 1/|N(i)| with the self-loop counted: 1/3, 1/2, 1/3 on the same-class edges, 1/3, 1/3 on the others
    assert result.uniform_same == pytest.approx(7 / 18)
    assert result.uniform_different == pytest.approx(1 / 3)
    # Share of neighbour attention on same-class neighbours, nodes 0, 1, 2 (node 3 has none):
    # head 0: .3/.5, .4/.4, .6/.8; head 1: .2/.8, .4/.4, .4/.5; uniform: 1/2, 1, 1/2.
    torch.testing.assert_close(
        result.same_class_share, torch.tensor([(0.6 + 1 + 0.75) / 3, (0.25 + 1 + 0.8) / 3], dtype=torch.float64)
    )
    assert result.uniform_same_class_share == pytest.approx(2 / 3)


def test_uniform_attention_has_the_uniform_homophily() -> None:
    uniform = uniform_attention(EDGE_INDEX, 4)
    result = attention_homophily(uniform, EDGE_INDEX, LABELS)
    assert result.same_class_share.item() == pytest.approx(result.uniform_same_class_share)
    assert result.mean_same.item() == pytest.approx(result.uniform_same)


def test_head_agreement_by_hand() -> None:
    agreement = head_agreement(ATTENTION, EDGE_INDEX, 4)
    # Total variation between the heads: node 0: (.3 + .1 + .4) / 2 = .4, node 1: 0, node 2: (.3 + .1 + .2) / 2 = .3;
    # node 3 (a self-loop only) is left out.
    between = 1 - (0.4 + 0.0 + 0.3) / 3
    torch.testing.assert_close(agreement, torch.tensor([[1.0, between], [between, 1.0]], dtype=torch.float64))
