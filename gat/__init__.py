"""Graph Attention Networks in plain PyTorch: datasets, the GAT layer and model, training, checkpoints.

    from gat import GAT, load_dataset
    graph = load_dataset("cora")
    logits = GAT(graph.num_features, graph.num_classes)(graph.x, graph.edge_index)

The package, from data to trained model (each subpackage imports only the ones before it):

- `gat.data`      the `Graph`, the dataset registry, Planetoid / PPI / synthetic loaders, safe downloads;
- `gat.nn`        the GAT and GATv2 layers, the model, attention analysis; `gat.nn.reference` is the layer in
                  plain PyTorch (read it first), `gat.nn.kernels` the fused edge-list kernels behind the fast path;
- `gat.sampling`  neighbour sampling and exact layer-wise inference for graphs too big for one step;
- `gat.training`     the config, presets, the shared epoch loop and its trainers, checkpoints, logs;
- `gat.cli`, `gat.reproduce`: the training command and the paper's results table.

Names below are imported on first use, so ``import gat`` (and a CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# MKL's strict reproducibility mode: its matrix products give the same bits whatever the thread count, so a run's
# numbers do not depend on how many threads gat.threads gives it (docs/design.md measures its price). MKL reads the
# variable at its first product, so it holds for any process that imports gat before multiplying matrices.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# public name -> the module that defines it
_EXPORTS = {
    "GAT": "gat.nn.model",
    "GATLayer": "gat.nn.layers",
    "GATv2Layer": "gat.nn.layers",
    "Graph": "gat.data.graph",
    "Dataset": "gat.data.registry",
    "load_dataset": "gat.data.registry",
    "get_dataset": "gat.data.registry",
    "register_dataset": "gat.data.registry",
    "TrainConfig": "gat.training.config",
    "TrainResult": "gat.training.loop",
    "train": "gat.training.trainer",
    "load_model": "gat.training.trainer",
    "GATError": "gat.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gat' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from gat.data.graph import Graph as Graph
    from gat.data.registry import Dataset as Dataset
    from gat.data.registry import get_dataset as get_dataset
    from gat.data.registry import load_dataset as load_dataset
    from gat.data.registry import register_dataset as register_dataset
    from gat.errors import GATError as GATError
    from gat.nn.layers import GATLayer as GATLayer
    from gat.nn.layers import GATv2Layer as GATv2Layer
    from gat.nn.model import GAT as GAT
    from gat.training.config import TrainConfig as TrainConfig
    from gat.training.loop import TrainResult as TrainResult
    from gat.training.trainer import load_model as load_model
    from gat.training.trainer import train as train
