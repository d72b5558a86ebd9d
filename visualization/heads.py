"""Per-head numbers: how far each head's attention is from uniform, and how much of it goes to same-class
neighbours, against what uniform attention would give. The report draws them; docs/regenerate.py quotes them."""

from __future__ import annotations

import numpy as np

from gat.nn.analysis import attention_homophily
from visualization.entropy import entropy_statistics
from visualization.loading import TrainedModel


def head_rows(trained: TrainedModel) -> list[dict[str, float | int]]:
    """One row per layer and head: KL divergence from uniform attention, and attention against homophily
    (:func:`gat.nn.analysis.attention_homophily`)."""
    inspection, labels = trained.inspection, trained.graph.y.cpu()
    edge_index = inspection.edge_index.cpu()
    kl = {(row["layer"], row["head"]): row["mean_kl"] for row in entropy_statistics(inspection)}
    rows = []
    for layer, attention in enumerate(inspection.attention):
        result = attention_homophily(attention.detach().cpu(), edge_index, labels)
        for head in range(attention.shape[1]):
            rows.append({
                "layer": layer, "head": head, "mean_kl": kl[(layer, head)],
                "same_class_share": float(result.same_class_share[head]),
                "uniform_same_class_share": result.uniform_same_class_share,
                "mean_same": float(result.mean_same[head]), "mean_different": float(result.mean_different[head]),
                "uniform_same": result.uniform_same, "uniform_different": result.uniform_different,
            })  # fmt: skip
    return rows


def homophily_finding(rows: list[dict[str, float | int]], dataset: str) -> str:
    """One sentence: how much more of its neighbour attention each layer gives same-class neighbours than uniform
    attention would, from :func:`head_rows`."""
    parts = []
    for layer in sorted({row["layer"] for row in rows}):
        heads = [row for row in rows if row["layer"] == layer]
        shares = [row["same_class_share"] for row in heads]
        share = np.mean(shares)
        spread = f" (heads {min(shares):.1%}-{max(shares):.1%})" if len(heads) > 1 else ""
        parts.append(f"layer {layer} {share:.1%}{spread}")
    uniform = rows[0]["uniform_same_class_share"]
    return (
        f"On {dataset}, the share of a node's neighbour attention that goes to neighbours of its own class is "
        f"{'; '.join(parts)}, against {uniform:.1%} for uniform attention (the node homophily)."
    )
