"""Pictures of graphs and of what a trained GAT learned: one plain function per picture, each returning a
matplotlib ``Figure`` (for notebooks), and a command line, ``python -m visualization``, that saves them.

    from visualization import load_trained, draw_attention
    trained = load_trained("models/binaries/<run-id>.pt")
    draw_attention(trained.inspection, trained.graph, node=1358, layer=0)

Names below are imported on first use, so the command line's ``--help`` needs neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module that defines it
_EXPORTS = {
    "dataset_summary": "visualization.degrees",
    "degree_counts": "visualization.degrees",
    "degree_figure": "visualization.degrees",
    "draw_attention": "visualization.attention",
    "draw_graph": "visualization.graph_drawing",
    "embedding_figure": "visualization.embeddings",
    "entropy_figure": "visualization.entropy",
    "entropy_statistics": "visualization.entropy",
    "load_trained": "visualization.loading",
    "neighbourhood_attention": "visualization.attention",
    "tsne": "visualization.maps",
    "visualize_run": "visualization.reports",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visualization' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from visualization.attention import draw_attention as draw_attention
    from visualization.attention import neighbourhood_attention as neighbourhood_attention
    from visualization.degrees import dataset_summary as dataset_summary
    from visualization.degrees import degree_counts as degree_counts
    from visualization.degrees import degree_figure as degree_figure
    from visualization.embeddings import embedding_figure as embedding_figure
    from visualization.entropy import entropy_figure as entropy_figure
    from visualization.entropy import entropy_statistics as entropy_statistics
    from visualization.graph_drawing import draw_graph as draw_graph
    from visualization.loading import load_trained as load_trained
    from visualization.maps import tsne as tsne
    from visualization.reports import visualize_run as visualize_run
