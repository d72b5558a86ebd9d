"""The dataset registry: one entry and one loader make a new dataset trainable everywhere, with no other change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gat.data import registry
from gat.data.graph import Graph
from gat.data.registry import Dataset, dataset_names, get_dataset, load_dataset, register_dataset
from gat.errors import GATError


def load_toy(root: Path, *, mirror=None, seed: int = 0, normalize_features: bool = True) -> Graph:
    """A 4-class ring of 40 nodes whose features are the one-hot class: learnable in a few epochs."""
    generator = torch.Generator().manual_seed(seed)
    num_nodes = 40
    y = torch.arange(num_nodes) % 4
    ring = torch.arange(num_nodes)
    edge_index = torch.cat(
        [torch.stack([ring, (ring + 4) % num_nodes]), torch.stack([(ring + 4) % num_nodes, ring])], 1
    )
    x = torch.nn.functional.one_hot(y, 4).float() + 0.1 * torch.rand(num_nodes, 4, generator=generator)
    masks = [torch.zeros(num_nodes, dtype=torch.bool) for _ in range(3)]
    for mask, part in zip(masks, (range(0, 16), range(16, 28), range(28, 40)), strict=True):
        mask[list(part)] = True
    return Graph(x=x, y=y, edge_index=edge_index, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                 num_classes=4, name="toy")  # fmt: skip


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Dataset:
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))  # the entry goes away after the test
    return register_dataset(Dataset("toy", load_toy, preset={"hidden": 4, "heads": (2, 1)}, published=(1.0, 0.0)))


def test_every_dataset_has_a_complete_entry() -> None:
    assert dataset_names() == ("cora", "citeseer", "pubmed", "ppi", "synthetic")
    for name in dataset_names():
        entry = get_dataset(name)
        assert entry.task in ("transductive", "inductive") and entry.metric in ("accuracy", "micro_f1")
    assert get_dataset("ppi").task == "inductive" and get_dataset("ppi").metric == "micro_f1"
    assert get_dataset("CiteSeer").published == (0.725, 0.007)


def test_a_mistyped_name_gets_a_suggestion() -> None:
    with pytest.raises(GATError, match=r"unknown dataset 'citeseerr' \(did you mean 'citeseer'\?\)"):
        get_dataset("citeseerr")


def test_a_registered_dataset_trains_evaluates_and_reloads_with_no_other_change(toy: Dataset, tmp_path: Path) -> None:
    from gat.cli import build_parser, config_from_args
    from gat.training.trainer import load_model, train

    assert load_dataset("TOY").name == "toy"
    folders = ["--data-dir", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs")]
    args = build_parser().parse_args(["--dataset", "toy", "--epochs", "30", "--no-tensorboard", "--quiet", *folders,
                                      "--models-dir", str(tmp_path / "models")])  # fmt: skip
    config = config_from_args(args)
    assert (config.dataset, config.hidden, config.heads) == ("toy", 4, (2, 1))  # the entry's preset applies
    result = train(config)
    assert set(result.metrics) >= {"train_accuracy", "val_accuracy", "test_accuracy", "test_loss"}
    model, saved = load_model(result.binary_path)
    assert saved["dataset"] == "toy" and model.layers[0].num_heads == 2


def test_options_a_loader_does_not_take_are_refused(toy: Dataset) -> None:
    with pytest.raises(GATError, match="num_nodes: not an option of the toy dataset"):
        load_dataset("toy", num_nodes=5)
