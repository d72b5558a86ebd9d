"""The per-head numbers the report draws and the docs quote."""

from __future__ import annotations

from visualization.heads import homophily_finding


def test_homophily_finding_gives_each_layers_mean_share_and_its_heads_range():
    rows = [
        {"layer": 0, "head": 0, "same_class_share": 0.80, "uniform_same_class_share": 0.75},
        {"layer": 0, "head": 1, "same_class_share": 0.90, "uniform_same_class_share": 0.75},
        {"layer": 1, "head": 0, "same_class_share": 0.70, "uniform_same_class_share": 0.75},
    ]
    assert homophily_finding(rows, "toy") == (
        "On toy, the share of a node's neighbour attention that goes to neighbours of its own class is layer 0 85.0% "
        "(heads 80.0%-90.0%); layer 1 70.0%, against 75.0% for uniform attention (the node homophily)."
    )
