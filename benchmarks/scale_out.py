"""Scale-out benchmark: full-batch vs neighbour-sampled mini-batch training, on 1 and 2 processes.

    python benchmarks/scale_out.py                  # 1e5, 1e6, 1e7 edges -> results/cpu-<N>core-scale-out.json
    python benchmarks/scale_out.py --edges 1e5,1e6 --modes mini-1,mini-2

For each synthetic graph (benchmark.py's: 10 directed edges per node, 7 classes, 128 sparse features; a
``--train-fraction`` of the nodes are training seeds) and each mode, a fresh process (or ``torchrun`` pair)
loads the graph from a file, trains ``--epochs`` epochs, and reports the fastest:

* ``full``   one full-batch step on the whole graph (what an epoch is for ``gat.training.loop``), then one
             full-batch inference pass;
* ``mini-1`` one process walking the training seeds in batches of ``--batch-size`` with ``--fanouts``
             (``gat.training.minibatch``), then exact layer-wise inference of every node (``gat.sampling.layerwise``);
* ``mini-2`` the same under ``torchrun --nproc_per_node=2``: each process takes half of every global batch
             (2 x ``--batch-size``/2 seeds, so the same steps as ``mini-1``) with 1 thread each.

Columns: training seconds per epoch; optimizer steps; edges the epoch attended over (the sampled edges of every
batch; the whole graph for full-batch); those edges per second; inference seconds; peak resident memory of the
(largest) process while training, and its growth over the same process once the graph (and for mini-batch the
sampler's CSR) is loaded, which is what the method itself costs: the peak is reset after loading (Linux
``/proc/self/clear_refs``), so loading's transients do not count. Everything runs on the CPU; 1-process modes
use ``--threads`` (default 1, so that 1 and 2 processes do the same work per process and thread: on a machine
shared with other work, 2 OpenMP threads wait on each other at every small kernel), each torchrun rank gets
cores / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks import report  # noqa: E402
from benchmarks.benchmark import load_graph, peak_rss_mib  # noqa: E402
from benchmarks.entry import comma_separated, ensure_writable_file, positive_float, run_main  # noqa: E402
from gat.data.graph import Graph  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402
from gat.io import save_json, save_torch  # noqa: E402
from gat.sampling.layerwise import layerwise_inference  # noqa: E402
from gat.sampling.sampler import NeighbourSampler, SampledBatch  # noqa: E402
from gat.threads import MAX_THREADS  # noqa: E402
from gat.training.allocator import keep_freed_memory  # noqa: E402
from gat.training.config import MAX_BATCH, MAX_WIDTH, TrainConfig  # noqa: E402
from gat.training.distributed import world_for  # noqa: E402
from gat.training.fullbatch import FullBatchRun  # noqa: E402
from gat.training.minibatch import _MiniBatchRun  # noqa: E402
from gat.training.steps import train_step, training_batch  # noqa: E402
from gat.validate import ListOf, Number, check  # noqa: E402

MODES = ("full", "mini-1", "mini-2")
HEADS = (8, 1)  # the paper's two layers: --fanouts gives one count per layer
MiB = 2**20
# A stored result row (gat.validate): every row names its graph and mode; a measured one has the table's numbers,
# a failed one its "error" instead.
ROW = {"graph_edges": Number(int, 0), "nodes": Number(int, 0), "mode": str}
MEASURED = {
    "processes": Number(int, 1), "threads": Number(int, 1), "epoch_seconds": Number(float, 0),
    "steps": Number(int, 0), "edges": Number(int, 0), "edges_per_second": Number(float, 0),
    "sampling_seconds": Number(float, 0), "inference_seconds": Number(float, 0), "peak_mib": Number(float, 0),
    "growth_mib": float,
}  # fmt: skip


class CountingSampler(NeighbourSampler):
    """The trainer's sampler, also counting the edges it samples and the time it takes."""

    edges, seconds = 0, 0.0

    def __init__(self, sampler: NeighbourSampler) -> None:
        self.__dict__.update(vars(sampler))  # the same CSR tensors: no second copy of the graph

    def sample(self, seeds: torch.Tensor, generator: torch.Generator | None = None) -> SampledBatch:
        started = time.perf_counter()
        batch = super().sample(seeds, generator)
        self.seconds += time.perf_counter() - started
        self.edges += batch.num_sampled_edges
        return batch


# ------------------------------------------------------------------------------------------- graph on disk
def write_graph(graph: Graph, path: Path) -> None:
    """Plain tensors (``weights_only``-loadable), so workers load the graph without the generator's peak."""
    x = graph.x
    tensors = {"crow": x.crow_indices(), "col": x.col_indices(), "values": x.values(), "y": graph.y}
    save_torch(
        {**tensors, "edge_index": graph.edge_index, "num_features": x.shape[1], "classes": graph.num_classes}, path
    )


