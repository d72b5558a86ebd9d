"""Graph Attention Networks in plain PyTorch: datasets, the GAT layer and model, training, checkpoints.

from gat import load_dataset, GAT
graph = load_dataset("cora")
logits = GAT(graph.num_features, graph.num_classes)(graph.x, graph.edge_index)
"""

from gat.config import TrainConfig
from gat.datasets import load_dataset
from gat.errors import GATError
from gat.graph import Graph
from gat.layers import GATLayer
from gat.model import GAT

__all__ = ["GAT", "GATError", "GATLayer", "Graph", "TrainConfig", "load_dataset"]
__version__ = "0.1.0"
