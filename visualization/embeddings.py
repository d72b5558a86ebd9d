"""What the layers learned: t-SNE maps of node representations, coloured by class, with silhouette scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from gat.data.graph import Graph
from gat.nn.model import Inspection
from visualization.choices import MAX_NODES
from visualization.loading import checked_index
from visualization.maps import MapWorker, tsne
from visualization.style import INK, bare, class_handles, new_figure, node_colours, styled


def default_layers(inspection: Inspection) -> list[int]:
    """The last hidden layer and the logits (just the logits for a one-layer model)."""
    return list(range(max(len(inspection.hidden) - 2, 0), len(inspection.hidden)))


def embeddings_name(layers: Sequence[int]) -> str:
    """File name of the t-SNE picture of ``layers``."""
    return "tsne_layer" + "-".join(str(layer) for layer in layers)


def layer_output(inspection: Inspection, layer: int) -> torch.Tensor:
    """``[N, features]`` the output of ``layer`` (negative: from the last; the last is the logits)."""
    return inspection.hidden[checked_index(layer, len(inspection.hidden), "layer", "the model")]


def layer_map(
    inspection: Inspection, layer: int, nodes: np.ndarray, seed: int, maps: dict[tuple, object] | None = None
) -> np.ndarray:
    """``[len(nodes), 2]`` :func:`~visualization.maps.tsne` of ``layer``'s output at ``nodes``.

    With ``maps`` (a model's :attr:`~visualization.loading.TrainedModel.maps`), each map is made once per layer,
    node sample and seed and kept there: the pictures and the report of one model show the same map, made once.
    A map :func:`request_maps` sent to a worker process is waited for here.
    """
    key = map_key(inspection, layer, nodes, seed)
    if maps is not None and key in maps:
        if isinstance(maps[key], PendingMap):
            maps[key] = maps[key].points()
        return maps[key]
    points = tsne(layer_features(inspection, key[0], nodes), seed)
    if maps is not None:
        maps[key] = points
    return points


def map_key(inspection: Inspection, layer: int, nodes: np.ndarray, seed: int) -> tuple[int, int, bytes]:
    """Where a model's maps keep the map of ``layer`` at ``nodes`` with ``seed``: ``(layer counted from 0, seed,
    the node ids' bytes)``."""
    return checked_index(layer, len(inspection.hidden), "layer", "the model"), seed, nodes.tobytes()


def layer_features(inspection: Inspection, layer: int, nodes: np.ndarray) -> np.ndarray:
    """``[len(nodes), features]`` float64: what the map of ``layer`` at ``nodes`` is made from."""
    return layer_output(inspection, layer).detach().cpu().double().numpy()[nodes]


@dataclass(frozen=True)
class PendingMap:
    """A map a :class:`~visualization.maps.MapWorker` is making: the ``index``-th of its maps."""

    worker: MapWorker
    index: int

    def points(self) -> np.ndarray:
        return self.worker.maps()[self.index]


def request_maps(
    worker: MapWorker,
    inspection: Inspection,
    wanted: list[tuple[int, np.ndarray]],
    seed: int,
    maps: dict[tuple, object],
) -> None:
    """Send the maps of ``wanted`` ``(layer, nodes)`` to ``worker`` and note them in ``maps`` as pending, so that
    :func:`layer_map` waits for them instead of making them."""
    requested = {map_key(inspection, layer, nodes, seed): nodes for layer, nodes in wanted}
    to_make = [key for key in requested if key not in maps]
    worker.request([(layer_features(inspection, key[0], requested[key]), seed) for key in to_make])
    maps.update({key: PendingMap(worker, index) for index, key in enumerate(to_make)})


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
    maps: dict[tuple, object] | None = None,
) -> Figure:
    """One t-SNE map per layer in ``layers`` (default :func:`default_layers`), points coloured by class; ``maps``
    shares them with other pictures of the same model (see :func:`layer_map`).

    Each title gives the silhouette score by class of the layer's output itself and of the 2-D map: from -1 to 1,
    higher when same-class nodes lie closer to each other than to other classes. Training nodes are ringed and
    misclassified nodes (the model's prediction is not the label) crossed.
    """
    layers = default_layers(inspection) if layers is None else layers
    widths = [layer_output(inspection, layer).shape[1] for layer in layers]  # every index checked before slow work
    nodes = sample_nodes(graph.num_nodes, max_nodes, seed)
    labels = graph.y.cpu().numpy()[nodes]
    # The layers' own scores first: a worker making the maps (request_maps) has that much longer
    scores = [_silhouette(layer_features(inspection, layer, nodes), labels) for layer in layers]
    training = graph.train_mask.cpu().numpy()[nodes]
    wrong = marked_misclassified(inspection, graph)[nodes]
    figure = new_figure(5.6 * len(layers), 5.9)
    axes = np.atleast_1d(figure.subplots(1, len(layers)))
    for ax, layer, width, score in zip(axes, layers, widths, scores, strict=True):
        points = layer_map(inspection, layer, nodes, seed, maps)
        ax.scatter(*points.T, s=7, c=node_colours(labels, graph.num_classes), alpha=0.85, linewidths=0)
        ax.scatter(*points[training].T, s=30, facecolors="none", edgecolors=INK, linewidths=0.7,
                   label=f"training node ({np.count_nonzero(training)})")  # fmt: skip
        ax.scatter(*points[wrong].T, s=16, marker="x", c=INK, linewidths=0.8,
                   label=f"misclassified ({np.count_nonzero(wrong)})")  # fmt: skip
        index = layer % len(inspection.hidden)
        name = "logits" if index == len(inspection.hidden) - 1 else f"layer {index} output"
        ax.set_title(
            f"{name} ({width}-d)\nsilhouette {score:.3f} ({width}-d), {_silhouette(points, labels):.3f} (t-SNE)"
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
