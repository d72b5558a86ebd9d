"""What the model pictures are drawn from: a trained model, the graph it was trained on, one forward pass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from gat.data.graph import Graph
from gat.errors import GATError
from gat.nn.model import GAT, Inspection
from gat.training.config import TrainConfig
from gat.training.loop import inspect_model
from gat.training.steps import load_graph
from gat.training.trainer import load_model
from gat.validate import first_non_finite


@dataclass
class TrainedModel:
    """A trained GAT, the graph it was trained on, and one eval-mode forward pass over that graph."""

    model: GAT
    graph: Graph
    inspection: Inspection
    run_id: str
    run_dir: Path
    best_epoch: int
    # t-SNE maps made so far (or being made by a worker process), by (layer, seed, node sample): each is made once
    # (visualization.embeddings.layer_map)
    maps: dict[tuple, object] = field(default_factory=dict)


def latest_binary(models_dir: str | os.PathLike = "models") -> Path:
    """The most recently written model in ``models_dir/binaries``: the default ``--model``."""
    binaries = sorted(Path(models_dir, "binaries").glob("*.pt"), key=lambda path: path.stat().st_mtime)
    if not binaries:
        raise GATError(
            f"no trained model in {Path(models_dir, 'binaries')}: train one with `python training_script.py` "
            "or pass --model PATH"
        )
    return binaries[-1]


def load_trained(
    model_path: str | os.PathLike,
    dataset: str | None = None,
    data_dir: str | os.PathLike = "data",
    mirror: str | None = None,
) -> TrainedModel:
    """Load a binary (or checkpoint) and the graph it was trained on, and run it once.

    ``dataset``, when given, must be the model's: a model drawn over another graph's nodes would be nonsense.
    """
    model, contents = load_model(model_path)
    diverged = first_non_finite(model.state_dict())
    if diverged is not None:
        raise GATError(
            f"{model_path}: the model's weights are not finite (nan or inf in {diverged}): the run diverged; "
            "retrain it (e.g. with a lower --lr) to draw what it learned"
        )
    config = TrainConfig.from_dict(contents["config"], str(model_path))
    trained_on = contents.get("dataset", config.dataset)
    if dataset is not None and dataset.lower() != trained_on:
        raise GATError(
            f"{model_path}: the model was trained on {trained_on}, not {dataset}: pass --dataset {trained_on}"
        )
    # load_graph rebuilds the training graph exactly (a synthetic graph from the run's seed).
    graph = load_graph(replace(config, data_dir=str(data_dir), data_mirror=mirror))
    if graph.num_features != model.layers[0].in_features:
        raise GATError(
            f"{model_path}: the model takes {model.layers[0].in_features} features per node but {trained_on} "
            f"in {data_dir} has {graph.num_features}: the dataset files differ from the ones it was trained on"
        )
    run_dir = Path(config.runs_dir) / contents["run_id"]
    inspection = inspect_model(model, graph)
    outputs = {f"layer {index} output": hidden for index, hidden in enumerate(inspection.hidden)}
    outputs |= {f"layer {index} attention": attention for index, attention in enumerate(inspection.attention)}
    overflowed = first_non_finite(outputs)
    if overflowed is not None:
        raise GATError(f"{model_path}: the model's {overflowed} on {trained_on} is not finite (its weights overflow)")
    return TrainedModel(model, graph, inspection, contents["run_id"], run_dir, contents.get("best_epoch", 0))


def checked_index(index: int, count: int, name: str, owner: str) -> int:
    """``index`` into ``count`` things, negative counting from the end as in Python; else a one-line GATError."""
    if not -count <= index < count:
        valid = f"{name}s 0..{count - 1}" if count > 1 else f"only {name} 0"
        raise GATError(f"{name} {index} does not exist: {owner} has {valid}")
    return index % count
