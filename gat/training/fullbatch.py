"""Full-batch training on one graph: every epoch is one gradient step on the training nodes' receptive field."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from gat.training.config import TrainConfig
from gat.training.loop import Run, TrainResult, run_epochs
from gat.training.steps import (
    CapturedEvaluation,
    evaluate_batch,
    full_batch_step,
    full_graph_evaluation,
    load_graph,
    split_batch,
    training_batch,
)


class FullBatchRun(Run):
    """A `Run` whose epoch is one step on the whole training graph (on a GPU, replayed from a CUDA graph)."""

    @functools.cached_property
    def step(self) -> Callable[[], tuple[float, float]]:
        """The full-batch step, built at the first epoch, after any resume (the other trainers have their own)."""
        batch = training_batch(self.graph, self.config.num_layers)
        return full_batch_step(self.model, self.optimizer, batch, self.config.cuda_graphs)

    def train_step(self, epoch: int) -> tuple[float, float]:
        """The epoch's gradient step(s); returns the training loss and accuracy (nan loss: no step was taken)."""
        return self.step()

    @functools.cached_property
    def evaluation(self) -> Callable[[tuple[str, ...]], dict[str, float]]:
        """Evaluation on the whole graph, built at its first use, after any resume."""
        return full_graph_evaluation(self.model, self.graph, self.config.cuda_graphs)

    @functools.cached_property
    def validation(self) -> Callable[[], dict[str, float]]:
        """Every epoch's validation, built at its first use, after any resume: on the validation nodes' receptive
        field, which gives the whole graph's numbers for less work (on Cora the 500 validation nodes read 7130
        and 1948 of the 10556 edges). A captured CUDA graph's replay
        costs one launch whatever the graph's size, so a GPU replays the whole graph's evaluation instead."""
        if isinstance(self.evaluation, CapturedEvaluation):
            return functools.partial(self.evaluation, ("val",))
        batch = split_batch(self.graph, "val", self.config.num_layers)
        return functools.partial(evaluate_batch, self.model, batch, "val")

    def evaluate(self, splits: tuple[str, ...]) -> dict[str, float]:
        return self.validation() if splits == ("val",) else self.evaluation(splits)


def train_full_batch(config: TrainConfig, device: torch.device, saved: dict | None, source: str) -> TrainResult:
    """Train on ``config.dataset``'s graph as ``config`` says, or continue from the checkpoint contents ``saved``."""
    graph = load_graph(config).to(device)
    return run_epochs(FullBatchRun(config, graph, device, saved, source), device)
