"""Pictures of graphs and of what a trained GAT learned: one plain function per picture, each returning a
matplotlib ``Figure`` (for notebooks), and a command line, ``python -m visualization``, that saves them.

    from visualization import load_trained, draw_attention
    trained = load_trained("models/binaries/<run-id>.pt")
    draw_attention(trained.inspection, trained.graph, node=1358, layer=0)
"""

from visualization.attention import draw_attention, neighbourhood_attention
from visualization.degrees import dataset_summary, degree_counts, degree_figure
from visualization.embeddings import embedding_figure, tsne
from visualization.entropy import entropy_figure, entropy_statistics
from visualization.graph_drawing import draw_graph
from visualization.loading import load_trained
from visualization.reports import visualize_run

__all__ = [
    "dataset_summary",
    "degree_counts",
    "degree_figure",
    "draw_attention",
    "draw_graph",
    "embedding_figure",
    "entropy_figure",
    "entropy_statistics",
    "load_trained",
    "neighbourhood_attention",
    "tsne",
    "visualize_run",
]
