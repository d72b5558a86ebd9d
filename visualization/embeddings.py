"""What the layers learned: t-SNE maps of node representations, coloured by class, with silhouette scores."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from gat.data.graph import Graph
from gat.nn.model import Inspection
from gat.threads import threads_for_long_work
from visualization.choices import MAX_NODES
from visualization.loading import checked_index
from visualization.style import INK, bare, class_handles, new_figure, node_colours, styled

PCA_DIMENSIONS = 50  # wider layers are reduced to this first: faster t-SNE, less noise (the usual recipe)
# A shorter schedule than openTSNE's default (250 early-exaggeration iterations, where clusters form, then 500,
# where they settle) and a coarser Barnes-Hut approximation (theta 0.8, default 0.5): a Cora map in a quarter of the
# time, with silhouette and 10-NN class accuracy within 0.02 of scikit-learn's defaults (benchmarks/tsne.py).
EARLY_EXAGGERATION_ITERATIONS, ITERATIONS, THETA = 100, 150, 0.8
EXACT_NEIGHBOURS_MAX = 10_000  # up to here exact nearest neighbours cost less than building an Annoy index


def default_layers(inspection: Inspection) -> list[int]:
    """The last hidden layer and the logits (just the logits for a one-layer model)."""
    return list(range(max(len(inspection.hidden) - 2, 0), len(inspection.hidden)))


def layer_output(inspection: Inspection, layer: int) -> torch.Tensor:
    """``[N, features]`` the output of ``layer`` (negative: from the last; the last is the logits)."""
    return inspection.hidden[checked_index(layer, len(inspection.hidden), "layer", "the model")]


def tsne(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """``[N, 2]`` t-SNE of ``features`` ``[N, D]`` (PCA to 50 dimensions first when wider); seeded.

    openTSNE (Poličar et al.) rather than scikit-learn's TSNE: maps of the same quality for less CPU time, with its
    threads under our control (benchmarks/tsne.py measures both). It picks Barnes-Hut below 10,000 points, where it
    is faster than its FFT interpolation (whose grid grows with the map's extent, not the number of points), and FFT
    above. The map gets every CPU other programs leave free (``$GAT_THREADS``, ``--threads`` fix the count; see
    `gat.threads`), never more: on a busy CPU its threads would wait for each other at every iteration.
    """
    from openTSNE import TSNE  # openTSNE and scikit-learn take seconds to import: only when a map is made
    from sklearn.decomposition import PCA

    if features.shape[1] > PCA_DIMENSIONS:
        # PCA keeps at most as many components as there are points
        features = PCA(min(PCA_DIMENSIONS, features.shape[0]), random_state=seed).fit_transform(features)
    # perplexity must stay below the number of points; small graphs (tests, toy data) get a smaller one
    perplexity = min(perplexity, (features.shape[0] - 1) / 3)
    tsne_map = TSNE(
        perplexity=perplexity,
        initialization="pca",
        negative_gradient_method="auto",
        neighbors="exact" if features.shape[0] <= EXACT_NEIGHBOURS_MAX else "auto",
        theta=THETA,
        early_exaggeration_iter=EARLY_EXAGGERATION_ITERATIONS,
        n_iter=ITERATIONS,
        n_jobs=threads_for_long_work(),
        random_state=seed,
    )
    return np.asarray(tsne_map.fit(np.ascontiguousarray(features, dtype=np.float64)))


def layer_map(
    inspection: Inspection, layer: int, nodes: np.ndarray, seed: int, maps: dict[tuple, np.ndarray] | None = None
) -> np.ndarray:
    """``[len(nodes), 2]`` :func:`tsne` of ``layer``'s output at ``nodes``.

    With ``maps`` (a model's :attr:`~visualization.loading.TrainedModel.maps`), each map is made once per layer,
    node sample and seed and kept there: the pictures and the report of one model show the same map, made once.
    """
    layer = checked_index(layer, len(inspection.hidden), "layer", "the model")
    key = (layer, seed, nodes.tobytes())
    if maps is not None and key in maps:
        return maps[key]
    points = tsne(layer_output(inspection, layer).detach().cpu().double().numpy()[nodes], seed)
    if maps is not None:
        maps[key] = points
    return points


def sample_nodes(num_nodes: int, max_nodes: int | None, seed: int) -> np.ndarray:
    """All node ids, or a sorted seeded random sample of ``max_nodes`` of them."""
    if max_nodes is None or num_nodes <= max_nodes:
        return np.arange(num_nodes)
    return np.sort(np.random.default_rng(seed).choice(num_nodes, max_nodes, replace=False))


@styled
def embedding_figure(
    inspection: Inspection,
    graph: Graph,
    layers: list[int] | None = None,
    seed: int = 0,
    max_nodes: int | None = MAX_NODES,
    maps: dict[tuple, np.ndarray] | None = None,
) -> Figure:
    """One t-SNE map per layer in ``layers`` (default :func:`default_layers`), points coloured by class; ``maps``
    shares them with other pictures of the same model (see :func:`layer_map`).

    Each title gives the silhouette score by class of the layer's output itself and of the 2-D map: from -1 to 1,
    higher when same-class nodes lie closer to each other than to other classes. Training nodes are ringed and
    misclassified nodes (the model's prediction is not the label) crossed.
    """
    layers = default_layers(inspection) if layers is None else layers
    outputs = [layer_output(inspection, layer) for layer in layers]  # checks every index before any slow work
    nodes = sample_nodes(graph.num_nodes, max_nodes, seed)
    labels = graph.y.cpu().numpy()[nodes]
    training = graph.train_mask.cpu().numpy()[nodes]
    wrong = marked_misclassified(inspection, graph)[nodes]
    figure = new_figure(5.6 * len(layers), 5.9)
    axes = np.atleast_1d(figure.subplots(1, len(layers)))
    for ax, layer, output in zip(axes, layers, outputs, strict=True):
        features = output.detach().cpu().double().numpy()[nodes]
        points = layer_map(inspection, layer, nodes, seed, maps)
        ax.scatter(*points.T, s=7, c=node_colours(labels, graph.num_classes), alpha=0.85, linewidths=0)
        ax.scatter(*points[training].T, s=30, facecolors="none", edgecolors=INK, linewidths=0.7,
                   label=f"training node ({np.count_nonzero(training)})")  # fmt: skip
        ax.scatter(*points[wrong].T, s=16, marker="x", c=INK, linewidths=0.8,
                   label=f"misclassified ({np.count_nonzero(wrong)})")  # fmt: skip
        index = layer % len(inspection.hidden)
        name = "logits" if index == len(inspection.hidden) - 1 else f"layer {index} output"
        ax.set_title(
            f"{name} ({features.shape[1]}-d)\nsilhouette {_silhouette(features, labels):.3f} "
            f"({features.shape[1]}-d), {_silhouette(points, labels):.3f} (t-SNE)"
        )
        bare(ax)
    markers = axes[-1].get_legend_handles_labels()[0]
    axes[-1].legend(handles=class_handles(labels, graph.num_classes) + markers, loc="upper left",
                    bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    sampled = f", a random {len(nodes):,} of {graph.num_nodes:,} nodes" if len(nodes) < graph.num_nodes else ""
    figure.suptitle(f"t-SNE of node representations, coloured by class: {graph.name}{sampled} (seed {seed})\n"
                    "ring = training node, × = misclassified")  # fmt: skip
    return figure


def marked_misclassified(inspection: Inspection, graph: Graph) -> np.ndarray:
    """``[N]`` bool: the nodes whose predicted class (the largest logit) is not their label (none for multi-label
    graphs, which have no single class to get wrong)."""
    if graph.y.dim() > 1:
        return np.zeros(graph.num_nodes, dtype=bool)
    return (inspection.logits.argmax(dim=1) != graph.y).cpu().numpy()


def _silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    # Undefined for a single class (or one node per class); nan says so without failing the picture.
    return float(silhouette_score(points, labels)) if 1 < len(np.unique(labels)) < len(labels) else float("nan")
