"""Benchmark this project's GAT against a textbook dense GAT and PyTorch Geometric's GATConv.

    python benchmarks/benchmark.py                                  # everything -> benchmarks/results/cpu-<N>core.json
    python benchmarks/benchmark.py --sections cora --repeats 5      # a quick look
    python benchmarks/benchmark.py --device cuda                    # the same on a GPU

Sections (--sections, comma-separated):
  cora     the paper's model (2 layers, 8 heads x 8, 1 output head, dropout 0.6, Adam lr 0.005 wd 5e-4) as ours
           (sparse CSR features), the dense N x N reference and PyG (dense features): time per training step
           and per inference pass, peak memory, and test accuracy after --budget-epochs epochs from the same
           initial weights (of the final model, and of the model at the first epoch with the best val accuracy).
           "ours" steps as gat.training.loop does, on the training nodes' receptive field (the same loss and
           gradient as the whole graph, see gat.training.steps.training_batch) and, on a GPU, replayed from a CUDA graph
           (gat.training.steps.CapturedStep); "ours-whole" launches its kernels on the whole graph, as the references
           do, which compares the kernels like for like.
  scaling  synthetic graphs of 1e4, 1e5, ... directed edges (10 per node, 128 sparse features) up to
           --max-edges (default 1e7, what 24 GiB of RAM holds; 1e8 adds 3e7 and 1e8 for a GPU): time per training
           step, per million edges, and peak memory, ours vs PyG. Every step here is on the whole graph: time
           per edge is what this section measures.
  flatness ours at 1e5 edges and at --max-edges, interleaved in one process: the ratio of their times per
           million edges under the same machine conditions (the scaling section times each size at a different
           moment). Each round is one big step and two small ones, the second timed as steady training is.
  fullrun  training_script.py with its defaults (early stopping) in a subprocess: wall time and loop time.
  busy     default Cora runs and PyG's loop alone, two at once, beside 1 and 2 CPU-bound processes (benchmarks/busy.py).
  threads  the thread policy's choice against every explicit thread count, per workload (benchmarks/busy.py).

Method: every timing goes through time_interleaved: all implementations in one process, warm-up first, then
alternating A B A B ..., so drifts in machine load hit all alike; medians and quartiles are reported.
Speed-ups are their median / ours. On CPU, peak memory is the peak RSS (VmHWM) of a fresh subprocess per
(implementation, graph) that loads the data, builds the model and runs two training steps, next to a baseline
subprocess that only imports torch and loads the data; its address space is capped at --memory-limit-gb, so a
larger need is reported as OOM instead of swapping. On CUDA it is torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: `gat` and `benchmarks` import from the repo

from benchmarks import busy, report  # noqa: E402
from benchmarks.entry import ensure_writable_file, positive_float, run_checked, run_main  # noqa: E402
from benchmarks.reference_models import DenseGAT, PyGGAT, copy_weights, pyg_version  # noqa: E402
from benchmarks.timing import time_interleaved  # noqa: E402
from gat.data.graph import Graph  # noqa: E402
from gat.data.registry import load_dataset  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402
from gat.io import save_json  # noqa: E402
from gat.threads import MAX_THREADS  # noqa: E402
from gat.training.allocator import keep_freed_memory, release_freed_memory  # noqa: E402
from gat.training.config import TrainConfig  # noqa: E402
from gat.training.steps import (  # noqa: E402
    build_model,
    build_optimizer,
    evaluate,
    full_batch_step,
    resolve_device,
    training_batch,
)

PAPER = TrainConfig()  # the paper's Cora model and optimiser: every implementation is built from it
OURS = ("ours", "ours-whole")  # the same model, stepping on the training nodes' receptive field / whole graph
SCALED = ("ours", "pyg")  # the implementations the scaling section runs
SCALING_SIZES = (10_000, 100_000, 1_000_000, 10_000_000, 30_000_000, 100_000_000)  # past 1e7: GPUs
FLATNESS_FROM = 100_000  # time per edge should stay flat from here up (the target: within 1.5x up to 1e7)
# Training steps a memory subprocess runs: the first also builds caches and Adam's state, the second is steady.
MEMORY_STEPS = 2
SECTIONS = ("cora", "scaling", "flatness", "fullrun", "busy", "threads")
MiB = 2**20
STARTED = time.perf_counter()


def progress(message: str) -> None:
    """Where a long run is, on stderr (stdout carries only the tables)."""
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- data, models
@functools.lru_cache(maxsize=1)
def load_graph(data: str, edges: int, data_dir: str) -> Graph:
    """Cora as `load_dataset` returns it, or a synthetic graph with ``edges`` directed edges (degree 10).

    The last one is kept: on CUDA the memory probes and the timings of a size share it (building 1e8 edges takes
    about a minute). Callers must not modify it."""
    if data == "cora":
        return load_dataset("cora", root=data_dir)
    return load_dataset("synthetic", num_nodes=edges // 10, average_degree=10, num_classes=7, num_features=128)


def build(impl: str, graph: Graph, device: torch.device, seed: int = 0) -> tuple[torch.nn.Module, Graph]:
    """The paper's model as ``impl`` with the initial weights of ``GAT`` built under ``seed``, and the graph in
    the form that implementation is fed: sparse CSR features for ours, dense ones (as users feed them) else."""
    torch.manual_seed(seed)
    ours = build_model(PAPER, graph.num_features, graph.num_classes)
    if impl in OURS:
        return ours.to(device), graph.to(device)
    reference = {"dense": DenseGAT, "pyg": PyGGAT}[impl]
    model = reference(graph.num_features, graph.num_classes, PAPER.hidden, PAPER.heads, PAPER.dropout)
    copy_weights(ours, model)
    return model.to(device), dataclasses.replace(graph, x=graph.dense_x()).to(device)


def optimizer_for(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The project's optimiser (fused Adam, paper settings) for every implementation alike."""
    return build_optimizer(PAPER, model)


