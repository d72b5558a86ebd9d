"""What each speed trick in gat/ gains end to end over the plain code it replaces.

    python benchmarks/tricks.py                              # every trick, 2 threads then 1 (about 15 minutes)
    python benchmarks/tricks.py --tricks "fused Adam,mallopt" --cora-epochs 50 --threads 2
    MKL_CBWR=AUTO python benchmarks/tricks.py --baseline     # each workload's median time only (JSON): compare
                                                             # process-wide settings in fresh processes

Two runs of the same model train in turn in one process, A B B A A B ...: one with the library as it is, one
with the trick replaced by its plain version (patched in). A drift in machine load hits both alike. Gain is the
median time without the trick over the median time with it, minus 1: how much longer the plain code takes.

Workloads: a Cora epoch as ``gat.training.fullbatch`` runs it (a step on the training nodes' receptive field, then
validation on the validation nodes' receptive field), and a training step on the whole of a synthetic graph of
1e5 nodes and 1e6 edges (128 sparse features), the paper's model on both.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.entry import comma_separated, run_main  # noqa: E402
from gat.data.graph import Graph  # noqa: E402
from gat.data.registry import load_dataset  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402
from gat.nn.kernels import neighbourhoods, ops, projection  # noqa: E402
from gat.nn.kernels.neighbourhoods import AggregationPlan, Neighbourhoods  # noqa: E402
from gat.threads import MAX_THREADS  # noqa: E402
from gat.training import allocator, steps  # noqa: E402
from gat.training.config import TrainConfig  # noqa: E402

PAPER = TrainConfig()
THIS = sys.modules[__name__]
Plain = Callable[[], contextlib.AbstractContextManager]


# ------------------------------------------------------------------------------------------------- workloads
def validation(model: nn.Module, graph: Graph) -> Callable[[], object]:
    """Every epoch's validation, as gat.training.fullbatch runs it on CPU: on the validation nodes' receptive field."""
    batch = steps.split_batch(graph, "val", PAPER.num_layers)
    return lambda: steps.evaluate_batch(model, batch, "val")


def whole_graph_validation(model: nn.Module, graph: Graph) -> Callable[[], object]:
    return lambda: steps.evaluate(model, graph, ("val",))


def cora_epoch(graph: Graph) -> Callable[[], None]:
    torch.manual_seed(0)
    model = steps.build_model(PAPER, graph.num_features, graph.num_classes)
    step = steps.full_batch_step(model, steps.build_optimizer(PAPER, model), steps.training_batch(graph, 2))
    validate = THIS.validation(model, graph)

    def epoch() -> None:
        step()
        validate()

    return epoch


def synthetic_step(graph: Graph) -> Callable[[], object]:
    torch.manual_seed(0)
    model = steps.build_model(PAPER, graph.num_features, graph.num_classes)
    return steps.full_batch_step(model, steps.build_optimizer(PAPER, model), steps.training_batch(graph))


# ------------------------------------------------------------------------------- the plain code, trick by trick
@contextlib.contextmanager
def patched(*patches: tuple[object, str, object]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for target, name, value in patches:
            stack.enter_context(mock.patch.object(target, name, value))
        yield


def autograd_sparse_projection() -> contextlib.AbstractContextManager:
    return patched((projection._SparseProject, "apply", lambda weight, x, transpose: x @ weight.t()))


def one_transpose_block() -> contextlib.AbstractContextManager:
    return patched((projection, "GRADIENT_BLOCK_BYTES", 2**62))


def bernoulli_keep_mask(x: torch.Tensor, p: float) -> torch.Tensor | None:
    return None if p == 0.0 else torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)


def torch_generator_words(count: int) -> np.ndarray:
    return torch.empty(count, dtype=torch.int64).random_(-(2**63), 2**63 - 1).numpy().view(np.uint64)


def sampled_products(pad: bool, in_place: bool) -> Callable:
    def products(plan: AggregationPlan, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if pad and 1 < left.shape[1] < 8:
            left, right = F.pad(left, (0, 8 - left.shape[1])), F.pad(right, (0, 8 - right.shape[1]))
        zeros = torch.zeros(plan.columns.numel(), dtype=left.dtype)
        shape = (plan.num_rows, plan.num_columns)
        pattern = torch.sparse_csr_tensor(plan.row_pointers, plan.columns, zeros, shape, check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0, out=pattern if in_place else None)

    return lambda plan, left, right: products(plan, left, right).values()


def per_head_scores(projected: torch.Tensor, halves: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nhf,shf->nsh", projected, halves)


def per_head_scores_backward(grad_scores, projected, halves, grad_values) -> tuple[torch.Tensor, torch.Tensor]:
    grad_scores = grad_scores.view(projected.shape[0], 2, -1)
    grad_projected = torch.einsum("nsh,shf->nhf", grad_scores, halves)
    if grad_values is not None:
        grad_projected += grad_values.view_as(grad_projected)
    return grad_projected, torch.einsum("nsh,nhf->shf", grad_scores, projected)


def sparse_tensor_product(row_pointers, columns, values, dense) -> torch.Tensor:
    values = torch.ones(columns.numel(), dtype=dense.dtype) if values is None else values.detach()
    shape = (row_pointers.numel() - 1, dense.shape[0])
    return torch.sparse_csr_tensor(row_pointers, columns, values, shape, check_invariants=False) @ dense.detach()


def index_add_sum(nbh: Neighbourhoods, by: str, edge_values: torch.Tensor) -> torch.Tensor:
    index, size = (nbh.target, nbh.num_targets) if by == "target" else (nbh.source, nbh.num_nodes)
    return edge_values.new_zeros(size, *edge_values.shape[1:]).index_add_(0, index, edge_values)


def message_aggregate(weights: torch.Tensor, values: torch.Tensor, nbh: Neighbourhoods) -> torch.Tensor:
    messages = nbh.at_source(values) * weights[..., None]  # [E, H, F]
    return values.new_zeros(nbh.num_targets, *values.shape[1:]).index_add_(0, nbh.target, messages)


def message_aggregate_backward(weights, values, nbh, grad_out, needs_weights, needs_values) -> tuple:
    at_target = nbh.at_target(grad_out)
    grad_weights = (at_target * nbh.at_source(values)).sum(-1) if needs_weights else None
    grad_values = None
    if needs_values:
        grad_values = torch.zeros_like(values).index_add_(0, nbh.source, at_target * weights[..., None])
    return grad_weights, grad_values


def plain_adam(config: TrainConfig, model: nn.Module) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


@contextlib.contextmanager
def default_malloc() -> Iterator[None]:
    """glibc's defaults back (mmap from 128 KiB, trim from 128 KiB), then the entry points' setting again."""
    libc = allocator._glibc()
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for parameter, value in ((-4, 65536), (-3, 128 * 1024), (-1, 128 * 1024)):  # MMAP_MAX, MMAP_THRESHOLD, TRIM
        libc.mallopt(parameter, value)
    try:
        yield
    finally:
        allocator.keep_freed_memory()


TRICKS: dict[str, Plain] = {
    "sparse projection backward (cached transpose)": autograd_sparse_projection,
    "transpose blocks of GRADIENT_BLOCK_BYTES": one_transpose_block,
    "dropout: own draws (vs bernoulli_)": lambda: patched((ops, "_keep_mask", bernoulli_keep_mask)),
    "dropout: SFC64 words (vs torch's generator)": lambda: patched((ops, "_cpu_random_words", torch_generator_words)),
    "threaded 1-D gathers (gather_flat)": lambda: patched((neighbourhoods, "_in_chunks", lambda n, work: work(0, n))),
    "SDDMM pad to 8 features": lambda: patched((AggregationPlan, "sampled_products", sampled_products(False, True))),
    "SDDMM in place": lambda: patched((AggregationPlan, "sampled_products", sampled_products(True, False))),
    "block-diagonal score matrix": lambda: patched(
        (ops, "_node_scores", per_head_scores), (ops, "_node_scores_backward", per_head_scores_backward)
    ),
    "embedding_bag as CSR product": lambda: patched(
        (neighbourhoods, "csr_product", sparse_tensor_product), (projection, "csr_product", sparse_tensor_product)
    ),
    "segment sums as 0/1 CSR products": lambda: patched((Neighbourhoods, "_sum", index_add_sum)),
    "one CSR product for all heads (plan)": lambda: patched(
        (ops, "_aggregate", message_aggregate),
        (ops, "_aggregate_backward", message_aggregate_backward),
        (Neighbourhoods, "plan", lambda nbh, num_heads: nbh),
    ),
    "training on the receptive field": lambda: patched(
        (steps, "training_batch", lambda graph, num_layers=None: steps.split_batch(graph, "train"))
    ),
    "validation on the receptive field": lambda: patched((THIS, "validation", whole_graph_validation)),
    "evaluation in inference mode": lambda: patched(
        (steps, "evaluate_batch", torch.no_grad()(steps.evaluate_batch.__wrapped__)),
        (steps, "evaluate", torch.no_grad()(steps.evaluate.__wrapped__)),
    ),
    "fused Adam": lambda: patched((steps, "build_optimizer", plain_adam)),
    "mallopt: keep freed memory": default_malloc,
}
CORA_ONLY = {"training on the receptive field", "validation on the receptive field", "evaluation in inference mode"}


# -------------------------------------------------------------------------------------------------- measuring
def gain(workload: Callable[[Graph], Callable], graph: Graph, plain: Plain, runs: int, warmup: int) -> float:
    """Median time with ``plain`` patched in over the median time without, minus 1 (alternating ABBA)."""
    variants = [(contextlib.nullcontext, workload(graph))]
    with plain():
        variants.append((plain, workload(graph)))
    samples: list[list[float]] = [[], []]
    for run in range(warmup + runs):
        for index in (0, 1) if run % 2 == 0 else (1, 0):
            context, step = variants[index]
            with context():
                started = time.perf_counter()
                step()
                elapsed = time.perf_counter() - started
            if run >= warmup:
                samples[index].append(elapsed)
    return statistics.median(samples[1]) / statistics.median(samples[0]) - 1


def baseline_times(graphs: dict[str, Graph], args: argparse.Namespace) -> dict[str, float]:
    """The median time of each workload as the library is (``--baseline``)."""
    times = {}
    for name, (workload, runs, warmup) in workloads(args).items():
        step = workload(graphs[name])
        samples = []
        for _ in range(warmup + runs):
            started = time.perf_counter()
            step()
            samples.append(time.perf_counter() - started)
        times[name] = statistics.median(samples[warmup:])
    return times


def workloads(args: argparse.Namespace) -> dict[str, tuple[Callable, int, int]]:
    return {"cora": (cora_epoch, args.cora_epochs, 10), "1e6": (synthetic_step, args.steps, 1)}


def load_graphs(data_dir: str) -> dict[str, Graph]:
    cora = load_dataset("cora", root=data_dir, mirror=PAPER.data_mirror)
    synthetic = load_dataset("synthetic", num_nodes=100_000, average_degree=10, num_classes=7, num_features=128)
    return {"cora": cora, "1e6": synthetic}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tricks", help="comma-separated prefixes of the trick names (default: all)")
    parser.add_argument(
        "--threads",
        type=comma_separated(bounded_int(1, MAX_THREADS)),
        default="2,1",
        help="torch thread counts to measure with, in turn",
    )
    parser.add_argument("--cora-epochs", type=bounded_int(1), default=200, help="timed Cora epochs per variant")
    parser.add_argument("--steps", type=bounded_int(1), default=3, help="timed 1e6-edge steps per variant")
    parser.add_argument("--data-dir", default=PAPER.data_dir)
    parser.add_argument("--baseline", action="store_true", help="only each workload's median time, as JSON")
    args = parser.parse_args(argv)
    prefixes = args.tricks.split(",") if args.tricks else []
    if unknown := [prefix for prefix in prefixes if not any(name.startswith(prefix) for name in TRICKS)]:
        parser.error(f"argument --tricks: no trick starts with {unknown[0]!r} (the names: TRICKS in tricks.py)")
    chosen = [name for name in TRICKS if not prefixes or name.startswith(tuple(prefixes))]
    allocator.keep_freed_memory()  # as the entry points
    graphs = load_graphs(args.data_dir)
    if args.baseline:
        torch.set_num_threads(args.threads[0])
        print(json.dumps(baseline_times(graphs, args)))
        return
    columns = [f"{workload} {threads} thr" for threads in args.threads for workload in ("cora", "1e6")]
    print(f"gain = time without the trick / time with it - 1 ({args.cora_epochs} Cora epochs, {args.steps} steps)")
    print(f"{'trick':48}" + "".join(f"{column:>13}" for column in columns), flush=True)
    for name in chosen:
        row = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            for graph_name, (workload, runs, warmup) in workloads(args).items():
                if graph_name == "1e6" and name in CORA_ONLY:  # the 1e6 step is a whole-graph step only
                    row.append(None)
                    continue
                row.append(gain(workload, graphs[graph_name], TRICKS[name], runs, warmup))
        print(f"{name:48}" + "".join("          n/a" if v is None else f"{v:>+12.1%} " for v in row), flush=True)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
