"""The pieces of one training epoch, as plain functions: the model and optimiser a config describes, the nodes a
full-batch step computes on, one gradient step, and evaluation. :mod:`gat.training.loop` strings them into a run
(early stopping, checkpoints, logs); the notebook and the benchmarks call them directly.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gat.data.graph import Graph
from gat.data.registry import load_dataset
from gat.errors import GATError
from gat.nn.kernels.projection import cached_transposes
from gat.nn.layers import attention_layers
from gat.nn.model import GAT
from gat.sampling.sampler import SampledBatch, gather_rows, receptive_field
from gat.training.allocator import gib
from gat.training.config import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GATError("--device cuda was asked for but no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(name)


def load_graph(config: TrainConfig) -> Graph:
    """The graph ``config`` trains on (generated data from the run's seed, so a resumed run rebuilds it exactly)."""
    return load_dataset(config.dataset, root=config.data_dir, mirror=config.data_mirror, seed=config.seed)


def build_model(config: TrainConfig, num_features: int, num_classes: int) -> GAT:
    return GAT(
        num_features,
        num_classes,
        hidden=config.hidden,
        heads=config.heads,
        num_layers=config.num_layers,
        dropout=config.dropout,
        skip_connection=config.skip_connection,
        layer=config.layer,
    )


def check_memory(config: TrainConfig, graph: Graph, device: torch.device) -> None:
    """Refuse, with the estimate, a model that cannot fit in ``device``'s free memory (before allocating it).

    The estimate is a lower bound: the parameters four times (weights, gradients, Adam's two moments) and one
    forward pass over ``graph`` (every layer's projected features and attention coefficients), in float32.
    """
    with torch.device("meta"):  # the real model's parameter count without allocating it
        model = build_model(config, graph.num_features, graph.num_classes)
    model_bytes = 4 * 4 * sum(parameter.numel() for parameter in model.parameters())
    step_bytes = 4 * sum(
        (graph.num_nodes * layer.out_features + graph.edge_index.shape[1] + graph.num_nodes) * layer.num_heads
        for layer in attention_layers(model)
    )
    available = available_memory(device)
    if model_bytes + step_bytes > available:
        raise GATError(
            f"this model needs at least {gib(model_bytes + step_bytes)} (model, gradients and Adam state "
            f"{gib(model_bytes)}, one pass over {graph.name} {gib(step_bytes)}) but {device} has "
            f"{gib(available)} free: lower --hidden, --heads or --num-layers"
        )


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device``: the GPU's free memory, or the kernel's MemAvailable estimate."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: all physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Adam:
    """The paper's Adam with L2 weight decay. ``fused`` runs the update of all parameters in one kernel instead
    of several per parameter, a measurable part of a small graph's step."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)


@dataclass
class TrainingBatch:
    """What a full-batch training step (or the evaluation of one split) computes on: features ``x``, the graph
    (one ``edge_index``, or one per layer with each layer's ``num_targets``, see :meth:`gat.nn.model.GAT.forward`) and
    the output rows ``targets`` that the loss compares with ``labels``; ``None`` for every row, in order (a sampled
    batch, whose last layer computes exactly its seeds)."""

    x: torch.Tensor
    edge_index: torch.Tensor | list[torch.Tensor]
    targets: torch.Tensor | None
    labels: torch.Tensor
    num_targets: list[int] | None = None


def training_batch(graph: Graph, num_layers: int | None = None) -> TrainingBatch:
    """The training nodes of ``graph`` and what their outputs depend on (:func:`split_batch` of ``"train"``).

    On Cora the 140 training nodes read 1664 of the 2708 nodes, and 3834 (first layer) and 638 (second layer) of
    the 10556 edges.
    """
    return split_batch(graph, "train", num_layers)


def split_batch(graph: Graph, split: str, num_layers: int | None = None) -> TrainingBatch:
    """The nodes of ``split`` (``"train"``, ``"val"`` or ``"test"``) of ``graph`` and what their outputs depend on.

    With ``num_layers`` (the model's depth, for a :class:`GAT`): only those nodes' receptive field
    (:func:`gat.sampling.sampler.receptive_field`), when it holds at most half of the graph's edges. Their loss and its
    gradient are exactly those of the whole graph, and dropout has the same distribution wherever the loss can
    see it; only outputs that no loss term reads are skipped. Without ``num_layers`` (or when most of the graph
    is needed anyway, or the split is empty): the whole graph, with one ``edge_index``.
    """
    nodes = getattr(graph, f"{split}_mask").nonzero().squeeze(1)
    if num_layers is not None and nodes.numel() > 0:
        cpu = graph.to("cpu")  # sampling runs on the CPU
        field = receptive_field(cpu.edge_index, cpu.num_nodes, nodes.cpu(), num_layers)
        if field.num_sampled_edges <= num_layers * graph.num_edges / 2:
            return sampled_batch(cpu, field, graph.x.device)
    return TrainingBatch(graph.x, graph.edge_index, nodes, graph.y.index_select(0, nodes))


def sampled_batch(graph: Graph, sample: SampledBatch, device: torch.device) -> TrainingBatch:
    """The model's inputs for a batch sampled from ``graph`` (on the CPU), on ``device``: the sampled nodes'
    features, one ``edge_index`` per layer and its number of targets, and the seeds' labels (the seeds are the
    output's rows, in order)."""
    return TrainingBatch(
        gather_rows(graph.x, sample.nodes).to(device),
        [edges.to(device) for edges in sample.edge_index],
        None,
        graph.y.index_select(0, sample.seeds).to(device),
        sample.num_targets,
    )


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: TrainingBatch) -> tuple[float, float]:
    """One gradient step on the training nodes; returns (loss, accuracy) of that forward pass."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss, accuracy = training_loss(model, batch)
    loss_value = loss.item()
    if math.isfinite(loss_value):  # never step on a nan/inf loss: that would poison the weights
        loss.backward()
        optimizer.step()
    return loss_value, accuracy.item()


def training_loss(model: nn.Module, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy of the model's outputs for ``batch.targets`` (the forward pass of a step, and of
    :func:`evaluate_batch`)."""
    # Only a sampled batch has target counts; without them any model with GAT's (x, edge_index) call runs (the
    # benchmark's references).
    layer_targets = () if batch.num_targets is None else (batch.num_targets,)
    logits = model(batch.x, batch.edge_index, *layer_targets)
    if batch.targets is not None:  # selecting every row would cost a gather forward and a scatter backward
        logits = logits.index_select(0, batch.targets)
    return F.cross_entropy(logits, batch.labels), (logits.argmax(1) == batch.labels).float().mean()


def full_batch_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: TrainingBatch, cuda_graphs: bool = True
) -> Callable[[], tuple[float, float]]:
    """:func:`train_step` on ``batch`` as a function of nothing; on a CUDA GPU replayed from a CUDA graph
    (:class:`CapturedStep`) unless ``cuda_graphs`` is False."""
    if cuda_graphs and batch.x.device.type == "cuda":
        return CapturedStep(model, optimizer, batch)
    return functools.partial(train_step, model, optimizer, batch)


def full_graph_evaluation(
    model: GAT, graph: Graph, cuda_graphs: bool = True
) -> Callable[[tuple[str, ...]], dict[str, float]]:
    """:func:`evaluate` on ``graph`` as a function of the splits; on a CUDA GPU the forward pass is replayed
    from a CUDA graph (:class:`CapturedEvaluation`) unless ``cuda_graphs`` is False."""
    if cuda_graphs and graph.x.device.type == "cuda":
        return CapturedEvaluation(model, graph)
    return functools.partial(evaluate, model, graph)


class CapturedStep:
    """:func:`train_step` on a CUDA GPU, with the forward and backward pass replayed from a CUDA graph.

    On a small graph a GPU step is bound by the host launching kernels, not by the GPU computing. A CUDA graph
    records the kernels once and replays them all with one launch (see :func:`capture` for what that asks of
    the inputs). The optimizer
    step runs outside the graph, after the loss is read, so a non-finite loss still never reaches the weights,
    and nothing may set the gradients to None: the graph writes them in place. Every replay draws new dropout
    masks: the same ones as eager steps from the same random state (tested).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: TrainingBatch) -> None:
        def forward_backward() -> tuple[torch.Tensor, torch.Tensor]:
            optimizer.zero_grad(set_to_none=True)
            loss, accuracy = training_loss(model, batch)
            loss.backward()
            return loss, accuracy

        model.train()
        self.optimizer, self.batch = optimizer, batch  # the graph reads the batch's memory: keep it alive
        self.graph, (self.loss, self.accuracy), self.kept_alive = capture(forward_backward, model, batch.x.device)

    def __call__(self) -> tuple[float, float]:
        self.graph.replay()
        loss_value = self.loss.item()
        if math.isfinite(loss_value):
            self.optimizer.step()
        return loss_value, self.accuracy.item()


class CapturedEvaluation:
    """:func:`evaluate` on a CUDA GPU, with the eval-mode forward pass replayed from a CUDA graph: like a
    training step, it is bound by launching kernels on small graphs. The metrics are computed eagerly."""

    def __init__(self, model: GAT, graph: Graph) -> None:
        @torch.no_grad()
        def forward() -> torch.Tensor:
            return model(graph.x, graph.edge_index)

        model.eval()
        self.model, self.graph = model, graph  # the graph reads the features' and edges' memory: keep them alive
        self.cuda_graph, self.logits, self.kept_alive = capture(forward, model, graph.x.device)

    def __call__(self, splits: tuple[str, ...] = ("val",)) -> dict[str, float]:
        self.model.eval()  # as evaluate() leaves it
        self.cuda_graph.replay()
        return split_metrics(self.logits, self.graph, splits)


def capture(run: Callable[[], Any], model: nn.Module, device: torch.device) -> tuple[torch.cuda.CUDAGraph, Any, list]:
    """Record ``run`` (kernels on ``device``) as a CUDA graph; returns the graph, the outputs of the recorded
    call (each replay overwrites them) and what the replays read that must be kept alive.

    Two warm-up calls on a side stream come first, as capture requires; they also fill the layers' caches
    (sorting edges makes the host wait for the GPU, which a capture cannot) and create cuSPARSE's handles. Their
    random draws are given back, so the warm-up leaves the run's random stream where it was. A replay reruns the
    recorded kernels on the recorded memory: whatever ``run`` reads (inputs, parameters, the layers' cached
    neighbourhoods and the features' cached transpose) must stay the same tensors, updated in place if at all.
    """
    random_state = torch.cuda.get_rng_state(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.set_rng_state(random_state, device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = run()
    kept_alive = [cached_transposes(), *(layer.cached_neighbourhoods() for layer in attention_layers(model))]
    return graph, outputs, kept_alive


# Evaluation runs in inference mode, which skips no_grad's version counters and view tracking. The layers build their
# cached neighbourhoods with it off (gat.nn.layers), so a later training step on the same graph can save them for its
# backward; the aggregation plans and segment-sum layouts an evaluation builds are inference tensors, which training may
# still read: only hand-written autograd functions use them, and never save them.
@torch.inference_mode()
def evaluate(model: GAT, graph: Graph, splits: tuple[str, ...] = ("val",)) -> dict[str, float]:
    """Loss and accuracy of the model in eval mode (no dropout) on each split: ``{"val_loss": ..., ...}``."""
    model.eval()
    return split_metrics(model(graph.x, graph.edge_index), graph, splits)


@torch.inference_mode()
def evaluate_batch(model: GAT, batch: TrainingBatch, split: str) -> dict[str, float]:
    """:func:`evaluate` of one split on its batch (:func:`split_batch`): ``{"<split>_loss": ..., ...}``."""
    model.eval()
    loss, accuracy = training_loss(model, batch)
    return {f"{split}_loss": loss.item(), f"{split}_accuracy": accuracy.item()}


def split_metrics(logits: torch.Tensor, graph: Graph, splits: tuple[str, ...]) -> dict[str, float]:
    """Cross-entropy and accuracy of ``logits`` (``[N, num_classes]``) on each split's nodes."""
    metrics = {}
    for split in splits:
        mask = getattr(graph, f"{split}_mask")
        metrics[f"{split}_loss"] = F.cross_entropy(logits[mask], graph.y[mask]).item()
        metrics[f"{split}_accuracy"] = (logits[mask].argmax(1) == graph.y[mask]).float().mean().item()
    return metrics
