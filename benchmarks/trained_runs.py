"""What the benchmarks that train ``gat.reproduce``'s runs share (``selection_rules.py``, ``tuning.py``,
``paper_differences.py``): the flags `gat.reproduce.runner.run_config` reads, the datasets such a comparison can
train on, and the one-change settings that ``tuning.py`` chooses among and ``selection_rules.py --setting`` trains."""

from __future__ import annotations

import statistics

from gat.data.registry import get_dataset
from gat.errors import GATError, OneLineErrorParser, bounded_int
from gat.threads import MAX_THREADS

# The paper's settings, and one change each (TrainConfig fields): the regularisation and the width.
SETTINGS = {
    "paper": {},
    "dropout-0.5": {"dropout": 0.5},
    "dropout-0.7": {"dropout": 0.7},
    "weight-decay-1e-3": {"weight_decay": 1e-3},
    "hidden-16": {"hidden": 16},
}


def add_run_arguments(parser: OneLineErrorParser) -> None:
    """``--epochs``, ``--threads``, ``--data-dir``, ``--data-mirror``, and the rest of what ``run_config`` reads: the
    CPU and the paper's rule, as ``gat.reproduce`` trains."""
    parser.add_argument("--epochs", type=bounded_int(1), default=None, help="cap on epochs per run (quick checks)")
    threads = bounded_int(1, MAX_THREADS)
    parser.add_argument("--threads", type=threads, default=None, help="CPU threads per run (default: chosen)")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--data-mirror", default=None)
    parser.set_defaults(device="cpu", select="paper")


def one_graph_datasets(names: str) -> list[str]:
    """The comma-separated ``names``; raises GATError for an unknown one or a dataset of many graphs (PPI), so that
    the command refuses it before any run."""
    datasets = names.split(",")
    for dataset in datasets:
        if get_dataset(dataset).task == "inductive":
            raise GATError(f"{dataset} is a dataset of many graphs: this comparison trains on one graph")
    return datasets


def paired_difference(values: list[float], baseline: list[float]) -> tuple[float, float, int, int]:
    """``values`` minus ``baseline``, pair by pair (the same seeds): the mean difference, its standard error, and
    how many pairs are better and worse."""
    differences = [a - b for a, b in zip(values, baseline, strict=True)]
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else 0.0
    return statistics.mean(differences), error, sum(d > 0 for d in differences), sum(d < 0 for d in differences)
