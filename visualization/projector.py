"""What TensorBoard's projector shows for each node: searchable metadata columns and a sprite coloured by class.

The projector maps a layer's outputs to 3-D (PCA, t-SNE, UMAP). Each point carries the columns of
:func:`projector_metadata`, so a search for ``correct`` = ``no`` or ``split`` = ``train`` (or a node id) selects
those nodes, and "colour by" any column colours them; the sprite makes the default view coloured by class, with a
dark frame on every misclassified node.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import to_rgb

from gat.data.graph import Graph
from visualization.degrees import degree_counts
from visualization.style import INK, class_colours

METADATA_HEADER = ["node", "class", "split", "prediction", "correct", "degree"]
SPRITE_PIXELS = 12  # side of each node's square in the sprite sheet
FRAME_PIXELS = 3  # the dark frame of a misclassified node's square


def node_splits(graph: Graph) -> np.ndarray:
    """``[N]`` strings: ``train``, ``val``, ``test``, or ``none`` for nodes in no split."""
    splits = np.full(graph.num_nodes, "none", dtype=object)
    for name in ("train", "val", "test"):
        splits[getattr(graph, f"{name}_mask").cpu().numpy()] = name
    return splits


def predictions(logits: torch.Tensor) -> np.ndarray:
    """``[N]`` the predicted class of every node: the largest logit."""
    return logits.argmax(dim=1).cpu().numpy()


def projector_metadata(graph: Graph, logits: torch.Tensor) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: one row per node, with :data:`METADATA_HEADER`'s columns (degree: neighbours, the
    self-loop not counted). Multi-label graphs (no single class) get node, split and degree only."""
    splits = node_splits(graph)
    degree = degree_counts(graph.edge_index, graph.num_nodes)[0]
    if graph.y.dim() > 1:
        return ["node", "split", "degree"], [[str(n), splits[n], str(degree[n])] for n in range(graph.num_nodes)]
    labels, predicted = graph.y.cpu().numpy(), predictions(logits)
    rows = [
        [str(n), str(labels[n]), splits[n], str(predicted[n]), "yes" if labels[n] == predicted[n] else "no",
         str(degree[n])]
        for n in range(graph.num_nodes)
    ]  # fmt: skip
    return METADATA_HEADER, rows


def class_sprites(labels: np.ndarray, correct: np.ndarray, num_classes: int) -> torch.Tensor:
    """``[N, 3, S, S]`` one square per node in its class colour, framed dark when ``correct`` is False."""
    palette = torch.tensor([to_rgb(colour) for colour in class_colours(num_classes)], dtype=torch.float32)
    sprites = palette[torch.as_tensor(labels)][:, :, None, None].expand(-1, -1, SPRITE_PIXELS, SPRITE_PIXELS).clone()
    frame = torch.ones(SPRITE_PIXELS, SPRITE_PIXELS, dtype=torch.bool)
    frame[FRAME_PIXELS:-FRAME_PIXELS, FRAME_PIXELS:-FRAME_PIXELS] = False
    wrong = torch.as_tensor(~correct)
    ink = torch.tensor(to_rgb(INK))[:, None]
    sprites[wrong] = torch.where(frame, ink[:, :, None].expand(3, SPRITE_PIXELS, SPRITE_PIXELS), sprites[wrong])
    return sprites
