"""Two sections of benchmark.py about threads: speed on a machine that is not idle, and the thread policy's choice
against every explicit thread count.

busy     default Cora trainings (training_script.py, as users run them) and PyG's examples/gat.py loop, each timed
         alone, two at once, and beside one and two CPU-bound processes: median epoch time, and its ratio to the
         same program alone. "ours, N threads" is training_script.py with --threads N (N = the CPUs: what torch
         chooses by itself, the default before the thread policy). Rounds alternate the order of the scenarios.
threads  one training step per workload (Cora, synthetic graphs full-batch and mini-batch) at every explicit
         thread count 1..CPUs and at the count the policy chooses (gat.threads), interleaved in one process.

    python benchmarks/benchmark.py --sections busy --busy-epochs 100 --busy-rounds 2
    python benchmarks/benchmark.py --sections threads --max-edges 1e6 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.entry import failed  # noqa: E402
from benchmarks.report import markdown  # noqa: E402
from gat.threads import available_cpus, choose_threads  # noqa: E402

SCENARIOS = {"alone": (1, 0), "two at once": (2, 0), "beside 1 busy process": (1, 1), "beside 2 busy processes": (1, 2)}
BUSY_LOOP = "while True: pass"  # one CPU-bound process: what a compile, a browser tab or another job does to a core
THREAD_VARIABLES = ("GAT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------------------------------------------- busy
def ours_command(epochs: int, folder: str, data_dir: str, threads: int | None) -> list[str]:
    """training_script.py with its defaults (the paper's Cora model), ``epochs`` epochs without early stopping."""
    command = [sys.executable, str(REPO / "training_script.py"), "--epochs", str(epochs), "--patience", "100000"]
    command += ["--quiet", "--no-tensorboard", "--no-test", "--device", "cpu", "--data-dir", data_dir]
    command += ["--runs-dir", folder, "--models-dir", folder, "--checkpoint-freq", "100000"]
    return command + (["--threads", str(threads)] if threads else [])


def pyg_command(epochs: int, data_dir: str) -> list[str]:
    return [sys.executable, __file__, "pyg-worker", json.dumps({"epochs": epochs, "data_dir": data_dir})]


def pyg_worker(spec: dict) -> list[float]:
    """PyG's examples/gat.py loop on Cora with torch's default threads: per epoch one training step and one
    evaluation forward pass (its ``test()``); returns each epoch's milliseconds."""
    import torch.nn.functional as F

    from benchmarks.benchmark import PAPER, build, load_graph

    model, graph = build("pyg", load_graph("cora", 0, spec["data_dir"]), torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=PAPER.lr, weight_decay=PAPER.weight_decay)
    times = []
    for _ in range(spec["epochs"]):
        start = time.perf_counter()
        model.train()
        optimizer.zero_grad()
        out = model(graph.x, graph.edge_index)
        F.cross_entropy(out[graph.train_mask], graph.y[graph.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            model(graph.x, graph.edge_index).argmax(-1)
        times.append((time.perf_counter() - start) * 1000)
    return times


def epoch_times(process: subprocess.Popen, folder: str | None) -> list[float]:
    """A finished worker's epoch milliseconds: from its metrics.json (ours) or its last stdout line (PyG)."""
    out, err = process.communicate()
    if process.returncode != 0:
        raise failed(process.args, process.returncode, err)
    if folder is None:
        return json.loads(out.strip().splitlines()[-1])
    metrics = json.loads(next(Path(folder).glob("*/metrics.json")).read_text())
    return [1000 * record["seconds"] for record in metrics["history"]]


def run_scenario(program: str, copies: int, hogs: int, args: argparse.Namespace) -> list[float]:
    """Start ``hogs`` busy loops, then ``copies`` of ``program`` together; the median epoch ms of each copy."""
    environment = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(hogs)]
    try:
        with tempfile.TemporaryDirectory() as root:
            folders = [None if program == "pyg" else str(Path(root) / str(copy)) for copy in range(copies)]
            workers = [
                subprocess.Popen(
                    command_for(program, args, folder),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=environment,
                    cwd=REPO,
                )
                for folder in folders
            ]
            return [
                statistics.median(epoch_times(worker, folder)) for worker, folder in zip(workers, folders, strict=True)
            ]
    finally:
        for process in busy:
            process.kill()
            process.wait()


def command_for(program: str, args: argparse.Namespace, folder: str | None) -> list[str]:
    if program == "pyg":
        return pyg_command(args.busy_epochs, args.data_dir)
    threads = None if program == "ours" else int(program.split()[1])
    return ours_command(args.busy_epochs, folder, args.data_dir, threads)


def busy_programs(pyg: bool) -> list[str]:
    return ["ours", f"ours {available_cpus()} threads", *(["pyg"] if pyg else [])]


def busy_section(args: argparse.Namespace, pyg: bool, progress: Callable[[str], None]) -> dict:
    """Per program and scenario: the median over rounds of the copies' median epoch ms, and the load average."""
    samples = {program: {scenario: [] for scenario in SCENARIOS} for program in busy_programs(pyg)}
    loads = {scenario: [] for scenario in SCENARIOS}
    for round_ in range(args.busy_rounds):
        order = list(SCENARIOS) if round_ % 2 == 0 else list(SCENARIOS)[::-1]
        for scenario in order:
            copies, hogs = SCENARIOS[scenario]
            for program in samples:
                progress(f"busy: round {round_ + 1}, {program}, {scenario}")
                loads[scenario].append(os.getloadavg()[0])
                samples[program][scenario].extend(run_scenario(program, copies, hogs, args))
    medians = {program: {s: statistics.median(v) for s, v in by.items()} for program, by in samples.items()}
    return {"epoch_ms": medians, "load_average": {s: statistics.median(v) for s, v in loads.items()},
            "cpus": available_cpus(), "epochs": args.busy_epochs, "rounds": args.busy_rounds}  # fmt: skip


def busy_table(result: dict) -> str:
    """Rows: program x scenario; epoch ms, x its time alone, and ours' speed-up over PyG in the same scenario."""
    epoch_ms, rows = result["epoch_ms"], []
    for program, by_scenario in epoch_ms.items():
        for scenario, ms in by_scenario.items():
            versus_pyg = "–"
            if program != "pyg" and "pyg" in epoch_ms:
                versus_pyg = f"{epoch_ms['pyg'][scenario] / ms:.2f}×"
            slowdown = ms / by_scenario["alone"]
            load = result["load_average"][scenario]
            rows.append([program, scenario, f"{ms:.2f}", f"{slowdown:.2f}×", versus_pyg, f"{load:.1f}"])
    headers = ["Cora, default run", "scenario", "epoch ms (median)", "× alone", "× PyG's speed", "load average"]
    title = (f"Busy machine: {result['cpus']} CPUs, {result['epochs']} epochs per run, median over "
             f"{result['rounds']} rounds (the load average includes other users of the machine)")  # fmt: skip
    return f"{title}\n\n{markdown(headers, rows)}"


# ---------------------------------------------------------------------------------------------------- threads
def thread_workloads(args: argparse.Namespace) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one training step, its work size in edge-feature values as gat.training.loop.Run computes it)."""
    from benchmarks.benchmark import PAPER, build, load_graph, optimizer_for, training_step
    from gat.data.registry import load_dataset
    from gat.sampling.sampler import NeighbourSampler
    from gat.training.loop import attention_width
    from gat.training.minibatch import sampled_edges
    from gat.training.steps import sampled_batch, training_loss

    cora = load_graph("cora", 0, args.data_dir)
    width = attention_width(PAPER, cora.num_classes)
    workloads = {"cora": (training_step(*build("ours", cora, torch.device("cpu")), "ours"), cora.num_edges * width)}
    sizes = [size for size in (100_000, 1_000_000, 10_000_000) if size <= args.max_edges]
    for edges in sizes:
        graph = load_dataset("synthetic", num_nodes=edges // 10, average_degree=10, num_classes=7, num_features=128)
        width = attention_width(PAPER, graph.num_classes)
        model, fed = build("ours", graph, torch.device("cpu"))
        workloads[f"{edges:.0e} full-batch"] = (training_step(model, fed, "ours", "synthetic"), graph.num_edges * width)
        model, fed = build("ours", graph, torch.device("cpu"))
        optimizer, sampler = optimizer_for(model), NeighbourSampler(fed.edge_index, fed.num_nodes, (10, 10))
        generator = torch.Generator().manual_seed(0)

        def minibatch_step(model=model, optimizer=optimizer, sampler=sampler, graph=fed, generator=generator):
            seeds = torch.randperm(graph.num_nodes, generator=generator)[:1024]
            optimizer.zero_grad(set_to_none=True)
            loss, _ = training_loss(model, sampled_batch(graph, sampler.sample(seeds, generator), torch.device("cpu")))
            loss.backward()
            optimizer.step()

        work = sampled_edges(1024, (10, 10), graph.num_edges) * width
        workloads[f"{edges:.0e} mini-batch 10,10 x 1024"] = (minibatch_step, work)
    return workloads


def threads_section(args: argparse.Namespace, progress: Callable[[str], None]) -> dict:
    """Per workload: the step's median ms at each explicit thread count and at the policy's choice, interleaved."""
    from benchmarks.timing import time_interleaved

    cpus, results = available_cpus(), {}
    previous = torch.get_num_threads()
    for name, (step, work) in thread_workloads(args).items():
        progress(f"threads: {name}")
        chosen = choose_threads(cpus, work)

        def at(threads: int, step: Callable[[], object] = step) -> Callable[[], object]:
            return lambda: (torch.set_num_threads(threads), step())

        steps = {f"{threads}": at(threads) for threads in range(1, cpus + 1)} | {"policy": at(chosen)}
        timings = time_interleaved(steps, args.repeats, args.warmup, torch.device("cpu"), budget_s=args.budget_seconds)
        results[name] = {"work": work, "chosen": chosen, "train": timings, "load_average": os.getloadavg()[0]}
    torch.set_num_threads(previous)
    return results


def threads_table(results: dict) -> str:
    rows = []
    for name, result in results.items():
        explicit = {key: timing for key, timing in result["train"].items() if key != "policy"}
        best = min(explicit, key=lambda key: explicit[key].median_ms)
        policy = result["train"]["policy"].median_ms
        cells = [f"{explicit[key].median_ms:.2f}" for key in sorted(explicit, key=int)]
        ratio = policy / explicit[best].median_ms
        rows.append([name, f"{result['work']:.2g}", result["chosen"], *cells, best, f"{ratio:.3f}",
                     f"{result['load_average']:.1f}"])  # fmt: skip
    counts = sorted(next(iter(results.values()))["train"].keys() - {"policy"}, key=int) if results else []
    headers = ["workload (one training step)", "work (edge values)", "policy's threads"]
    headers += [f"ms at {count}" for count in counts] + ["fastest", "policy / fastest", "load average"]
    title = "Thread policy vs every explicit thread count (median ms per step, interleaved)"
    return f"{title}\n\n{markdown(headers, rows)}"


TABLES = {"busy": busy_table, "threads": threads_table}  # how benchmarks/report.py shows a stored section


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "pyg-worker":
    print(json.dumps(pyg_worker(json.loads(sys.argv[2]))))
