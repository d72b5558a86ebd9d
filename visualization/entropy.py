"""Did GAT learn anything beyond uniform attention? Attention entropy against the uniform baseline.

Uniform attention over a neighbourhood of ``d`` edges (self-loop included) has entropy ``log d``: that is what a
graph convolution with mean aggregation does. A head whose entropies pile up at the uniform ones learned little
from attention; the mean KL divergence from uniform (``log d - H``, 0 for uniform) says by how much it differs.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gat.io import atomic_write, save_json
from gat.nn.analysis import attention_entropy, kl_from_uniform, neighbourhood_sizes
from gat.nn.model import Inspection
from visualization.loading import checked_index
from visualization.style import PALETTE, new_figure, styled

STATISTICS = ("layer", "head", "mean_entropy", "mean_uniform_entropy", "mean_kl", "median_kl", "p90_kl", "max_kl")


def entropies(inspection: Inspection, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(entropy [N, heads], uniform entropy [N], KL from uniform [N, heads])`` of every node in ``layer``, nats."""
    num_nodes = inspection.logits.shape[0]
    attention, edge_index = inspection.attention[layer], inspection.edge_index
    sizes = neighbourhood_sizes(edge_index, num_nodes).double()
    uniform = torch.log(sizes.clamp(min=1))
    return (
        attention_entropy(attention.double(), edge_index, num_nodes).cpu().numpy(),
        uniform.cpu().numpy(),
        kl_from_uniform(attention, edge_index, num_nodes).cpu().numpy(),
    )


def entropy_statistics(inspection: Inspection) -> list[dict[str, float | int]]:
    """One row per layer and head: mean entropy vs the uniform one, and the KL divergence from uniform over
    nodes (mean, median, 90th percentile, max), in nats."""
    rows = []
    for layer in range(len(inspection.attention)):
        entropy, uniform, kl = entropies(inspection, layer)
        for head in range(entropy.shape[1]):
            kl_percentiles = np.percentile(kl[:, head], [50, 90, 100])
            values = (entropy[:, head].mean(), uniform.mean(), kl[:, head].mean(), *kl_percentiles)
            rows.append({"layer": layer, "head": head, **dict(zip(STATISTICS[2:], map(float, values), strict=True))})
    return rows


def save_statistics(rows: list[dict[str, float | int]], out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``rows`` as ``name.csv`` and ``name.json`` in ``out_dir``; returns both paths."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=STATISTICS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()}
                     for row in rows)  # fmt: skip
    csv_path = Path(out_dir) / f"{name}.csv"
    with atomic_write(csv_path) as file:
        file.write(text.getvalue().encode())
    return [csv_path, save_json(rows, Path(out_dir) / f"{name}.json")]


def format_statistics(rows: list[dict[str, float | int]]) -> str:
    """The table as aligned text, for the console."""
    header = f"{'layer':>5} {'head':>4} {'entropy':>8} {'uniform':>8} {'mean KL':>8} {'median KL':>9} {'max KL':>7}"
    lines = [f"{r['layer']:>5} {r['head']:>4} {r['mean_entropy']:>8.3f} {r['mean_uniform_entropy']:>8.3f} "
             f"{r['mean_kl']:>8.4f} {r['median_kl']:>9.4f} {r['max_kl']:>7.3f}" for r in rows]  # fmt: skip
    return "\n".join([header, *lines])


