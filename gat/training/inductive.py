"""Inductive multi-label training (PPI): learn on some graphs, choose the model on others, test on unseen ones.

The GAT paper's PPI setup: every step trains on a batch of two whole training graphs (their disjoint union), the
loss is binary cross-entropy over the 121 independent labels, and the model kept is chosen by the paper's early
stopping rule with micro-F1 in place of accuracy (`gat.training.selection.EarlyStopping`). Checkpoints, binaries,
``metrics.json`` and TensorBoard logs are written by the same modules as full-batch training, so
`gat.training.trainer.load_model` rebuilds a PPI model too. ``python training_script.py --dataset ppi`` comes here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gat.data.ppi import ProteinGraph, batch
from gat.nn.model import GAT
from gat.training.config import TrainConfig
from gat.training.loop import Run, TrainResult, run_epochs
from gat.training.steps import load_graph

EVALUATION_GRAPHS = 2  # graphs per evaluation pass: bounds its memory; the scores do not depend on it


def f1_counts(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[true positives, false positives, false negatives]`` over every (node, label) entry; a label is
    predicted where its logit is > 0 (probability > 0.5)."""
    predicted, actual = logits > 0, labels > 0.5
    return torch.stack([(predicted & actual).sum(), (predicted & ~actual).sum(), (~predicted & actual).sum()]).cpu()


def micro_f1_from_counts(counts: torch.Tensor) -> float:
    """Micro-averaged F1 = 2 TP / (2 TP + FP + FN), pooled over all labels; 0 when there is nothing to find."""
    true_positives, false_positives, false_negatives = counts.tolist()
    denominator = 2 * true_positives + false_positives + false_negatives
    return 2 * true_positives / denominator if denominator else 0.0


def micro_f1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Micro-F1 of multi-label ``logits`` ``[N, L]`` against 0/1 ``labels`` ``[N, L]``."""
    return micro_f1_from_counts(f1_counts(logits, labels))


def batches(graphs: list[ProteinGraph]) -> list[ProteinGraph]:
    """``graphs`` in order, ``EVALUATION_GRAPHS`` at a time, each batch one disjoint union."""
    return [batch(graphs[start : start + EVALUATION_GRAPHS]) for start in range(0, len(graphs), EVALUATION_GRAPHS)]


@torch.no_grad()
def evaluate(model: GAT, unions: list[ProteinGraph], split: str) -> dict[str, float]:
    """Mean BCE loss and micro-F1 of the model in eval mode over every node and label of ``unions``."""
    model.eval()
    loss_sum, counts, entries = 0.0, torch.zeros(3, dtype=torch.long), 0
    for union in unions:
        logits = model(union.x, union.edge_index)
        loss_sum += F.binary_cross_entropy_with_logits(logits, union.y, reduction="sum").item()
        counts += f1_counts(logits, union.y)
        entries += union.y.numel()
    return {f"{split}_loss": loss_sum / entries, f"{split}_micro_f1": micro_f1_from_counts(counts)}


class _InductiveRun(Run):
    """A PPI run: `gat.training.loop.Run` (state, checkpoints, binary, metrics.json) with batches of whole graphs
    for the step and micro-F1 over graphs for the evaluation."""

    def __init__(
        self,
        config: TrainConfig,
        splits: dict[str, list[ProteinGraph]],
        device: torch.device,
        saved: dict | None,
        source: str,
    ) -> None:
        self.train_graphs = splits["train"]
        self.evaluation = {split: batches(graphs) for split, graphs in splits.items()}  # built once: cached sorts
        # The base class reads the sizes and the name from ``graph``, and the epoch loop logs attention entropy
        # on it: the validation graphs (one small batch) serve, and are what the header's "data" line shows.
        super().__init__(config, self.evaluation["val"][0], device, saved, source)

    @property
    def edges_per_step(self) -> int:
        """A step trains on a batch of ``config.graphs_per_batch`` whole training graphs (the thread policy's work
        size)."""
        return sum(graph.num_edges for graph in self.train_graphs[: self.config.graphs_per_batch])

    def train_step(self, epoch: int) -> tuple[float, float]:
        """One pass over the training graphs in random batches; returns the mean loss and the micro-F1 of the
        training forward passes (a nan loss stops the pass before that step is taken)."""
        self.model.train()
        order = torch.randperm(len(self.train_graphs)).tolist()  # global RNG: checkpoints restore it
        loss_sum, counts, entries = 0.0, torch.zeros(3, dtype=torch.long), 0
        size = self.config.graphs_per_batch
        for start in range(0, len(order), size):
            union = batch([self.train_graphs[index] for index in order[start : start + size]])
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(union.x, union.edge_index)
            loss = F.binary_cross_entropy_with_logits(logits, union.y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):  # never step on a nan/inf loss: that would poison the weights
                return loss_value, 0.0
            loss.backward()
            self.optimizer.step()
            loss_sum += loss_value * union.y.numel()
            counts += f1_counts(logits.detach(), union.y)
            entries += union.y.numel()
        return loss_sum / entries, micro_f1_from_counts(counts)

    def evaluate(self, splits: tuple[str, ...]) -> dict[str, float]:
        return {
            key: value for split in splits for key, value in evaluate(self.model, self.evaluation[split], split).items()
        }


def train_inductive(
    config: TrainConfig, device: torch.device, saved: dict | None = None, source: str = ""
) -> TrainResult:
    """Train on PPI as ``config`` says, or continue the run in the checkpoint contents ``saved`` (read from
    ``source``); `gat.training.trainer.train` calls this for ``dataset="ppi"``. The same epoch loop and files as
    full-batch training; the metrics are ``{split}_loss`` and ``{split}_micro_f1``."""
    graphs_by_split = load_graph(config)  # the registry's loader: {split: [graphs]}
    splits = {split: [graph.to(device) for graph in graphs] for split, graphs in graphs_by_split.items()}
    if not config.quiet:
        counts = "/".join(str(len(graphs)) for graphs in splits.values())
        nodes = "/".join(str(sum(graph.num_nodes for graph in graphs)) for graphs in splits.values())
        per_step = f"{config.graphs_per_batch} graphs per training batch"
        print(f"ppi    train/val/test graphs {counts}, nodes {nodes}; {per_step}")
    return run_epochs(_InductiveRun(config, splits, device, saved, source), device)
