"""Mini-batch GAT training on sampled neighbourhoods, on one process or several (DistributedDataParallel).

    python training_script.py --dataset synthetic --fanouts 10,10 --batch-size 1024
    torchrun --nproc_per_node=2 training_script.py --distributed --dataset synthetic --fanouts 10,10

An epoch shuffles the training nodes and walks through them in batches: each batch samples the seeds'
neighbourhoods (:mod:`gat.sampling.sampler`), runs the model on that small graph and takes one optimizer step on the
seeds' loss. Under ``--distributed`` every rank takes its own part of each global batch, so ``n`` processes with
``--batch-size B`` take the same steps as one process with ``n * B``. Validation and test use exact layer-wise
inference on the whole graph (:mod:`gat.sampling.layerwise`). Everything else — early stopping, checkpoints, resume,
logs, signals — is the full-batch trainer's (:func:`gat.training.loop.run_epochs`).

Randomness is drawn from generators seeded by ``(seed, epoch, rank)``, so a resumed run continues exactly
without storing any generator state, and every rank draws the same permutation of the training nodes.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch.nn.parallel import DistributedDataParallel

from gat.data.graph import Graph
from gat.errors import GATError
from gat.sampling.layerwise import layerwise_inference
from gat.sampling.sampler import NeighbourSampler, SampledBatch
from gat.training.config import TrainConfig
from gat.training.distributed import World, world_for
from gat.training.loop import Run, TrainResult, run_epochs
from gat.training.steps import load_graph, sampled_batch, split_metrics, training_loss


def train_minibatch(config: TrainConfig, device: torch.device, saved: dict | None, source: str) -> TrainResult:
    """Train as ``config`` says (``config.fanouts`` set); called by :func:`gat.training.trainer.train`, which resolves
    ``--resume`` into ``saved`` (the checkpoint's contents) first."""
    with world_for(config, device) as world:
        if not world.is_writer:  # the other ranks print nothing and write nothing
            config = replace(config, quiet=True, tensorboard=False)
        graph = load_graph(config)  # stays on the CPU, where sampling happens; batches go to the device
        run = _MiniBatchRun(config, graph, world, saved, source)
        return run_epochs(run, world.device)


class _MiniBatchRun(Run):
    """A :class:`gat.training.loop.Run` whose epoch is many sampled mini-batch steps (on this rank's share)."""

    logs_attention_entropy = False  # no step sees the whole graph

    def __init__(self, config: TrainConfig, graph: Graph, world: World, saved: dict | None, source: str) -> None:
        super().__init__(config, graph, world.device, saved, source)
        self.world = world
        self.writes_files = world.is_writer
        self.run_id = world.from_rank0(self.run_id)
        self.train_nodes = graph.train_mask.nonzero().squeeze(1)
        if self.train_nodes.shape[0] < world.size:
            raise GATError(f"{self.train_nodes.shape[0]} training nodes cannot be shared by {world.size} processes")
        self.sampler = NeighbourSampler(graph.edge_index, graph.num_nodes, config.fanouts)
        # DDP averages the gradients over the ranks during backward(); one process needs no wrapper.
        self.trainer = DistributedDataParallel(self.model) if world.size > 1 else self.model
        self.cpus, self.honours_omp_num_threads = world.cpus, not config.distributed

    @property
    def edges_per_step(self) -> int:
        return sampled_edges(self.config.batch_size, self.config.fanouts, self.graph.num_edges)

    def train_step(self, epoch: int) -> tuple[float, float]:
        """One pass over this rank's share of the training nodes; loss and accuracy over all ranks' seeds."""
        self.model.train()
        sampling = torch.Generator().manual_seed(_seed(self.config.seed, epoch, self.world.rank))
        torch.manual_seed(_seed(self.config.seed, epoch, self.world.rank, 1))  # dropout: not the sampling stream
        order = self.train_nodes[torch.randperm(self.train_nodes.shape[0], generator=_shared(self.config, epoch))]
        totals = torch.zeros(3, dtype=torch.float64)  # loss * seeds, correct, seeds: summed over ranks
        for seeds in self.world.shard(order, self.config.batch_size):
            step_totals = self._step(self.sampler.sample(seeds, sampling))
            if not math.isfinite(step_totals[0]):
                return math.nan, math.nan
            totals += step_totals
        return (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()

    def _step(self, sample: SampledBatch) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        batch = sampled_batch(self.graph, sample, self.world.device)
        loss, accuracy = training_loss(self.trainer, batch)
        loss.backward()  # on every rank even if some loss is nan: DDP's all-reduce needs them all
        correct = round(accuracy.item() * sample.num_seeds)  # a float32 mean of 0/1s: the exact count comes back
        step_totals = self.world.sum(torch.tensor([loss.item() * sample.num_seeds, correct, sample.num_seeds]))
        if math.isfinite(step_totals[0]):  # never step on a nan/inf loss: that would poison the weights
            self.optimizer.step()
        return step_totals

    def evaluate(self, splits: tuple[str, ...]) -> dict[str, float]:
        logits = layerwise_inference(self.model, self.graph.x, self.sampler, device=self.world.device)
        # Every rank computes the same numbers; taking rank 0's guarantees they stop at the same epoch.
        return self.world.from_rank0(split_metrics(logits, self.graph, splits))

    def agreed_stop(self, stop_signal: int | None) -> int | None:
        """A signal seen by any rank stops every rank after this epoch (a lone rank would wait for ever)."""
        agreed = int(self.world.max(torch.tensor([stop_signal or 0]))[0])
        return agreed or None


def sampled_edges(batch_size: int, fanouts: tuple[int, ...], num_edges: int) -> int:
    """A sampled batch's edges, at most: the seeds' layer reads ``fanouts[-1]`` in-neighbours per seed, the layer
    before it ``fanouts[-2]`` per node of that, and so on (never more than the graph's edges per layer)."""
    edges, targets = 0, batch_size
    for fanout in reversed(fanouts):
        targets = min(targets * fanout, num_edges)
        edges += targets
    return edges


def _seed(*parts: int) -> int:
    """A seed for a generator from integers (hashing a tuple of ints is the same in every process)."""
    return hash(parts) % 2**63


def _shared(config: TrainConfig, epoch: int) -> torch.Generator:
    """The generator every rank draws the epoch's permutation of the training nodes from."""
    return torch.Generator().manual_seed(_seed(config.seed, epoch))
