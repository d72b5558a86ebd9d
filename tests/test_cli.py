"""training_script.py end to end, in a subprocess, as a user runs it."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "training_script.py"


def folders(tmp_path: Path) -> list[str]:
    return [
        "--data-dir",
        str(tmp_path / "data"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--models-dir",
        str(tmp_path / "models"),
    ]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def only_metrics(tmp_path: Path) -> dict:
    (path,) = (tmp_path / "runs").glob("*/metrics.json")
    return json.loads(path.read_text())


def test_synthetic_run_prints_header_progress_and_summary(tmp_path):
    result = run_cli("--dataset", "synthetic", "--epochs", "30", "--console-log-freq", "10", *folders(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("run synthetic_")
    assert any(line.startswith("model  GAT 8x8 -> 1x5") for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 3  # not a terminal: a log line every 10 epochs
    assert lines[-1].startswith("best epoch ") and "test acc" in lines[-1] and "ms/epoch" in lines[-1]
    metrics = only_metrics(tmp_path)
    assert metrics["status"] == "completed" and len(metrics["history"]) == 30
    assert (tmp_path / "models" / "binaries" / f"{metrics['run_id']}.pt").is_file()
    assert (tmp_path / "models" / "checkpoints" / f"{metrics['run_id']}.pt").is_file()


def test_cora_through_the_cli(tmp_path, planetoid_mirror):
    result = run_cli("--epochs", "5", "--quiet", *folders(tmp_path), env={"GAT_DATA_MIRROR": str(planetoid_mirror)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # --quiet
    metrics = only_metrics(tmp_path)
    assert metrics["config"]["dataset"] == "cora" and len(metrics["history"]) == 5
    assert 0.0 <= metrics["final"]["test_accuracy"] <= 1.0


def test_pytorch_gat_style_aliases(tmp_path):
    result = run_cli(
        "--dataset",
        "synthetic",
        "--num_of_epochs",
        "4",
        "--patience_period",
        "3",
        "--should_test",
        "--enable_tensorboard",
        "--force_cpu",
        "--should_visualize",
        "--quiet",
        *folders(tmp_path),
        "--figures-dir",
        str(tmp_path / "figures"),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "figures" / "synthetic_degrees.png").is_file()
    config = only_metrics(tmp_path)["config"]
    assert (config["epochs"], config["patience"], config["test"], config["device"]) == (4, 3, True, "cpu")
    assert list((tmp_path / "runs").glob("*/events.out.tfevents.*"))


def test_no_tensorboard_and_no_test(tmp_path):
    result = run_cli(
        "--dataset", "synthetic", "--epochs", "3", "--no-tensorboard", "--no-test", "--quiet", *folders(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "runs").glob("*/events.out.tfevents.*"))
    assert "test_accuracy" not in only_metrics(tmp_path)["final"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--epochs", "-1"], "epochs must be >= 0"),
        (["--lr", "0"], "lr must be > 0"),
        (["--lr", "-0.1"], "lr must be > 0"),
        (["--dropout", "1.0"], "dropout must be in [0, 1)"),
        (["--dropout", "-0.2"], "dropout must be in [0, 1)"),
        (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["--heads", "8,8,1"], "heads needs one count per layer"),
        (["--heads", "8,x"], "expected comma-separated integers"),
        (["--num-layers", "3", "--heads", "8,1"], "heads needs one count per layer"),
        (["--patience", "0"], "patience must be >= 1"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--seeds", "0"], "seeds must be >= 1"),
    ],
)
def test_invalid_flags_are_refused_in_one_line(flags, message):
    result = run_cli(*flags)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_offline_is_one_clear_line(tmp_path):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    result = run_cli("--dataset", "citeseer", "--data-mirror", str(empty_mirror), *folders(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "ind.citeseer.x" in result.stderr and "GAT_DATA_MIRROR" in result.stderr


def test_corrupt_checkpoint_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    result = run_cli("--resume", str(bad), *folders(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and str(bad) in result.stderr and "Traceback" not in result.stderr


# 150 epochs that never stop early or checkpoint on their own, one log line an epoch (to see training under way)
SIGNALLED_RUN = ["--dataset", "synthetic", "--epochs", "150", "--patience", "1000", "--console-log-freq", "1",
                 "--checkpoint-freq", "1000", "--no-tensorboard"]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """metrics.json of the run the signal tests interrupt, trained without interruption (once for both signals)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*SIGNALLED_RUN, "--quiet", *folders(folder))
    assert result.returncode == 0, result.stderr
    return only_metrics(folder)


