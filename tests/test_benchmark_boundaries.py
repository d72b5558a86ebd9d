"""The benchmark scripts' boundaries never crash: a bad flag is refused at parse time (exit 2), a corrupt file or a
failing folder is one line naming it (exit 1), each before anything is trained or measured, and a reader that closes
the pipe early ends a script quietly."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from benchmarks import paper_differences, selection_rules
from benchmarks.entry import run_main
from gat.errors import GATError
from tests.helpers import REPO

BAD_FLAGS = [
    ("paper_differences", ["--epochs", "0"], "argument --epochs"),
    ("paper_differences", ["--threads", "0"], "argument --threads"),
    ("paper_differences", ["--seeds", "0"], "argument --seeds"),
    ("paper_differences", ["--variants", "base,nope"], "argument --variants: unknown change(s) nope"),
    ("tsne", ["--rounds", "0"], "argument --rounds"),
    ("tsne", ["--threads", "0"], "argument --threads"),
    ("tsne", ["--seed", "-1"], "argument --seed"),
    ("pictures", ["--rounds", "-1"], "argument --rounds"),
    ("tricks", ["--threads", "x", "--baseline"], "argument --threads"),
    ("tricks", ["--threads", "2,0"], "argument --threads"),
    ("tricks", ["--baseline", "--cora-epochs", "0"], "argument --cora-epochs"),
    ("tricks", ["--tricks", "fused Adam,nope"], "argument --tricks: no trick starts with 'nope'"),
    ("benchmark", ["--repeats", "0"], "argument --repeats"),
    ("benchmark", ["--busy-rounds", "0"], "argument --busy-rounds"),
    ("benchmark", ["--busy-epochs", "0"], "argument --busy-epochs"),
    ("benchmark", ["--threads", "-1"], "argument --threads"),
    ("benchmark", ["--max-edges", "nan"], "argument --max-edges"),
    ("benchmark", ["--max-edges", "inf"], "argument --max-edges"),
    ("benchmark", ["--sections", "cora,nope"], "unknown section or implementation: nope"),
    ("scale_out", ["--fanouts", "x"], "argument --fanouts"),
    ("scale_out", ["--fanouts", "10"], "argument --fanouts: one count per layer"),
    ("scale_out", ["--edges", "x"], "argument --edges"),
    ("scale_out", ["--edges", "1e5,-5"], "argument --edges"),
    ("scale_out", ["--epochs", "0"], "argument --epochs"),
    ("scale_out", ["--batch-size", "0"], "argument --batch-size"),
    ("scale_out", ["--train-fraction", "nan"], "argument --train-fraction"),
    ("scale_out", ["--threads", "-1"], "argument --threads"),
    ("scale_out", ["--modes", "full,foo"], "argument --modes: unknown mode 'foo'"),
    ("report", [], "required: RESULT.json"),
]
RESULTS = {"machine": {}}
TIMING = {"median_ms": 1.0, "p25_ms": 0.9, "p75_ms": 1.1, "repeats": 3}
BUSY = {"epoch_ms": {"ours": {"alone": 1.0}}, "load_average": {"alone": 1.0}, "cpus": 2, "epochs": 1, "rounds": 1}
WORKLOAD = {"work": 1, "chosen": 1, "train": {"1": TIMING, "policy": TIMING}, "load_average": 1.0}
CORRUPT_RESULTS = [
    ('{"machine": {', "not a JSON file"),
    ("[1]", "the file must be a mapping, got list"),
    ('{"a": 1}', "'machine' is missing"),
    (json.dumps({**RESULTS, "fullrun": {"wall_seconds": "x"}}), "'fullrun.wall_seconds' must be a number, got str"),
    (
        json.dumps({**RESULTS, "cora": {"train": {"ours": TIMING}, "inference": {}, "memory": {}, "accuracy": {}}}),
        "'cora': ours lacks 'inference' or 'accuracy'",
    ),
    (
        json.dumps({**RESULTS, "scaling": {"many": {"nodes": 1, "train": {}, "memory": {}, "interleaved": True}}}),
        "'scaling' must be keyed by the graphs' edge counts",
    ),
    (
        json.dumps({**RESULTS, "results": [{"graph_edges": 10, "nodes": 1, "mode": "full"}]}),
        "results[0]: 'processes' is missing",
    ),
    (
        json.dumps({**RESULTS, "busy": {**BUSY, "epoch_ms": {"ours": {"alone": 0.0}}}}),
        "'busy.epoch_ms.ours.alone' must be in [1e-09, inf], got 0.0",
    ),
    (
        json.dumps({**RESULTS, "busy": {**BUSY, "load_average": {"alone": 1.0, "two at once": 2.0}}}),
        "'busy': every program needs an epoch time in every scenario, 'alone' included",
    ),
    (
        json.dumps({**RESULTS, "threads": {"cora": {**WORKLOAD, "train": {"1": TIMING, "2": TIMING}}}}),
        "'threads': every workload must time the policy and the same explicit thread counts",
    ),
]


def run(script: str, *argv: str, tmp_path) -> subprocess.CompletedProcess:
    """``benchmarks/<script>.py argv`` from the repository, in a process of its own, with no dataset mirror."""
    environment = {**os.environ, "GAT_DATA_MIRROR": str(tmp_path / "no-mirror"), "MPLBACKEND": "Agg"}
    command = [sys.executable, f"benchmarks/{script}.py", *argv]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)


def run_here(script: str, *argv: str, capsys, monkeypatch) -> subprocess.CompletedProcess:
    """The same, in this process: no interpreter and torch to start for each case (every case here stops before
    any work, so none changes this process's settings beyond what in-process training tests do)."""
    monkeypatch.setattr(sys, "argv", [f"{script}.py"])  # the name a script's one-line message starts with
    capsys.readouterr()
    try:
        code = run_main(importlib.import_module(f"benchmarks.{script}").main, list(argv))
    except SystemExit as exit_:  # argparse's refusal
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def assert_one_line(done: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and done.stderr.endswith("\n")
    assert message in done.stderr


@pytest.mark.parametrize(("script", "argv", "message"), BAD_FLAGS)
def test_a_bad_flag_is_refused_at_parse_time_in_one_line(script, argv, message, capsys, monkeypatch):
    assert_one_line(run_here(script, *argv, capsys=capsys, monkeypatch=monkeypatch), 2, message)


@pytest.mark.parametrize(("content", "message"), CORRUPT_RESULTS)
def test_report_refuses_a_corrupt_result_in_one_line_naming_it(content, message, tmp_path, capsys, monkeypatch):
    path = tmp_path / "result.json"
    path.write_text(content)
    done = run_here("report", str(path), capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, 1, f"report.py: {path}: {message}")


@pytest.mark.parametrize(("name", "cause"), [("missing.json", "No such file"), ("folder", "Is a directory")])
def test_report_says_which_file_it_cannot_read(name, cause, tmp_path, capsys, monkeypatch):
    (tmp_path / "folder").mkdir()
    path = tmp_path / name
    done = run_here("report", str(path), capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, 1, f"report.py: cannot read {path}: {cause}")


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("tsne", ["--model", "nope.pt"], "nope.pt: no such file"),
        ("pictures", ["--model", "nope.pt", "--cases", "entropy"], "python -m visualization entropy --model nope.pt"),
        ("tricks", ["--data-dir", "/sys/x", "--baseline"], "cannot write /sys/x"),
        ("benchmark", ["--sections", "cora", "--data-dir", "/sys/x"], "cannot write /sys/x"),
        ("benchmark", ["--sections", "cora", "--json", "/sys/x.json"], "cannot write /sys"),
        ("scale_out", ["--json", "/sys/x.json"], "cannot write /sys"),
    ],
)
def test_a_missing_model_or_an_unwritable_folder_is_one_line_before_any_measuring(
    script, argv, message, tmp_path, capsys, monkeypatch
):
    out = ["--json", str(tmp_path / "result.json")] if script == "benchmark" and "--json" not in argv else []
    if script == "pictures":  # its cases run in processes of their own anyway
        done = run(script, *argv, "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    else:
        monkeypatch.setenv("GAT_DATA_MIRROR", str(tmp_path / "no-mirror"))
        done = run_here(script, *argv, *out, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, 1, message)
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize(
    ("script", "argv", "code", "message"),
    [
        ("selection_rules", ["--seeds", "0"], 2, "argument --seeds: must be in [1, 4294967295], got 0"),
        ("selection_rules", ["--epochs", "x"], 2, "argument --epochs: expected an integer >= 1, got 'x'"),
        ("selection_rules", ["--setting", "nope"], 2, "argument --setting: invalid choice: 'nope'"),
        ("selection_rules", ["--setting", "hidden-16", "--against", "hidden-16"], 2, "is the setting itself"),
        ("selection_rules", ["--datasets", "nope"], 1, "unknown dataset 'nope'"),
        ("selection_rules", ["--datasets", "cora,ppi"], 1, "ppi is a dataset of many graphs"),
        ("tuning", ["--settings", "dropout-0.9"], 2, "unknown setting dropout-0.9: choose from paper, dropout-0.5"),
        ("tuning", ["--dev-seeds", "0"], 2, "argument --dev-seeds: must be in [1, 4294967295], got 0"),
        ("tuning", ["--datasets", "cora,ppi"], 1, "ppi is a dataset of many graphs"),
    ],
)
def test_a_training_comparison_refuses_bad_arguments_before_any_run(
    script, argv, code, message, tmp_path, capsys, monkeypatch
):
    done = run_here(script, *argv, "--output", str(tmp_path / "out"), capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, code, message)
    assert not (tmp_path / "out").exists()


def test_an_output_file_that_is_a_folder_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    done = run_here("benchmark", "--sections", "cora", "--json", str(tmp_path), capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, 1, "a folder")


def test_a_saved_selection_run_missing_a_candidate_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    split = {"probabilities": [[1.0]], "labels": [0]}
    scores = {"val_accuracy": 1.0, "test_accuracy": 1.0}
    candidates = {name: scores for name in selection_rules.RUN_CANDIDATES if name != "ema-0.9"}
    record = {"dataset": "synthetic", "seed": 0, "epochs": 1, "config": {}, "candidates": candidates,
              "kept": {"val": split, "test": split}}  # fmt: skip
    (tmp_path / "paper" / "runs").mkdir(parents=True)
    (tmp_path / "paper" / "runs" / "synthetic_seed0.json").write_text(json.dumps(record))
    argv = ["--datasets", "synthetic", "--seeds", "1", "--output", str(tmp_path)]
    done = run_here("selection_rules", *argv, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(done, 1, "synthetic_seed0.json (delete it to redo this run): 'candidates.ema-0.9' is missing")


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not a JSON file"), (json.dumps({"epochs": 3, "test_by_rule": {"paper": 0.8}}), "'test_by_rule.val-loss'")],
)
def test_the_paper_differences_summary_refuses_a_corrupt_run_naming_it(content, message, tmp_path):
    runs = tmp_path / "base" / "runs"
    runs.mkdir(parents=True)
    (runs / "cora_gat_seed0.json").write_text(content)
    with pytest.raises(GATError, match=r"cora_gat_seed0\.json") as error:
        paper_differences.summary(tmp_path, ["base"], ["cora"])
    assert message in str(error.value)


def test_report_shows_every_stored_section(capsys, monkeypatch):
    stored = REPO / "benchmarks" / "results"
    paths = [str(stored / "cpu-2core-busy.json"), str(stored / "cpu-2core-threads.json")]
    done = run_here("report", *paths, capsys=capsys, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr
    assert "| ours | beside 2 busy processes | 17.50 | 1.41× | 75.20× | 2.9 |" in done.stdout
    assert "| cora | 7.5e+05 | 2 | 12.48 | 12.21 | 2 | 0.982 | 3.4 |" in done.stdout


def test_a_reader_that_closes_the_pipe_early_ends_the_report_quietly():
    stored = sorted(str(path) for path in (REPO / "benchmarks" / "results").glob("*.json"))
    command = [sys.executable, "benchmarks/report.py", *stored * 30]  # tables of more than a pipe holds (64 KiB)
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout.readline().startswith("## ")
        process.stdout.close()
        stderr = process.stderr.read()
    assert process.returncode == 1 and stderr == ""


def test_ctrl_c_is_one_line_and_exit_code_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_main(interrupted, []) == 130
    assert capsys.readouterr().err == "interrupted\n"
