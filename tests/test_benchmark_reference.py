"""The benchmark compares like with like: its reference models compute our GAT's function, and it runs."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks import benchmark, report
from benchmarks.reference_models import DenseGAT, PyGGAT, copy_weights
from benchmarks.timing import Timing
from gat import load_dataset
from gat.data import download
from gat.nn.model import GAT
from tests.helpers import REPO, random_graph


def models_with_shared_weights(reference: type, dropout: float = 0.6) -> tuple[GAT, torch.nn.Module]:
    torch.manual_seed(0)
    ours = GAT(12, 4, hidden=5, heads=(3, 2), dropout=dropout).double()
    with torch.no_grad():
        for layer in ours.layers:
            layer.bias.normal_()  # a zero bias would hide a misplaced one
    theirs = reference(12, 4, hidden=5, heads=(3, 2), dropout=dropout).double()
    copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("reference", ["dense", "pyg"])
def test_reference_computes_our_function(reference):
    if reference == "pyg":
        pytest.importorskip("torch_geometric", reason="PyG is an optional reference")
    ours, theirs = models_with_shared_weights({"dense": DenseGAT, "pyg": PyGGAT}[reference])
    edge_index = random_graph(60, 400, seed=5, isolated=6)  # isolated nodes attend only to themselves
    x = torch.randn(60, 12, dtype=torch.float64)
    expected = ours.eval()(x, edge_index)
    torch.testing.assert_close(theirs.eval()(x, edge_index), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours(x.to_sparse_csr(), edge_index), expected, rtol=0, atol=1e-10)


def test_without_dropout_training_follows_the_same_trajectory():
    """Through the benchmark's training step (Adam, weight decay) both models take the same steps."""
    ours, theirs = models_with_shared_weights(DenseGAT, dropout=0.0)
    graph = load_dataset(
        "synthetic", num_nodes=60, average_degree=4, num_classes=4, num_features=12, features_per_node=4
    )
    dense_x = graph.dense_x().double()
    ours_step = benchmark.training_step(ours, dataclasses.replace(graph, x=dense_x.to_sparse_csr()), "ours-whole")
    theirs_step = benchmark.training_step(theirs, dataclasses.replace(graph, x=dense_x), "dense")
    for _ in range(5):
        assert ours_step() == pytest.approx(theirs_step(), rel=0, abs=1e-9)


@pytest.mark.parametrize("impl", ["dense", "pyg"])
def test_every_implementation_starts_from_our_weights_and_trains(impl):
    if impl == "pyg":
        pytest.importorskip("torch_geometric", reason="PyG is an optional reference")
    graph = load_dataset(
        "synthetic", num_nodes=80, average_degree=4, num_classes=4, num_features=16, features_per_node=4
    )
    cpu = torch.device("cpu")
    ours, ours_graph = benchmark.build("ours", graph, cpu)
    theirs, their_graph = benchmark.build(impl, graph, cpu)
    assert ours_graph.x.layout == torch.sparse_csr and their_graph.x.layout == torch.strided  # as users feed them
    ours.eval(), theirs.eval()
    torch.testing.assert_close(theirs(their_graph.x, graph.edge_index), ours(ours_graph.x, graph.edge_index))
    accuracy = benchmark.accuracy_after(impl, graph, cpu, epochs=2)
    assert 0 <= accuracy["test_final"] <= 1 and accuracy["best_epoch"] in (1, 2)


def test_pyg_missing_is_reported_not_fatal():
    timing = Timing(1.0, 0.9, 1.1, 3)
    result = {
        "train": {"ours": timing, "dense": timing},
        "inference": {"ours": timing, "dense": timing},
        "memory": {"baseline": 300.0, "ours": 350.0, "dense": "OOM"},
        "accuracy": {impl: {"test_final": 0.8, "test_best_val": 0.81, "best_epoch": 5} for impl in ("ours", "dense")},
    }
    table = report.cora_table(result, ["ours", "dense", "pyg"])
    assert "| PyG GATConv | not installed |" in table
    assert "350 (+50)" in table and "OOM" in table


def test_cora_section_runs_and_prints_the_table(planetoid_mirror, tmp_path):
    """The real command, end to end. Without the dense reference, which costs seconds per step on Cora (a minute
    for this test); its part of the benchmark is checked on a small graph above."""
    output = tmp_path / "result.json"
    command = [sys.executable, str(REPO / "benchmarks" / "benchmark.py"), "--sections", "cora", "--repeats", "2"]
    command += ["--warmup", "1", "--budget-epochs", "2", "--implementations", "ours,ours-whole,pyg"]
    command += ["--data-dir", str(tmp_path), "--json", str(output)]
    environment = {**os.environ, download.MIRROR_ENV: planetoid_mirror}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "| ours (edge list, sparse x) |" in done.stdout and "| ours, whole graph |" in done.stdout
    pyg_row = next(line for line in done.stdout.splitlines() if line.startswith("| PyG GATConv |"))
    ours_row = next(line for line in done.stdout.splitlines() if line.startswith("| ours (edge list, sparse x) |"))
    try:
        import torch_geometric  # noqa: F401

        assert "not installed" not in pyg_row and "×" in ours_row  # how many times PyG's speed
    except ImportError:
        assert "not installed" in pyg_row
    report = json.loads(output.read_text())
    assert "ours" in report["cora"]["train"] and report["machine"]["cores"] >= 1
    assert all(isinstance(report["cora"]["memory"][impl], float) for impl in ("baseline", "ours"))


def test_results_record_arguments_without_this_machines_paths(tmp_path):
    import argparse

    args = argparse.Namespace(json=REPO / "benchmarks" / "results" / "x.json", out=tmp_path / "elsewhere.json",
                              data_dir=str(tmp_path), repeats=5, fanouts=[10, 10])  # fmt: skip
    stored = report.stored_arguments(args, REPO, leave_out=("data_dir",))
    assert stored == {"json": "benchmarks/results/x.json", "out": str(tmp_path / "elsewhere.json"), "repeats": 5,
                      "fanouts": [10, 10]}  # fmt: skip


def test_flatness_table_divides_time_per_edge_by_the_warm_small_step():
    def timing(ms: float) -> Timing:
        return Timing(ms, ms, ms, 3)

    result = {
        "edges": {"big": 1_000_000, "small after big": 100_000, "small": 100_000},
        "train": {"big": timing(30.0), "small after big": timing(4.0), "small": timing(2.0)},
    }
    table = report.flatness_table(result)
    assert "| 100,000 | small after big | 4.00 [4.00–4.00] | 40.0 |" in table
    assert table.endswith("Time per edge, 1,000,000 over 100,000 edges: 1.50×")  # 30 ms per 1M vs 20


def test_flatness_section_runs_interleaved_and_prints_the_ratio(tmp_path):
    output = tmp_path / "result.json"
    command = [sys.executable, str(REPO / "benchmarks" / "benchmark.py"), "--sections", "flatness"]
    command += ["--max-edges", "2e5", "--repeats", "3", "--warmup", "1", "--json", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Time per edge, 200,000 over 100,000 edges: " in done.stdout
    timings = json.loads(output.read_text())["flatness"]["train"]
    assert set(timings) == {"big", "small after big", "small"}
    assert all(timing["repeats"] == 3 and timing["median_ms"] > 0 for timing in timings.values())


def test_flatness_section_refuses_a_big_graph_no_bigger_than_the_small_one():
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "benchmark.py"),
        "--sections",
        "flatness",
        "--max-edges",
        "1e5",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "--max-edges" in done.stderr and "Traceback" not in done.stderr
