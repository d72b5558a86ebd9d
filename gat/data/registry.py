"""The dataset registry: one table of every dataset the project can train on.

Adding a dataset is one `Dataset` entry (here, or `register_dataset` from your own code) and one loader; nothing else in
the library tests dataset names. Each entry says how to load the data, whether the task is transductive (one
graph, node splits) or inductive (separate train / val / test graphs), what its results are measured in, the
hyper-parameters of its paper (the preset ``--dataset NAME`` starts from), and the published result.

    from gat.data.registry import get_dataset, load_dataset
    graph = load_dataset("cora")                     # a Graph
    get_dataset("citeseer").published                # (0.725, 0.007): the GAT paper's mean ± std
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gat.errors import GATError

if TYPE_CHECKING:
    from gat.data.graph import Graph
    from gat.data.ppi import ProteinGraph

# A loader: ``load(root, *, mirror, seed, normalize_features, **options)`` -> a Graph (transductive) or, for an
# inductive dataset, ``{"train": [...], "val": [...], "test": [...]}`` graphs.
Loader = Callable[..., "Graph | dict[str, list[ProteinGraph]]"]


@dataclass(frozen=True)
class Dataset:
    """One row of the registry."""

    name: str
    load: Loader
    task: Literal["transductive", "inductive"] = "transductive"
    metric: str = "accuracy"  # a run's metrics are train_<metric>, val_<metric>, test_<metric>
    metric_label: str = "acc"  # how console lines name it
    preset: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields from the dataset's paper
    published: tuple[float, float] | None = None  # the GAT paper's test score, mean and std
    description: str = ""


DATASETS: dict[str, Dataset] = {}


@dataclass(frozen=True)
class LazyLoader:
    """A loader named by module and function, imported at its first call: naming, choosing and checking datasets
    (``--help``, a flag error) then needs neither torch nor numpy. ``args`` go before the caller's arguments."""

    module: str
    function: str
    args: tuple = ()

    def resolve(self) -> Callable[..., Any]:
        return functools.partial(getattr(importlib.import_module(self.module), self.function), *self.args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


def register_dataset(dataset: Dataset) -> Dataset:
    """Add ``dataset`` to the registry (a name already there is replaced); returns it."""
    DATASETS[dataset.name.lower()] = dataset
    return dataset


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)


def get_dataset(name: str) -> Dataset:
    """The registry entry of ``name`` (any case); an unknown name raises `GATError` with a suggestion."""
    key = name.lower()
    if key in DATASETS:
        return DATASETS[key]
    close = difflib.get_close_matches(key, DATASETS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise GATError(f"unknown dataset {name!r}{hint}: choose one of {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    root: str | os.PathLike = "data",
    *,
    mirror: str | os.PathLike | None = None,
    seed: int = 0,
    normalize_features: bool = True,
    **options: Any,
) -> Graph | dict[str, list[ProteinGraph]]:
    """Load dataset ``name`` from (or into) the cache folder ``root``.

    Downloaded files come from ``mirror``, else ``$GAT_DATA_MIRROR``, else the dataset's public home (see
    `gat.data.download`). ``seed`` only matters for generated data; ``options`` go to the dataset's loader (e.g.
    ``num_nodes`` for ``synthetic``). Returns a `Graph`, or for an inductive dataset (PPI) its graphs per split.
    """
    dataset = get_dataset(name)
    load = dataset.load.resolve() if isinstance(dataset.load, LazyLoader) else dataset.load
    accepted = inspect.signature(load).parameters
    unknown = [option for option in options if option not in accepted]
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        raise GATError(f"{', '.join(unknown)}: not an option of the {dataset.name} dataset")
    return load(Path(root), mirror=mirror, seed=seed, normalize_features=normalize_features, **options)


register_dataset(
    Dataset(
        "cora",
        LazyLoader("gat.data.planetoid", "load_planetoid", ("cora",)),
        published=(0.830, 0.007),
        description="2708 papers, 7 classes, 1433 bag-of-words features (Planetoid public split)",
    )
)
register_dataset(
    Dataset(
        "citeseer",
        LazyLoader("gat.data.planetoid", "load_planetoid", ("citeseer",)),
        published=(0.725, 0.007),
        description="3327 papers, 6 classes, 3703 features (Planetoid public split)",
    )
)
register_dataset(
    Dataset(
        "pubmed",
        LazyLoader("gat.data.planetoid", "load_planetoid", ("pubmed",)),
        # 8 output heads (averaged), lr 0.01 and a stronger L2 penalty.
        preset={"heads": (8, 8), "lr": 0.01, "weight_decay": 0.001},
        published=(0.790, 0.003),
        description="19717 papers, 3 classes, 500 features (Planetoid public split)",
    )
)
register_dataset(
    Dataset(
        "ppi",
        LazyLoader("gat.data.ppi", "load_ppi"),
        task="inductive",
        metric="micro_f1",
        metric_label="micro-F1",
        # 3 layers of 4, 4 and 6 heads, 256 features per head, skip connections, no regularisation.
        preset={
            "num_layers": 3,
            "hidden": 256,
            "heads": (4, 4, 6),
            "dropout": 0.0,
            "weight_decay": 0.0,
            "skip_connection": True,
        },
        published=(0.973, 0.002),
        description="24 protein graphs (20 train, 2 val, 2 test), 121 labels per node, 50 features",
    )
)
register_dataset(
    Dataset(
        "synthetic",
        LazyLoader("gat.data.synthetic", "load_synthetic"),
        description="a seeded stochastic block model (gat.data.synthetic), generated in memory",
    )
)
