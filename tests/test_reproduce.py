"""python -m gat.reproduce on the synthetic graph: the table, resuming without redoing runs, missing datasets."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys

import pytest
import torch

from gat import reproduce
from gat.nn.kernels.neighbourhoods import build_neighbourhoods
from gat.nn.model import Inspection
from gat.reproduce import runner
from tests.helpers import HAND_ATTENTION, HAND_EDGE_INDEX, HAND_LABELS, REPO, random_graph


def arguments(tmp_path, *extra: str) -> list[str]:
    common = ["--seeds", "2", "--layers", "gat,gatv2", "--epochs", "3", "--output", str(tmp_path / "results")]
    return [*common, "--data-dir", str(tmp_path / "data"), *extra]


@pytest.fixture(scope="module")
def finished_table(tmp_path_factory):
    """One finished 2-seed table on the synthetic graph (GAT and GATv2), made once."""
    folder = tmp_path_factory.mktemp("table")
    assert reproduce.main(arguments(folder, "--datasets", "synthetic")) == 0
    return folder / "results"


@pytest.fixture
def table(finished_table, tmp_path):
    """A copy of the finished table in this test's folder, as if this test had made it."""
    return shutil.copytree(finished_table, tmp_path / "results")


def test_table_has_every_run_with_its_statistics(table):
    records = {path.name: json.loads(path.read_text()) for path in (table / "runs").glob("*.json")}
    expected = {f"synthetic_{layer}_seed{seed}.json" for layer in ("gat", "gatv2") for seed in (0, 1)}
    assert set(records) == expected
    text = (table / "results.md").read_text()
    for layer in ("gat", "gatv2"):
        scores = [records[f"synthetic_{layer}_seed{seed}.json"]["test_score"] for seed in (0, 1)]
        row = f"| synthetic | {layer} | 2 | **{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}** | "
        assert row + f"{min(scores):.3f} | {max(scores):.3f} | 3 |" in text
    # GAT and GATv2 entropy side by side, one row per attention layer, averaged over the seeds
    assert "| dataset | attention layer | uniform | entropy gat | entropy gatv2 | KL gat | KL gatv2 |" in text
    for index in (0, 1):
        runs = {layer: [records[f"synthetic_{layer}_seed{seed}.json"]["entropy"][index] for seed in (0, 1)]
                for layer in ("gat", "gatv2")}  # fmt: skip
        means = {
            (layer, key): statistics.mean(run[key] for run in runs[layer]) for layer in runs for key in runs["gat"][0]
        }
        cells = [means[layer, key] for key in ("entropy", "kl") for layer in ("gat", "gatv2")]
        row = f"| synthetic | {index} | {means['gat', 'uniform']:.4f} | " + " | ".join(f"{cell:.4f}" for cell in cells)
        assert row + " |" in text
    assert records["synthetic_gatv2_seed1.json"]["config"]["layer"] == "gatv2"


def test_every_selection_rules_test_score_is_recorded_and_tabled(table):
    records = [json.loads(path.read_text()) for path in sorted((table / "runs").glob("synthetic_gat_seed*.json"))]
    for record in records:
        assert set(record["test_by_rule"]) == {"paper", "val-loss", "val-acc", "last"}
        assert record["test_by_rule"]["paper"] == pytest.approx(record["test_score"], abs=1e-6)  # the kept model
        assert record["selections"]["paper"]["epoch"] == record["best_epoch"]
        assert record["selections"]["last"]["epoch"] == record["epochs"]
    cells = []
    for rule in ("paper", "val-loss", "val-acc", "last"):
        scores = [record["test_by_rule"][rule] for record in records]
        cells.append(f"{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}")
    text = (table / "results.md").read_text()
    assert "| dataset | model | runs | paper | val-loss | val-acc | last |" in text
    assert f"| synthetic | gat | 2 | {' | '.join(cells)} |" in text


def test_the_mean_layer_reproduces_with_uniform_attention(tmp_path):
    assert reproduce.main(arguments(tmp_path, "--datasets", "synthetic", "--layers", "mean", "--seeds", "1")) == 0
    record = json.loads((tmp_path / "results" / "runs" / "synthetic_mean_seed0.json").read_text())
    assert record["layer"] == "mean" and record["config"]["layer"] == "mean"
    for layer in record["entropy"]:
        assert layer["kl"] == pytest.approx(0, abs=1e-6) and layer["entropy"] == pytest.approx(layer["uniform"])