@pytest.mark.parametrize("sent,exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(
    tmp_path, sent, exit_code, uninterrupted
):
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *SIGNALLED_RUN, *folders(tmp_path / "split")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:  # wait until training is under way
        if line.startswith("epoch    20"):
            break
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr
    resume_hint = next(line for line in stderr.splitlines() if "Resume with:" in line)
    checkpoint = resume_hint.split("--resume ")[1].strip()
    interrupted = only_metrics(tmp_path / "split")
    assert interrupted["status"] == f"interrupted by {signal.Signals(sent).name}"
    assert 20 <= len(interrupted["history"]) < 150

    resumed = run_cli("--resume", checkpoint, "--quiet", *folders(tmp_path / "split"))
    assert resumed.returncode == 0, resumed.stderr

    def without_timing(metrics: dict) -> list[dict]:
        return [{k: v for k, v in record.items() if k != "seconds"} for record in metrics["history"]]

    split = only_metrics(tmp_path / "split")
    assert without_timing(split) == without_timing(uninterrupted)
    assert split["final"] == uninterrupted["final"] and split["best_epoch"] == uninterrupted["best_epoch"]


def test_help_lists_every_flag_group():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in [
        "--dataset",
        "--epochs",
        "--patience",
        "--lr",
        "--weight-decay",
        "--hidden",
        "--heads",
        "--num-layers",
        "--dropout",
        "--skip-connection",
        "--seed",
        "--device",
        "--data-dir",
        "--data-mirror",
        "--runs-dir",
        "--models-dir",
        "--checkpoint-freq",
        "--console-log-freq",
        "--resume",
        "--test",
        "--no-tensorboard",
        "--quiet",
        "--should_test",
        "--should_visualize",
        "--enable_tensorboard",
        "--num_of_epochs",
        "--patience_period",
        "--force_cpu",
    ]:
        assert flag in result.stdout, flag


def test_seeds_prints_mean_and_std(tmp_path):
    result = run_cli("--dataset", "synthetic", "--epochs", "5", "--seeds", "2", *folders(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:2]] == ["seed 0", "seed 1"]
    assert "test accuracy over 2 seeds:" in result.stdout and "±" in result.stdout


def test_pytorch_gat_flags_take_both_spellings_and_run_name_names_the_run(tmp_path):
    from gat.cli import build_parser

    underscores = ["--num_of_epochs", "7", "--patience_period", "3", "--should_test", "--enable_tensorboard",
                   "--should_visualize", "--force_cpu", "--weight_decay", "0.01", "--dataset_name", "CITESEER",
                   "--console_log_freq", "5", "--checkpoint_freq", "9"]  # fmt: skip
    dashes = [flag.replace("_", "-") if flag.startswith("--") else flag for flag in underscores]
    assert vars(build_parser().parse_args(underscores)) == vars(build_parser().parse_args(dashes))
    parsed = build_parser().parse_args(dashes)
    assert (parsed.epochs, parsed.patience, parsed.test, parsed.tensorboard, parsed.should_visualize) == (
        7, 3, True, True, True
    )  # fmt: skip
    assert (parsed.device, parsed.weight_decay, parsed.dataset) == ("cpu", 0.01, "citeseer")
    assert (parsed.console_log_freq, parsed.checkpoint_freq) == (5, 9)
    assert build_parser().parse_args(["--visualize-before"]).should_visualize
    # pytorch-GAT's --batch_size is graphs per PPI batch; --batch-size is seed nodes of a sampled step
    assert build_parser().parse_args(["--batch_size", "4"]).graphs_per_batch == 4
    for flags, message in [
        (["--batch_size", "4"], "--graphs-per-batch is for datasets of many graphs (ppi), not cora"),
        (["--dataset", "ppi", "--batch-size", "2"], "give --fanouts too (whole PPI graphs per step: --graphs-per"),
    ]:
        refused = run_cli(*flags)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    result = run_cli("--dataset", "synthetic", "--epochs", "1", "--run-name", "baseline", "--quiet", *folders(tmp_path))
    assert result.returncode == 0, result.stderr
    assert only_metrics(tmp_path)["run_id"].startswith("synthetic_baseline_")
    refused = run_cli("--run-name", "a/b")
    assert refused.returncode == 2 and "run-name may use letters" in refused.stderr


def test_resuming_a_finished_run_is_one_line(tmp_path):
    assert run_cli("--dataset", "synthetic", "--epochs", "2", "--quiet", *folders(tmp_path)).returncode == 0
    (checkpoint,) = (tmp_path / "models" / "checkpoints").glob("*.pt")
    result = run_cli("--resume", str(checkpoint), "--quiet", *folders(tmp_path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "already finished its 2 epochs: pass --epochs greater than 2" in result.stderr
