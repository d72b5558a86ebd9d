"""How `benchmark.py` shows its results: Markdown tables (ready to paste into the docs) and the machine.

As a command it prints the tables of stored results: ``python benchmarks/report.py benchmarks/results/*.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `benchmarks` imports from the repo

from benchmarks.entry import run_main  # noqa: E402
from benchmarks.timing import Timing  # noqa: E402
from gat.errors import GATError, OneLineErrorParser  # noqa: E402
from gat.validate import DictOf, Number, Optional, read_json  # noqa: E402

NAMES = {
    "ours": "ours (edge list, sparse x)",
    "ours-whole": "ours, whole graph",
    "dense": "dense N×N reference",
    "pyg": "PyG GATConv",
}
FLATNESS_STEPS = ("big", "small after big", "small")
# A stored result (gat.validate): what the tables read of it. A median is never 0 (the tables divide by it).
TIMING = {
    "median_ms": Number(float, 1e-9),
    **dict.fromkeys(("p25_ms", "p75_ms"), Number(float, 0)),
    "repeats": Number(int, 1),
}
TIMINGS = DictOf(TIMING)
ACCURACY = {"test_best_val": Number(float, 0, 1), "test_final": Number(float, 0, 1)}
FLATNESS = {"edges": dict.fromkeys(FLATNESS_STEPS, Number(int, 1)), "train": dict.fromkeys(FLATNESS_STEPS, TIMING)}
FULLRUN = {
    **dict.fromkeys(("wall_seconds", "training_seconds", "ms_per_epoch"), Number(float, 0)),
    **dict.fromkeys(("epochs", "best_epoch"), Number(int, 0)),
    "test_accuracy": (float, type(None)),
}
BUSY = {
    "epoch_ms": DictOf(DictOf(Number(float, 1e-9))),  # program -> scenario -> median epoch ms
    "load_average": DictOf(Number(float, 0)),  # scenario -> median load average
    **dict.fromkeys(("cpus", "epochs", "rounds"), Number(int, 1)),
}
THREADS = DictOf(  # workload -> the step's timings at each explicit thread count and at the policy's
    {"work": Number(int, 0), "chosen": Number(int, 1), "train": TIMINGS, "load_average": Number(float, 0)}
)
RESULTS_SCHEMA = {
    "machine": dict,
    "cora": Optional({"train": TIMINGS, "inference": TIMINGS, "memory": dict, "accuracy": DictOf(ACCURACY)}),
    "scaling": Optional(DictOf({"nodes": Number(int, 0), "train": TIMINGS, "memory": dict, "interleaved": bool})),
    "flatness": Optional(FLATNESS),
    "fullrun": Optional(FULLRUN),
    "busy": Optional(BUSY),
    "threads": Optional(THREADS),
    "results": Optional(list),  # scale_out.py's rows: scale_out.check_rows
}


def markdown(headers: list[str], rows: list[list[object]]) -> str:
    lines = [headers, ["---"] * len(headers), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def memory_cell(memory: dict, impl: str) -> str:
    """``peak (+increment over the baseline process)`` in MiB, or why there is no number."""
    value, baseline = memory.get(impl, "not installed"), memory.get("baseline")
    if not isinstance(value, float):
        return str(value)
    return f"{value:.0f} (+{value - baseline:.0f})" if isinstance(baseline, float) else f"{value:.0f}"


def times_faster(timings: dict, impl: str, than: str, spec: str = ".3g") -> str:
    """How many times faster ``impl`` is than ``than`` (``than``'s median / ``impl``'s), or "–"."""
    if impl == than or impl not in timings or than not in timings:
        return "–"
    return f"{timings[than].median_ms / timings[impl].median_ms:{spec}}×"  # 11.9×, 9.26×, 0.04×


def cora_table(result: dict, impls: list[str]) -> str:
    """One row per implementation asked for; one that was asked for but not run was not installed. "ours"
    trains as gat.training.loop does (receptive field; CUDA graph on a GPU), "ours-whole" eagerly on the whole graph."""
    train, infer, memory, accuracy = result["train"], result["inference"], result["memory"], result["accuracy"]
    rows = [["baseline: import torch + load Cora", "–", "–", memory_cell(memory, "baseline"), "–", "–"]]
    for impl in impls:
        if impl not in train:
            rows.append([NAMES[impl], "not installed", *"––––"])
            continue
        acc = f"{accuracy[impl]['test_best_val']:.3f} / {accuracy[impl]['test_final']:.3f}"
        speed = "–" if impl == "pyg" else f"{times_faster(train, impl, 'pyg')} / {times_faster(infer, impl, 'pyg')}"
        rows.append([NAMES[impl], train[impl], infer[impl], memory_cell(memory, impl), acc, speed])
    headers = [
        "Cora",
        "train step ms: median [p25–p75]",
        "inference ms",
        "peak memory MiB (+ over baseline)",
        "test acc: best val / final",
        "× PyG's speed: train / inference",
    ]
    return markdown(headers, rows)


def scaling_table(results: dict, impls: list[str]) -> str:
    rows = []
    for edges, result in results.items():
        for impl in impls:
            timing = result["train"].get(impl)
            per_million = f"{timing.median_ms / (edges / 1e6):.1f}" if timing else "–"
            cells = [timing or result["memory"].get(impl, "not installed"), per_million]
            cells += [memory_cell(result["memory"], impl), times_faster(result["train"], "ours", than=impl, spec=".1f")]
            rows.append([f"{edges:,}", f"{result['nodes']:,}", NAMES[impl], *cells])
    headers = [
        "directed edges",
        "nodes",
        "implementation",
        "train step ms: median [p25–p75]",
        "ms per 1M edges",
        "peak memory MiB (+ over baseline)",
        "ours faster",
    ]
    table = markdown(headers, rows)
    alone = [f"{edges:,}" for edges, result in results.items() if not result["interleaved"]]
    if alone:  # both would not fit in memory at once, so each was timed on its own
        table += (
            f"\n\nAt {', '.join(alone)} edges the implementations were timed one after the other, not interleaved: "
            "both would not fit in memory at once."
        )
    return table


def flatness_table(result: dict) -> str:
    """The interleaved steps per million edges, and the big graph's over the (second) small step's."""
    train, edges = result["train"], result["edges"]
    per_million = {name: train[name].median_ms / (edges[name] / 1e6) for name in FLATNESS_STEPS}
    rows = [[f"{edges[name]:,}", name, train[name], f"{per_million[name]:.1f}"] for name in FLATNESS_STEPS]
    sizes = f"{result['edges']['big']:,} over {result['edges']['small']:,} edges"
    table = markdown(["directed edges", "step", "train step ms: median [p25–p75]", "ms per 1M edges"], rows)
    return table + f"\n\nTime per edge, {sizes}: {per_million['big'] / per_million['small']:.2f}×"


def fullrun_table(result: dict) -> str:
    accuracy = result["test_accuracy"]
    row = [
        f"{result['wall_seconds']:.1f}",
        f"{result['training_seconds']:.1f}",
        result["epochs"],
        result["best_epoch"],
        f"{result['ms_per_epoch']:.2f}",
        "–" if accuracy is None else f"{accuracy:.3f}",
    ]
    headers = [
        "`training_script.py`: process wall s",
        "training loop s",
        "epochs",
        "best epoch",
        "ms per epoch",
        "test acc",
    ]
    return markdown(headers, [row])


def machine_info(device: torch.device, repo: Path, pyg: str | None, memory_limit_gb: float) -> dict:
    """What the numbers depend on; the load average shows whether the machine was quiet."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "–",
        "torch_geometric": pyg or "not installed",
        "python": platform.python_version(),
        "memory guard GiB": round(memory_limit_gb, 1),
        "load average (1, 5, 15 min)": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "commit": commit.stdout.strip() or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def stored_arguments(args: argparse.Namespace, repo: Path, leave_out: tuple[str, ...] = ()) -> dict:
    """The command's arguments as a results file records them: what was measured, not where this machine keeps its
    files (paths inside ``repo`` relative to it; ``leave_out`` names others to drop, such as a dataset cache)."""

    def stored(value: object) -> object:
        if isinstance(value, Path) and value.resolve().is_relative_to(repo.resolve()):
            return str(value.resolve().relative_to(repo.resolve()))
        return str(value) if isinstance(value, Path) else value

    return {key: stored(value) for key, value in vars(args).items() if key not in leave_out}


