"""Per-dataset hyper-parameters from the papers (each registry entry's ``preset``) applied to a `TrainConfig`.

``--dataset pubmed`` trains the GAT paper's PubMed model unless a flag says otherwise: a preset fills in every
`TrainConfig` field it names, and anything given explicitly (a command-line flag, a keyword) wins over it.
Fields a preset does not name keep `TrainConfig`'s defaults, which are the paper's Cora setup.
"""

from __future__ import annotations

from typing import Any

from gat.data.registry import dataset_names, get_dataset
from gat.training.config import TrainConfig


def score_name(dataset: str) -> str:
    """``"accuracy"`` or ``"micro_f1"``: a run's metrics are ``train_<score>``, ``val_<score>``, ``test_<score>``."""
    return get_dataset(dataset).metric


def score_label(dataset: str) -> str:
    """How console lines name the score: ``"acc"`` or ``"micro-F1"``."""
    return get_dataset(dataset).metric_label


def preset_config(dataset: str, /, **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of ``dataset``'s preset with ``overrides`` on top (e.g. the flags given explicitly)."""
    entry = get_dataset(dataset)
    return TrainConfig(**{**entry.preset, **overrides, "dataset": entry.name})


def describe_presets() -> str:
    """One line per dataset with the flags its preset sets, for ``--help``."""
    lines = []
    for name in dataset_names():
        preset = get_dataset(name).preset
        flags = " ".join(_as_flag(field, value) for field, value in preset.items()) or "(the defaults: the Cora setup)"
        lines.append(f"  {name:<10} {flags}")
    return "\n".join(lines)


def _as_flag(name: str, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    if isinstance(value, tuple):
        return f"{flag} {','.join(map(str, value))}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