def read_graph(path: str, train_fraction: float) -> Graph:
    data = torch.load(path, weights_only=True)
    num_nodes = data["y"].shape[0]
    x = torch.sparse_csr_tensor(data["crow"], data["col"], data["values"], (num_nodes, data["num_features"]))
    # A fixed random fraction trains, so an epoch's work grows with the graph as on real data (ogbn-arxiv: 54 %).
    train = torch.rand(num_nodes, generator=torch.Generator().manual_seed(0)) < train_fraction
    empty = torch.zeros(num_nodes, dtype=torch.bool)
    return Graph(x, data["y"], data["edge_index"], train, ~train, empty, data["classes"], "synthetic")


# ------------------------------------------------------------------------------------------------- workers
def worker(spec: dict) -> dict:
    """One measurement in this fresh process (one rank of it under torchrun)."""
    if spec["mode"] != "mini-2":  # under torchrun, world_for gives each rank its share of the cores
        torch.set_num_threads(spec["threads"])
    graph = read_graph(spec["graph"], spec["train_fraction"])
    config = TrainConfig(
        dataset="synthetic", hidden=8, heads=HEADS, fanouts=tuple(spec["fanouts"]) if spec["mode"] != "full" else (),
        batch_size=spec["batch_size"], distributed=spec["mode"] == "mini-2", device="cpu", quiet=True,
    )  # fmt: skip
    with world_for(config, torch.device("cpu")) as world:
        if spec["mode"] == "full":
            run = FullBatchRun(config, graph, world.device, None, "")
        else:
            run = _MiniBatchRun(config, graph, world, None, "")  # builds the sampler's CSR: part of the graph
            run.sampler = CountingSampler(run.sampler)
        after_loading = current_rss_mib()
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := now, so loading's transients do not count
        if spec["mode"] == "full":
            epoch, inference = full_batch(run, graph, spec["epochs"])
            steps, edges, sampling = 1, graph.num_edges, 0.0
        else:
            epoch, steps, edges = mini_batch(run, spec["epochs"])
            sampling = run.sampler.seconds / spec["epochs"]
        peak_training = peak_rss_mib()
        if spec["mode"] != "full":
            started = time.perf_counter()
            layerwise_inference(run.model, graph.x, run.sampler)
            inference = time.perf_counter() - started
        return {
            "rank": world.rank, "epoch_seconds": epoch, "steps": steps, "edges": edges,
            "sampling_seconds": sampling, "inference_seconds": inference,
            "peak_mib": peak_training, "after_loading_mib": after_loading, "threads": torch.get_num_threads(),
        }  # fmt: skip


def full_batch(run: FullBatchRun, graph: Graph, epochs: int) -> tuple[float, float]:
    """Fastest full-batch training step and inference pass."""
    steps, inferences = [], []
    batch = training_batch(graph)  # the whole graph, as the mini-batch modes' edges per second assume
    for _ in range(epochs):
        started = time.perf_counter()
        train_step(run.model, run.optimizer, batch)
        steps.append(time.perf_counter() - started)
        run.model.eval()
        started = time.perf_counter()
        with torch.no_grad():
            run.model(graph.x, graph.edge_index)
        inferences.append(time.perf_counter() - started)
    return min(steps), min(inferences)


def mini_batch(run: _MiniBatchRun, epochs: int) -> tuple[float, int, int]:
    """Fastest epoch, its number of steps on this rank, and the edges sampled per epoch on this rank."""
    times = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        run.train_step(epoch)
        times.append(time.perf_counter() - started)
    order = torch.arange(run.train_nodes.shape[0])
    return min(times), len(run.world.shard(order, run.config.batch_size)), run.sampler.edges // epochs


def current_rss_mib() -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


# ----------------------------------------------------------------------------------------------- the parent
def measure(mode: str, graph_file: Path, args: argparse.Namespace) -> dict:
    """Run one worker (or a torchrun pair) and combine what its ranks report."""
    batch_size = args.batch_size // 2 if mode == "mini-2" else args.batch_size
    spec = {"mode": mode, "graph": str(graph_file), "fanouts": args.fanouts, "batch_size": batch_size,
            "epochs": args.epochs, "train_fraction": args.train_fraction, "threads": args.threads}  # fmt: skip
    launcher = [sys.executable]
    if mode == "mini-2":
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launcher, __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    ranks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not ranks:
        print(f"  {mode} failed (exit {done.returncode}): {done.stderr[-800:]}", flush=True)
        return {"error": "OOM" if done.returncode in (-9, 137) else f"exit {done.returncode}"}
    edges = sum(rank["edges"] for rank in ranks)
    epoch = max(rank["epoch_seconds"] for rank in ranks)
    return {
        "processes": len(ranks), "epoch_seconds": epoch, "steps": ranks[0]["steps"], "edges": edges,
        "edges_per_second": edges / epoch, "sampling_seconds": max(rank["sampling_seconds"] for rank in ranks),
        "inference_seconds": max(rank["inference_seconds"] for rank in ranks),
        "peak_mib": max(rank["peak_mib"] for rank in ranks),
        "growth_mib": max(rank["peak_mib"] - rank["after_loading_mib"] for rank in ranks),
        "threads": ranks[0]["threads"],
    }  # fmt: skip