def training_step(model: torch.nn.Module, graph: Graph, impl: str, data: str = "cora") -> Callable[[], object]:
    """One full step - forward, loss, backward, Adam - with `gat.training.steps`' functions. "ours" steps exactly as
    `gat.training.loop` trains: on Cora on the training nodes' receptive field (elsewhere on the whole graph: time per
    edge is what the scaling section measures), and on a GPU replayed from a CUDA graph. Every other
    implementation, "ours-whole" included, launches its kernels eagerly on the whole graph."""
    receptive_field = impl == "ours" and data == "cora"
    batch = training_batch(graph, PAPER.num_layers if receptive_field else None)
    return full_batch_step(model, optimizer_for(model), batch, cuda_graphs=impl == "ours")


def inference_pass(model: torch.nn.Module, graph: Graph) -> Callable[[], object]:
    def run() -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(graph.x, graph.edge_index)

    return run


def accuracy_after(impl: str, graph: Graph, device: torch.device, epochs: int, seed: int = 0) -> dict[str, float]:
    """Train ``epochs`` epochs from the shared initial weights; test accuracy of the final model and of the
    model at the first epoch with the best validation accuracy."""
    model, fed = build(impl, graph, device, seed)
    step, best = training_step(model, fed, impl), {"val_accuracy": -1.0}
    for epoch in range(1, epochs + 1):
        step()
        metrics = evaluate(model, fed, ("val", "test"))
        if metrics["val_accuracy"] > best["val_accuracy"]:
            best = {**metrics, "epoch": epoch}
    return {"test_final": metrics["test_accuracy"], "test_best_val": best["test_accuracy"], "best_epoch": best["epoch"]}