def test_a_second_invocation_redoes_no_run(table, tmp_path, monkeypatch, capsys):
    # a result saved before a setting existed (here graphs_per_batch) computed its default: it is reused too
    saved = table / "runs" / "synthetic_gat_seed0.json"
    record = json.loads(saved.read_text())
    del record["config"]["graphs_per_batch"]
    saved.write_text(json.dumps(record))
    before = {path: path.read_text() for path in (table / "runs").glob("*.json")}

    def must_not_train(job):
        raise AssertionError(f"run {job.config.dataset} {job.config.layer} seed {job.config.seed} was redone")

    monkeypatch.setattr(runner, "run", must_not_train)
    assert reproduce.main(arguments(tmp_path, "--datasets", "synthetic")) == 0
    assert {path: path.read_text() for path in (table / "runs").glob("*.json")} == before
    assert "| synthetic | gatv2 | 2 |" in capsys.readouterr().out


def test_only_missing_or_changed_runs_are_redone(table, tmp_path, monkeypatch):
    (table / "runs" / "synthetic_gat_seed1.json").unlink()
    redone = []
    original = runner.run
    monkeypatch.setattr(runner, "run", lambda job: redone.append((job.config.layer, job.config.seed)) or original(job))
    assert reproduce.main(arguments(tmp_path, "--datasets", "synthetic")) == 0
    assert redone == [("gat", 1)]
    # other settings (here: a different epoch cap) are other runs: all of them are redone
    redone.clear()
    assert reproduce.main(arguments(tmp_path, "--datasets", "synthetic", "--epochs", "2")) == 0
    assert len(redone) == 4


def test_a_saved_run_with_a_layer_too_few_is_refused_in_one_line(table, tmp_path, capsys):
    saved = table / "runs" / "synthetic_gat_seed0.json"
    record = json.loads(saved.read_text())
    record["entropy"] = record["entropy"][:1]
    saved.write_text(json.dumps(record))
    assert reproduce.main(arguments(tmp_path, "--datasets", "synthetic")) == 1
    error = capsys.readouterr().err
    assert "'entropy' and 'classes' need one entry per attention layer (2)" in error and error.count("\n") == 1