def check_rows(rows: list, source: str) -> None:
    """Raise `GATError` naming ``source`` unless every one of ``rows`` is one :func:`table` can show."""
    check({"results": rows}, {"results": ListOf(ROW)}, source)
    for index, row in enumerate(rows):
        check(row, {"error": str} if "error" in row else MEASURED, f"{source}: results[{index}]")


def table(results: list[dict]) -> str:
    headers = ["directed edges", "nodes", "mode", "processes × threads", "train s/epoch", "steps",
               "edges/epoch", "edges/s", "of which sampling s", "inference s", "peak MiB/process",
               "growth over graph MiB"]  # fmt: skip
    rows = []
    for row in results:
        if "error" in row:
            rows.append([f"{row['graph_edges']:,}", f"{row['nodes']:,}", row["mode"], *["–"] * 8, row["error"]])
            continue
        rows.append([
            f"{row['graph_edges']:,}", f"{row['nodes']:,}", row["mode"], f"{row['processes']} × {row['threads']}",
            f"{row['epoch_seconds']:.2f}", row["steps"], f"{row['edges']:,}", f"{row['edges_per_second'] / 1e6:.2f} M",
            f"{row['sampling_seconds']:.2f}" if row["mode"] != "full" else "–", f"{row['inference_seconds']:.2f}",
            f"{row['peak_mib']:.0f}", f"{row['growth_mib']:.0f}",
        ])  # fmt: skip
    return report.markdown(headers, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add(
        "--edges",
        type=comma_separated(positive_float()),
        default="1e5,1e6,1e7",
        help="graph sizes in directed edges, comma-separated",
    )
    add("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    add("--full-max-edges", type=positive_float(), default=1e7, help="skip full-batch above this size")
    add(
        "--fanouts",
        type=comma_separated(bounded_int(1, MAX_WIDTH)),
        default="10,10",
        help="in-neighbours sampled per node, per layer",
    )
    add(
        "--batch-size",
        type=bounded_int(1, MAX_BATCH),
        default=1024,
        help="seeds per step (split over the processes of mini-2)",
    )
    add("--train-fraction", type=positive_float(1), default=0.05, help="fraction of the nodes that are training seeds")
    add(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=1,
        help="torch threads of a 1-process mode (mini-2: cores / 2 per rank)",
    )
    add(
        "--epochs",
        type=bounded_int(1),
        default=2,
        help="epochs (full-batch: steps) per measurement; the fastest is kept",
    )
    json_path = REPO / "benchmarks" / "results" / f"{report.machine_kind(torch.device('cpu'))}-scale-out.json"
    add("--json", type=Path, default=json_path, help="where to write the results")
    add("--worker", help=argparse.SUPPRESS)  # internal: one measuring process
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    if unknown := [mode for mode in args.modes if mode not in MODES]:
        parser.error(f"argument --modes: unknown mode {unknown[0]!r}: choose from {', '.join(MODES)}")
    if len(args.fanouts) != len(HEADS):
        parser.error(f"argument --fanouts: one count per layer, {len(HEADS)} layers: got {len(args.fanouts)}")
    if "mini-2" in args.modes and args.batch_size < 2:
        parser.error("argument --batch-size: mini-2 gives each of its 2 processes half a batch: give at least 2")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    keep_freed_memory()  # every measuring process runs as training_script.py would
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    ensure_writable_file(args.json)  # now, not after measuring
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for edges in map(int, args.edges):
            graph_file = Path(folder) / f"graph-{edges}.pt"
            graph = load_graph("synthetic", edges, str(REPO / "data"))
            write_graph(graph, graph_file)
            nodes, graph_edges = graph.num_nodes, graph.num_edges
            del graph
            for mode in args.modes:
                if mode == "full" and edges > args.full_max_edges:
                    continue
                started = time.perf_counter()
                row = {"graph_edges": graph_edges, "nodes": nodes, "mode": mode, **measure(mode, graph_file, args)}
                print(f"{graph_edges:,} edges, {mode}: {time.perf_counter() - started:.0f} s wall", flush=True)
                results.append(row)
    info = report.machine_info(torch.device("cpu"), REPO, None, 0.0)
    save_json({"machine": info, "arguments": report.stored_arguments(args, REPO), "results": results}, args.json)
    print(table(results))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