# ---------------------------------------------------------------------------------------------------- memory
def memory_worker(spec: dict) -> dict:
    """Runs in a fresh subprocess: load the data, build ``spec["impl"]`` and train a few steps (nothing for
    ``baseline``); report the process's peak RSS. Allocations beyond ``limit_gb`` fail (-> "OOM")."""
    limit = int(spec["limit_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # fail an allocation rather than wake the OOM killer
    try:
        graph = load_graph(spec["data"], spec["edges"], spec["data_dir"])
        if spec["impl"] != "baseline":
            model, fed = build(spec["impl"], graph, torch.device("cpu"))
            step = training_step(model, fed, spec["impl"], spec["data"])
            for _ in range(MEMORY_STEPS):
                step()
    except (MemoryError, RuntimeError) as error:
        if "memory" not in str(error).lower() and not isinstance(error, MemoryError):
            raise
        return {"error": "OOM"}
    return {"peak_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's ru_maxrss survives fork and exec, so a child would report
    its parent's peak; VmHWM belongs to the process's own address space and starts afresh at exec."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else MiB)


def peak_memory(impl: str, data: str, edges: int, args: argparse.Namespace, device: torch.device) -> float | str:
    """Peak memory (MiB) of ``impl`` on the graph, or "OOM"/"failed"; CPU: subprocess RSS, CUDA: allocator peak."""
    if device.type == "cuda":
        graph = load_graph(data, edges, args.data_dir)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            if impl == "baseline":
                graph.to(device)
            else:
                step = training_step(*build(impl, graph, device), impl, data)
                for _ in range(MEMORY_STEPS):
                    step()
        except torch.cuda.OutOfMemoryError:
            return "OOM"
        return torch.cuda.max_memory_allocated(device) / MiB
    spec = {"impl": impl, "data": data, "edges": edges, "data_dir": args.data_dir, "limit_gb": args.memory_limit_gb}
    malloc = ["--default-malloc"] if args.default_malloc else []
    command = [sys.executable, __file__, "--worker", json.dumps(spec), *malloc]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"  memory worker {impl}/{data}/{edges} failed (exit {done.returncode}): {done.stderr[-500:]}")
        return "OOM" if done.returncode == -9 else "failed"
    result = json.loads(lines[-1])
    return result.get("peak_mib", result.get("error", "failed"))


# -------------------------------------------------------------------------------------------------- sections
def cora_section(args: argparse.Namespace, device: torch.device, impls: list[str]) -> dict:
    graph = load_graph("cora", 0, args.data_dir)
    built = {impl: build(impl, graph, device) for impl in impls}
    progress("cora: timing training steps and inference passes")
    steps = {impl: training_step(*built[impl], impl) for impl in impls}
    train = time_interleaved(steps, args.repeats, args.warmup, device)
    infer = time_interleaved({i: inference_pass(*built[i]) for i in impls}, args.repeats, args.warmup, device)
    del built, steps  # a CUDA graph's memory stays allocated while its step lives: it would count as baseline
    gc.collect()
    progress("cora: peak memory")
    memory = {impl: peak_memory(impl, "cora", 0, args, device) for impl in ["baseline", *impls]}
    progress(f"cora: accuracy after {args.budget_epochs} epochs")
    accuracy = {impl: accuracy_after(impl, graph, device, args.budget_epochs) for impl in impls}
    return {"train": train, "inference": infer, "memory": memory, "accuracy": accuracy}


def scaling_section(args: argparse.Namespace, device: torch.device, impls: list[str]) -> dict:
    """Per size: peak memory first (a subprocess each, which also probes whether the size fits), then the
    training-step timings of the implementations that fit, interleaved if they fit in memory together."""
    results, failed = {}, set()
    for edges in [size for size in SCALING_SIZES if size <= args.max_edges]:
        progress(f"scaling: {edges:,} edges")
        memory = {"baseline": peak_memory("baseline", "synthetic", edges, args, device)}
        for impl in impls:  # an implementation that ran out of memory on a smaller graph is not tried again
            memory[impl] = "skipped" if impl in failed else peak_memory(impl, "synthetic", edges, args, device)
        baseline = memory["baseline"] if isinstance(memory["baseline"], float) else math.inf  # inf: nothing fits
        fits = [impl for impl in impls if isinstance(memory[impl], float) and baseline < math.inf]
        failed |= set(impls) - set(fits)
        # Interleaving keeps every implementation's caches and optimizer state alive while another one steps.
        cuda = device.type == "cuda"
        capacity = torch.cuda.get_device_properties(device).total_memory / MiB if cuda else args.memory_limit_gb * 1024
        interleaved = sum(memory[impl] - baseline for impl in fits) + baseline < capacity
        graph, train = load_graph("synthetic", edges, args.data_dir), {}
        release_freed_memory()  # what generating the graph needed on the way
        for group in [fits] if interleaved else [[impl] for impl in fits]:
            steps = {impl: training_step(*build(impl, graph, device), impl, "synthetic") for impl in group}
            train |= time_interleaved(steps, args.repeats, args.warmup, device, budget_s=args.budget_seconds)
            del steps
            gc.collect()
            release_freed_memory()  # the heap keeps freed memory: without this, the next group's would add to it
        results[edges] = {"nodes": graph.num_nodes, "train": train, "memory": memory, "interleaved": interleaved}
    return results


def flatness_section(args: argparse.Namespace, device: torch.device) -> dict:
    """Ours on the FLATNESS_FROM-edge and the --max-edges graph, interleaved: big, small, small, big, ...

    On a shared machine the same step's time drifts by up to 30 % within minutes, so sizes timed minutes apart
    (the scaling section) give a ratio of times per edge that moves with the machine. The small step right after
    a big one starts with the big graph's data in the caches; it is reported, but the ratio uses the second
    small step, whose caches are as in training, where steps on one graph follow each other."""
    small, big = FLATNESS_FROM, int(args.max_edges)
    progress(f"flatness: {small:,} and {big:,} edges, interleaved")
    steps = {}
    for edges in (small, big):  # each step keeps its graph alive; load_graph's cache holds only the last one
        model, graph = build("ours", load_graph("synthetic", edges, args.data_dir), device)
        steps[edges] = training_step(model, graph, "ours", "synthetic")
    rounds = {"big": steps[big], "small after big": steps[small], "small": steps[small]}
    timings = time_interleaved(rounds, args.repeats, args.warmup, device, budget_s=args.budget_seconds)
    return {"edges": {"big": big, "small after big": small, "small": small}, "train": timings}


def fullrun_section(args: argparse.Namespace, device: torch.device) -> dict:
    """``training_script.py`` as a user runs it (defaults: up to 10000 epochs, early stopping), timed whole."""
    progress("fullrun: training_script.py with its defaults")
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, str(REPO / "training_script.py"), "--quiet", "--no-tensorboard", "--device"]
        command += [device.type, "--runs-dir", folder, "--models-dir", folder, "--data-dir", args.data_dir]
        start = time.perf_counter()
        run_checked(command, cwd=REPO)
        wall = time.perf_counter() - start
        metrics = json.loads(next(Path(folder).glob("*/metrics.json")).read_text())
    result = {"wall_seconds": wall, **{key: metrics[key] for key in ("training_seconds", "epochs", "best_epoch")}}
    result["ms_per_epoch"] = 1000 * result["training_seconds"] / result["epochs"]
    return result | {"test_accuracy": metrics["final"].get("test_accuracy")}


def available_memory_gb() -> float:
    """Memory the kernel says it can give without swapping (Linux), else a conservative 8 GiB."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
        return int(line.split()[1]) / 2**20  # kB
    return 8.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="cpu (default), cuda, or auto")
    add("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    add(
        "--implementations",
        default="ours,ours-whole,dense,pyg",
        help="which to run (dense is slow: seconds per step; scaling runs ours and pyg)",
    )
    add("--repeats", type=bounded_int(1), default=50, help="timed calls per implementation (median reported)")
    add("--warmup", type=bounded_int(0), default=5, help="untimed calls per implementation first")
    add(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=None,
        help="torch CPU threads, also for subprocesses (default: torch's)",
    )
    add("--budget-epochs", type=bounded_int(1), default=200, help="training epochs behind the Cora accuracy column")
    add("--busy-epochs", type=bounded_int(1), default=200, help="epochs per run in the busy section")
    add("--busy-rounds", type=bounded_int(1), default=3, help="rounds of every busy scenario (median reported)")
    add("--max-edges", type=positive_float(), default=1e7, help="largest scaling graph, in directed edges")
    add(
        "--budget-seconds",
        type=positive_float(),
        default=120,
        help="at most this long timing each scaling size, and the flatness section",
    )
    add(
        "--memory-limit-gb",
        type=positive_float(),
        default=min(24.0, 0.9 * available_memory_gb()),
        help="memory guard: a larger allocation counts as OOM (default: 24 or 90%% of the available memory)",
    )
    add("--data-dir", default=str(REPO / "data"), help="dataset cache; Cora is fetched via $GAT_DATA_MIRROR")
    add(
        "--json",
        type=Path,
        default=None,
        help="where to write the results (default: benchmarks/results/<machine kind>[-<sections>].json, "
        "e.g. cpu-2core-scaling.json)",
    )
    add(
        "--default-malloc",
        action="store_true",
        help="leave glibc malloc as it is (default: keep freed memory for reuse, as training_script.py does)",
    )
    add("--worker", help=argparse.SUPPRESS)  # internal: the memory-measuring subprocess
    args = parser.parse_args(argv)
    chosen, wanted = args.sections.split(","), args.implementations.split(",")
    if unknown := sorted((set(chosen) - set(SECTIONS)) | (set(wanted) - set(report.NAMES))):
        parser.error(f"unknown section or implementation: {', '.join(unknown)}")
    if "flatness" in chosen and args.max_edges <= FLATNESS_FROM:
        parser.error(f"--sections flatness compares {FLATNESS_FROM:,} edges with --max-edges; give more")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kept_freed_memory = not args.default_malloc and keep_freed_memory()  # for every implementation alike
    if args.worker:
        print(json.dumps(memory_worker(json.loads(args.worker))))
        return
    device, chosen, wanted, pyg = (
        resolve_device(args.device),
        args.sections.split(","),
        args.implementations.split(","),
        pyg_version(),
    )
    impls = [impl for impl in wanted if impl != "pyg" or pyg]  # the tables say "not installed" for a missing PyG
    if args.threads is not None:  # here and, through OMP_NUM_THREADS, in every subprocess
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.json = args.json or report.result_path(REPO / "benchmarks" / "results", device, chosen, SECTIONS)
    ensure_writable_file(args.json)  # now, not after measuring
    results: dict = {"machine": report.machine_info(device, REPO, pyg, args.memory_limit_gb)}
    results["machine"]["malloc keeps freed memory"] = kept_freed_memory
    arguments = report.stored_arguments(args, REPO, leave_out=("worker", "data_dir"))  # not the dataset cache's path
    results["args"] = {key: str(value) for key, value in arguments.items()}
    print(report.machine_table(results["machine"]) + "\n", flush=True)
    sections = {  # name: (measure, show as a table)
        "cora": (lambda: cora_section(args, device, impls), lambda r: report.cora_table(r, wanted)),
        "scaling": (
            lambda: scaling_section(args, device, [i for i in impls if i in SCALED]),
            lambda r: report.scaling_table(r, [i for i in wanted if i in SCALED]),
        ),
        "flatness": (lambda: flatness_section(args, device), report.flatness_table),
        "fullrun": (lambda: fullrun_section(args, device), report.fullrun_table),
        "busy": (lambda: busy.busy_section(args, bool(pyg), progress), busy.busy_table),
        "threads": (lambda: busy.threads_section(args, progress), busy.threads_table),
    }
    for name in chosen:
        measure, show = sections[name]
        results[name] = measure()
        print(show(results[name]) + "\n", flush=True)
        save_json(report.jsonable(results), args.json)  # after every section: a late failure loses nothing
    print(f"saved {args.json}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