def test_missing_dataset_is_listed_as_needs_download(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GAT_DATA_MIRROR", raising=False)
    code = reproduce.main(arguments(tmp_path, "--datasets", "pubmed,ppi", "--seeds", "1"))
    assert code == 0
    text = (tmp_path / "results" / "results.md").read_text()
    assert "| pubmed | gat | 0 | needs download: `python -m gat.reproduce --datasets pubmed`" in text
    assert "| ppi | gatv2 | 0 | needs download: `python -m gat.reproduce --datasets ppi`" in text
    assert "0.790 ± 0.003" in text and "0.973 ± 0.002" in text  # the published figures stay in the table
    assert "- ppi: cannot get the ppi dataset: ppi.zip missing" in text
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--seeds", "0"], "--seeds: must be in [1, 10000], got 0"),
        (["--seeds", "4294967295"], "--seeds: must be in [1, 10000]"),
        (["--epochs", "0"], "--epochs: must be >= 1, got 0"),
        (["--datasets", "cora,imagenet"], "unknown dataset imagenet"),
        (["--layers", "gcn"], "unknown layer gcn"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_entropy_by_layer_matches_the_visualization_statistics():
    from visualization.entropy import entropy_statistics

    num_nodes = 40
    edge_index = build_neighbourhoods(random_graph(num_nodes, 200, seed=0, isolated=3), num_nodes).edge_index
    sizes = torch.bincount(edge_index[1], minlength=num_nodes).double()
    uniform = (1 / sizes)[edge_index[1]].unsqueeze(1).expand(-1, 2)
    learned = torch.rand(edge_index.shape[1], 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sums = torch.zeros(num_nodes, 3, dtype=torch.float64).index_add_(0, edge_index[1], learned)
    learned = learned / sums[edge_index[1]]  # a random distribution over each neighbourhood
    inspection = Inspection(torch.zeros(num_nodes, 2), [], [uniform, learned], edge_index)

    rows = runner.entropy_by_layer(inspection)
    assert rows[0]["kl"] == pytest.approx(0, abs=1e-12) and rows[0]["entropy"] == pytest.approx(rows[0]["uniform"])
    reference = entropy_statistics(inspection)
    for layer in (0, 1):
        heads = [row for row in reference if row["layer"] == layer]
        assert rows[layer]["entropy"] == pytest.approx(statistics.mean(row["mean_entropy"] for row in heads))
        assert rows[layer]["kl"] == pytest.approx(statistics.mean(row["mean_kl"] for row in heads))
        assert rows[layer]["uniform"] == pytest.approx(heads[0]["mean_uniform_entropy"])
    assert rows[1]["kl"] > 0.01


def test_attention_on_same_and_different_class_neighbours_by_hand():
    # tests/helpers.py's four nodes, self-loops left out. Head 0: node 0 gives 0.3 to node 1 (same class) and 0.2 to
    # node 2 (other): share 0.3 / 0.5 = 0.6; node 1 gives all to node 0 (same): 1; node 2 gives 0.2 to node 0 (other)
    # and 0.6 to node 3 (same): 0.75; node 3 has no neighbour. Head 1: 0.2 / 0.8 = 0.25, 1, 0.4 / 0.5 = 0.8.
    inspection = Inspection(torch.zeros(4, 2), [], [HAND_ATTENTION], HAND_EDGE_INDEX)
    (row,) = runner.attention_classes(inspection, HAND_LABELS)
    assert row["layer"] == 0
    assert row["same_class_share"] == pytest.approx(((0.6 + 1 + 0.75) / 3 + (0.25 + 1 + 0.8) / 3) / 2)
    assert row["uniform_same_class_share"] == pytest.approx((0.5 + 1 + 0.5) / 3)  # 1 of 2, 1 of 1, 1 of 2
    # same-class edges 1->0, 0->1, 3->2; different-class 2->0, 0->2
    assert row["mean_same"] == pytest.approx(((0.3 + 0.4 + 0.6) / 3 + (0.2 + 0.4 + 0.4) / 3) / 2)
    assert row["mean_different"] == pytest.approx(((0.2 + 0.2) / 2 + (0.6 + 0.1) / 2) / 2)


@pytest.mark.slow
def test_quick_attention_study_end_to_end(tmp_path):
    command = [sys.executable, "-m", "gat.reproduce", "--study", "attention", "--quick", "--output", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "attention"
    records = {path.name: json.loads(path.read_text()) for path in (folder / "runs").glob("*.json")}
    graphs = ("sbm-h0.20", "sbm-h0.80", "noisy-neighbours")
    assert set(records) == {f"{g}_{m}_seed{s}.json" for g in graphs for m in ("gat", "gatv2", "mean") for s in (0, 1)}
    text = (folder / "attention.md").read_text()
    for graph in graphs:
        for model in ("gat", "gatv2", "mean"):
            runs = [records[f"{graph}_{model}_seed{seed}.json"] for seed in (0, 1)]
            accuracy = [run["test_score"] for run in runs]
            homophily = statistics.mean(run["edge_homophily"] for run in runs)
            kl = [statistics.mean(run["entropy"][layer]["kl"] for run in runs) for layer in (0, 1)]
            row = f"| {graph} | {homophily:.3f} | {model} | 2 | **{statistics.mean(accuracy):.3f} ± "
            assert row + f"{statistics.stdev(accuracy):.3f}** | {kl[0]:.3f} | {kl[1]:.3f} |" in text
            if model == "mean":  # constant attention: uniform, with uniform attention's same-class share
                assert kl == pytest.approx([0, 0], abs=1e-9)
                assert all(c["same_class_share"] == pytest.approx(c["uniform_same_class_share"])
                           for run in runs for c in run["classes"])  # fmt: skip
    assert (folder / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second invocation redoes no run: every result file is left as it was
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (folder / "runs").glob("*.json")}
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (folder / "runs").glob("*.json")} == before