@styled
def entropy_figure(inspection: Inspection, layers: list[int] | None = None, title: str = "") -> Figure:
    """Left, one panel per layer and head: the histogram over nodes of the entropy of the node's attention, over
    the histogram of the entropy uniform attention over the same neighbourhoods would have (``log d``); the legend
    gives the mean KL divergence from uniform. Same bins for both (see :func:`entropy_bins`).

    Right, one panel per layer: for each head, the share of nodes whose KL divergence from uniform (``log d - H``)
    is at most x, on a log x axis. Entropies near ``log d`` make the left histograms look alike whatever the head
    learned; on a log scale a head 100x farther from uniform than another sits two decades to its right."""
    count = len(inspection.attention)
    chosen = range(count) if layers is None else layers
    layers = [checked_index(layer, count, "layer", "the model") for layer in chosen]
    panels = [(layer, head, *entropies(inspection, layer)) for layer in layers
              for head in range(inspection.attention[layer].shape[1])]  # fmt: skip
    columns = math.ceil(math.sqrt(len(panels)))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(3.8 * columns + 5.2, max(2.9 * rows, 2.6 * len(layers)) + 0.6)
    histograms, gaps = figure.subfigures(1, 2, width_ratios=[3.8 * columns, 5.2])
    axes = np.atleast_1d(histograms.subplots(rows, columns, sharex=True)).ravel()
    bins = entropy_bins(int(neighbourhood_sizes(inspection.edge_index, inspection.logits.shape[0]).max()))
    for ax, (layer, head, entropy, uniform, kl) in zip(axes, panels, strict=False):
        ax.hist(uniform, bins=bins, color=PALETTE[6], alpha=0.45, label="uniform attention, log d")
        ax.hist(entropy[:, head], bins=bins, histtype="step", linewidth=1.6, color=PALETTE[0],
                label=f"GAT: mean KL from uniform {kl[:, head].mean():.2g}")  # fmt: skip
        ax.set_title(f"layer {layer}  ·  head {head}", fontsize=10)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # headroom: the legend sits above the bars, not on them
        ax.legend(loc="upper right", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * columns :]:
        ax.set_xlabel("entropy of the node's attention (nats)")
    for ax in axes[::columns]:
        ax.set_ylabel("nodes")
    histograms.suptitle("entropy per node (histogram) vs uniform attention", fontsize=11)
    for ax, layer in zip(np.atleast_1d(gaps.subplots(len(layers), 1)), layers, strict=True):
        _draw_kl_distribution(ax, inspection, layer)
    gaps.suptitle("distance from uniform per node (log axis)", fontsize=11)
    figure.suptitle(title or "attention entropy per node vs uniform attention (nats)")
    return figure


KL_FLOOR = 1e-9  # nats: smaller KL divergences (uniform up to rounding) are drawn at this value on the log axis


def kl_distribution(inspection: Inspection, layer: int) -> np.ndarray:
    """``[n, heads]`` the KL divergence from uniform (nats) of the nodes with a choice to make (a neighbour besides
    the self-loop: a node alone with its self-loop attends uniformly by necessity), at least :data:`KL_FLOOR`."""
    num_nodes = inspection.logits.shape[0]
    choosing = neighbourhood_sizes(inspection.edge_index, num_nodes).cpu().numpy() > 1
    return np.maximum(entropies(inspection, layer)[2][choosing], KL_FLOOR)


def _draw_kl_distribution(ax: Axes, inspection: Inspection, layer: int) -> None:
    """One line per head: the share of nodes whose KL from uniform is <= x (an empirical CDF), log x axis."""
    kl = kl_distribution(inspection, layer)
    share = np.arange(1, len(kl) + 1) / max(len(kl), 1)
    heads = kl.shape[1]
    colours = PALETTE if heads <= len(PALETTE) else [matplotlib.colormaps["viridis"](h / heads) for h in range(heads)]
    for head in range(heads):
        ax.step(np.sort(kl[:, head]), share, where="post", color=colours[head], linewidth=1.4,
                label=f"head {head}: median {np.median(kl[:, head]):.2g}")  # fmt: skip
    ax.set_xscale("log")
    ax.set(title=f"layer {layer}", xlabel="KL from uniform, log d − H (nats)", ylabel="share of nodes ≤ x",
           ylim=(0, 1.02))  # fmt: skip
    ax.legend(loc="lower right", fontsize=7, ncols=2 if heads > 4 else 1)


def entropy_bins(max_size: int, count: int = 40) -> np.ndarray:
    """Bin edges at ``log(d - 1/2)``: each bin holds the uniform entropy ``log d`` of one neighbourhood size ``d``
    (sizes grouped geometrically once they are many). A node moves to a lower bin only when its attention is
    clearly sharper than uniform, not because ``log d`` sat on a bin edge and a hair less fell below it."""
    sizes = np.unique(np.round(np.geomspace(1, max_size + 1, count)))
    return np.log(np.maximum(sizes - 0.5, 1.0)) if max_size > 0 else np.array([0.0, 1.0])
