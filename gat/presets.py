"""Per-dataset hyper-parameters from the papers, as data in one place.

``--dataset pubmed`` trains the GAT paper's PubMed model unless a flag says otherwise: a preset fills in every
`TrainConfig` field it names, and anything given explicitly (a command-line flag, a keyword) wins over it.
Fields a preset does not name keep `TrainConfig`'s defaults, which are the paper's Cora setup.
"""

from __future__ import annotations

from typing import Any

from gat.config import TrainConfig
from gat.errors import GATError

PRESETS: dict[str, dict[str, Any]] = {
    "cora": {},
    # The GAT paper trains CiteSeer with Cora's settings.
    "citeseer": {},
    # PubMed: 8 output heads (averaged), lr 0.01 and a stronger L2 penalty.
    "pubmed": {"heads": (8, 8), "lr": 0.01, "weight_decay": 0.001},
    # PPI (inductive): 3 layers of 4, 4 and 6 heads, 256 features per head, skip connections, no regularisation.
    "ppi": {
        "num_layers": 3,
        "hidden": 256,
        "heads": (4, 4, 6),
        "dropout": 0.0,
        "weight_decay": 0.0,
        "skip_connection": True,
    },
    "synthetic": {},
}


# What a dataset's results are measured in, (metric key, short label): accuracy (one class per node) or
# micro-F1 (PPI: 121 labels per node, see gat.inductive).
SCORES = {"ppi": ("micro_f1", "micro-F1")}
ACCURACY = ("accuracy", "acc")


def score_name(dataset: str) -> str:
    """``"accuracy"`` or ``"micro_f1"``: a run's metrics are ``train_<score>``, ``val_<score>``, ``test_<score>``."""
    return SCORES.get(dataset, ACCURACY)[0]


def score_label(dataset: str) -> str:
    """How console lines name the score: ``"acc"`` or ``"micro-F1"``."""
    return SCORES.get(dataset, ACCURACY)[1]


def preset_config(dataset: str, /, **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of ``dataset``'s preset with ``overrides`` on top (e.g. the flags given explicitly)."""
    if dataset not in PRESETS:
        raise GATError(f"unknown dataset {dataset!r}: choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[dataset], **overrides, "dataset": dataset})


def describe_presets() -> str:
    """One line per dataset with the flags its preset sets, for ``--help``."""
    lines = []
    for dataset, preset in PRESETS.items():
        flags = " ".join(_as_flag(name, value) for name, value in preset.items()) or "(the defaults: the Cora setup)"
        lines.append(f"  {dataset:<10} {flags}")
    return "\n".join(lines)


def _as_flag(name: str, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    if isinstance(value, tuple):
        return f"{flag} {','.join(map(str, value))}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
