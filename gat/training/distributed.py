"""Several training processes on one or many machines: ``torch.distributed`` as launched by ``torchrun``.

    torchrun --nproc_per_node=2 training_script.py --distributed --dataset synthetic --fanouts 10,10

``torchrun`` starts one process per rank and tells each, through environment variables, its rank, the world
size and where rank 0 listens (``MASTER_ADDR``/``MASTER_PORT``). Every rank trains the same model on its own
share of the seed nodes; ``DistributedDataParallel`` averages the gradients (``gloo`` on CPU, ``nccl`` on GPU),
so every rank takes the same optimizer step. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from gat.errors import GATError
from gat.threads import available_cpus, choose_threads, requested_threads
from gat.training.config import TrainConfig

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class World:
    """This process's place among the training processes (a single process is a world of size 1)."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cpus: int | None = None  # the CPUs this process plans its threads for (gat.threads); None: all it may use

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes logs, checkpoints and binaries: the other ranks hold the same model."""
        return self.rank == 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over every rank (in place; ``values`` stays on the CPU)."""
        return self._all_reduce(values, dist.ReduceOp.SUM)

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` maximised over every rank (in place)."""
        return self._all_reduce(values, dist.ReduceOp.MAX)

    def _all_reduce(self, values: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
        if self.size > 1:
            on_device = values.to(self.device)  # nccl reduces GPU tensors only
            dist.all_reduce(on_device, op=op)
            values.copy_(on_device)
        return values

    def from_rank0(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (e.g. the run id, which each rank would otherwise draw itself)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        """This rank's batches of ``order`` (the same permutation on every rank).

        Global batch ``b`` is ``order[b * size * batch_size : (b + 1) * size * batch_size]`` and rank ``r`` takes
        its ``r``-th equal part, so every rank runs the same number of steps with the same batch size, and a
        run on ``size`` processes sees exactly the batches of a 1-process run with ``size * batch_size``. The
        last ``len(order) % size`` nodes (a different few every epoch) are left out to keep the parts equal.
        """
        usable = order[: order.shape[0] - order.shape[0] % self.size]
        return [batch.view(self.size, -1)[self.rank] for batch in usable.split(batch_size * self.size)]


@contextmanager
def world_for(config: TrainConfig, device: torch.device) -> Iterator[World]:
    """The world this run trains in: a process group when ``config.distributed`` (destroyed on the way out,
    whatever happens), else a single process on ``device``."""
    if not config.distributed:
        yield World(device=device)
        return
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise GATError(
            f"--distributed needs the environment torchrun sets up (missing {', '.join(missing)}); launch with: "
            f"torchrun --nproc_per_node=2 training_script.py --distributed ..."
        )
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    # Ranks on one machine share its cores: each plans its threads (gat.threads, applied by the epoch loop) for
    # its share, or they would fight over the cores (torchrun's own OMP_NUM_THREADS=1 leaves cores idle when the
    # step is big enough to use more, so the loop ignores that variable in a rank).
    cpus = max(1, available_cpus() // int(os.environ["LOCAL_WORLD_SIZE"]))
    torch.set_num_threads(choose_threads(cpus, 0, requested_threads(config.threads, honour_omp=False)))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield World(rank=dist.get_rank(), size=dist.get_world_size(), device=device, cpus=cpus)
    finally:
        dist.destroy_process_group()