def machine_kind(device: torch.device) -> str:
    """The kind of machine results were measured on, for file names: ``cpu-2core``, ``cuda-h100``."""
    if device.type == "cuda":
        words = torch.cuda.get_device_name(device).lower().replace("nvidia", "").split()
        return f"cuda-{words[0] if words else 'gpu'}"
    return f"cpu-{os.cpu_count()}core"


def result_path(results_dir: Path, device: torch.device, sections: list[str], all_sections: tuple[str, ...]) -> Path:
    """``<machine kind>[-<sections>].json``: what was measured, on what kind of machine."""
    measured = "" if tuple(sections) == all_sections else "-" + "-".join(sections)
    return results_dir / f"{machine_kind(device)}{measured}.json"


def machine_table(info: dict) -> str:
    return markdown(["machine", ""], [[key, value] for key, value in info.items()])


def jsonable(value: object) -> object:
    """Timings become dicts and int keys strings, so `gat.io.save_json` can write the report."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def from_json(value: object) -> object:
    """Undo :func:`jsonable` for the tables: timing dicts become :class:`Timing` again, scaling sizes ints."""
    if isinstance(value, dict):
        fields = [field.name for field in dataclasses.fields(Timing)]
        if set(fields) <= set(value):
            return Timing(**{name: value[name] for name in fields})
        return {int(key) if key.isdecimal() else key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


def stored_tables(results: dict) -> str:
    """The tables of a stored benchmark.py or scale_out.py result, as the run printed them."""
    results = from_json(results)
    tables = [machine_table(results["machine"])]
    if "cora" in results:
        tables.append(cora_table(results["cora"], [impl for impl in NAMES if impl in results["cora"]["train"]]))
    if "scaling" in results:
        impls = [impl for impl in NAMES if any(impl in size["train"] for size in results["scaling"].values())]
        tables.append(scaling_table(results["scaling"], impls))
    if "flatness" in results:
        tables.append(flatness_table(results["flatness"]))
    if "fullrun" in results:
        tables.append(fullrun_table(results["fullrun"]))
    if "busy" in results or "threads" in results:
        from benchmarks import busy  # imports this module's `markdown`

        tables += [table(results[name]) for name, table in busy.TABLES.items() if name in results]
    if "results" in results:  # scale_out.py
        from benchmarks.scale_out import table

        tables.append(table(results["results"]))
    return "\n\n".join(tables)


def stored_results(path: str) -> dict:
    """The results stored at ``path`` once :func:`stored_tables` can show them all, else one `GATError` naming it."""
    from benchmarks.scale_out import check_rows

    results = read_json(path, RESULTS_SCHEMA)
    if "cora" in results:  # every implementation timed has a row: its inference time and accuracy too
        cora = results["cora"]
        if missing := set(cora["train"]) - (set(cora["inference"]) & set(cora["accuracy"])):
            raise GATError(f"{path}: 'cora': {', '.join(sorted(missing))} lacks 'inference' or 'accuracy'")
    if not all(edges.isdecimal() and int(edges) > 0 for edges in results.get("scaling", {})):
        raise GATError(f"{path}: 'scaling' must be keyed by the graphs' edge counts")
    if "busy" in results:  # every program timed in every scenario whose load average is kept, "alone" among them
        busy = results["busy"]
        scenarios = set(busy["load_average"])
        if "alone" not in scenarios or any(set(by) != scenarios for by in busy["epoch_ms"].values()):
            raise GATError(f"{path}: 'busy': every program needs an epoch time in every scenario, 'alone' included")
    counts = {frozenset(workload["train"]) for workload in results.get("threads", {}).values()}
    if len(counts) > 1 or any("policy" not in c or not all(k == "policy" or k.isdecimal() for k in c) for c in counts):
        raise GATError(f"{path}: 'threads': every workload must time the policy and the same explicit thread counts")
    check_rows(results.get("results", []), path)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrorParser(description="Print the tables of stored benchmark.py or scale_out.py results.")
    parser.add_argument("paths", nargs="+", metavar="RESULT.json")
    args = parser.parse_args(argv)
    for path in args.paths:
        print(f"## {path}\n\n{stored_tables(stored_results(path))}\n")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
