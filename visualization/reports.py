"""Sets of pictures written together: the dataset's, and a trained model's (also logged to TensorBoard).

The command line (``python -m visualization``) and ``training_script.py --visualize-before / --visualize-after``
both write through these functions, so the files and their names are the same whichever way they were made.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary

from gat.data.graph import Graph
from gat.io import save_bytes, save_json
from gat.training.tracking import writing_events
from visualization.attention import draw_attention
from visualization.choices import MAX_NODES, TOP_K
from visualization.degrees import dataset_summary, degree_figure, top_degree_nodes
from visualization.embeddings import default_layers, embedding_figure, embeddings_name, request_maps, sample_nodes
from visualization.entropy import entropy_figure, entropy_statistics, save_statistics
from visualization.graph_drawing import draw_graph
from visualization.loading import TrainedModel, load_trained
from visualization.maps import MapWorker
from visualization.projector import class_sprites, predictions, projector_metadata
from visualization.report import report_map, write_report
from visualization.style import figure_png, save_figures


def attention_name(node: int, layer: int, head: int | None) -> str:
    """File name of an attention picture (``head`` None: the grid of all heads)."""
    return f"attention_node{node}_layer{layer}_" + ("heads" if head is None else f"head{head}")


def dataset_figures(graph: Graph) -> dict[str, Figure]:
    """The dataset's pictures by file name (degrees; the whole-graph drawing is slower and has its own command)."""
    return {f"{graph.name}_degrees": degree_figure(graph)}


def write_dataset_summary(graph: Graph, out_dir: str | os.PathLike) -> Path:
    """``<dataset>_summary.json``: the numbers of :func:`~visualization.degrees.dataset_summary`."""
    return save_json(dataset_summary(graph), Path(out_dir) / f"{graph.name}_summary.json")


def write_dataset_report(graph: Graph, out_dir: str | os.PathLike, drawing: bool = True) -> list[Path]:
    """The dataset's pictures and summary, as ``python -m visualization dataset`` writes them, and with
    ``drawing`` the whole-graph drawing of ``python -m visualization graph`` (its defaults)."""
    figures = dataset_figures(graph)
    if drawing:
        figures[graph_name(graph.name, "igraph", "kamada-kawai")] = draw_graph(graph)
    return [*save_figures(figures, out_dir), write_dataset_summary(graph, out_dir)]


def graph_name(dataset: str, backend: str, layout: str) -> str:
    """File name of a whole-graph drawing."""
    return f"{dataset}_graph_{backend}_{layout}"


def model_figures(
    trained: TrainedModel, top_k: int = TOP_K, seed: int = 0, max_nodes: int | None = MAX_NODES
) -> Iterator[tuple[str, Figure]]:
    """``(file name, figure)`` one at a time: the attention neighbourhoods of the ``top_k`` highest-degree nodes
    (every layer, all heads), the entropy histograms, and last the t-SNE maps of the last hidden layer and the
    logits (a :class:`~visualization.maps.MapWorker` making them has until then: draw each figure as it comes)."""
    inspection, graph = trained.inspection, trained.graph
    for node in top_degree_nodes(graph, top_k):
        for layer in range(len(inspection.attention)):
            yield attention_name(node, layer, None), draw_attention(inspection, graph, node, layer)
    yield "entropy", entropy_figure(inspection, title=entropy_title(trained))
    layers = default_layers(inspection)
    yield embeddings_name(layers), embedding_figure(inspection, graph, layers, seed, max_nodes, trained.maps)


def model_maps(trained: TrainedModel, seed: int = 0, max_nodes: int | None = MAX_NODES) -> list[tuple[int, np.ndarray]]:
    """``(layer, nodes)`` of each t-SNE map :func:`model_figures` draws (to have them made by a worker meanwhile)."""
    nodes = sample_nodes(trained.graph.num_nodes, max_nodes, seed)
    return [(layer, nodes) for layer in default_layers(trained.inspection)]


def entropy_title(trained: TrainedModel) -> str:
    """The entropy figure's title, naming the run it is about."""
    return f"attention entropy per node vs uniform attention: {trained.graph.name}, run {trained.run_id}"


def visualize_run(
    model_path: str | os.PathLike, data_dir: str | os.PathLike = "data", mirror: str | None = None,
    tensorboard: bool = True,
) -> list[Path]:  # fmt: skip
    """Draw :func:`model_figures` for a trained model into ``runs/<run-id>/figures/``, with the entropy table,
    and write the run's ``report.html``; with ``tensorboard``, also log the figures and the embeddings (for the
    projector) into the run's events."""
    with MapWorker() as worker:  # it imports openTSNE while the model loads, then makes the maps while we draw
        trained = load_trained(model_path, data_dir=data_dir, mirror=mirror)
        wanted = [*model_maps(trained), report_map(trained)]  # one map for both where they map all nodes
        request_maps(worker, trained.inspection, wanted, 0, trained.maps)
        out_dir = trained.run_dir / "figures"
        pngs = {name: figure_png(figure) for name, figure in model_figures(trained, TOP_K)}
        paths = [save_bytes(png, out_dir / f"{name}.png") for name, png in pngs.items()]
        paths += save_statistics(entropy_statistics(trained.inspection), out_dir, "entropy_statistics")
        if tensorboard:
            log_to_tensorboard(trained, pngs)
        return [*paths, write_report(trained, model_path=model_path)]  # after the pictures: its gallery shows them


def log_to_tensorboard(trained: TrainedModel, pngs: dict[str, bytes]) -> None:
    """Pictures (PNG files' bytes, :func:`~visualization.style.figure_png`) under ``figures/<name>``; the last hidden
    layer and the logits as embeddings for TensorBoard's projector (3-D PCA, t-SNE, UMAP), each node with the
    columns of :func:`~visualization.projector.projector_metadata` and a sprite in its class colour, framed when
    misclassified."""
    graph = trained.graph
    header, rows = projector_metadata(graph, trained.inspection.logits)
    sprites = None
    if graph.y.dim() == 1:
        labels = graph.y.cpu().numpy()
        sprites = class_sprites(labels, labels == predictions(trained.inspection.logits), graph.num_classes)
    with writing_events(trained.run_dir) as writer:  # a failed write (a full disk) is one line, not lost
        for name, png in pngs.items():
            # The PNG as written, not add_image's new encoding of the pixels (which costs as much as drawing)
            width, height = Image.open(io.BytesIO(png)).size
            image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
            summary = Summary(value=[Summary.Value(tag=f"figures/{name}", image=image)])
            writer._get_file_writer().add_summary(summary, trained.best_epoch)
        for layer in default_layers(trained.inspection):
            output = trained.inspection.hidden[layer]
            tag = "logits" if layer == len(trained.inspection.hidden) - 1 else f"layer{layer}_output"
            writer.add_embedding(output, metadata=rows, metadata_header=header, label_img=sprites, tag=tag,
                                 global_step=trained.best_epoch)  # fmt: skip
