"""Mini-batch training on one process and, through torchrun, on two (DistributedDataParallel over gloo)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gat.errors import GATError
from gat.training.config import TrainConfig
from gat.training.trainer import load_model, train
from tests.helpers import REPO


def minibatch_config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(
        dataset="synthetic",
        data_dir=str(tmp_path / "data"),
        runs_dir=str(tmp_path / "runs"),
        models_dir=str(tmp_path / "models"),
        fanouts=(4, 4),
        batch_size=16,
        epochs=12,
        device="cpu",
        tensorboard=False,
        quiet=True,
    )
    values.update(overrides)
    return TrainConfig(**values)


def torchrun(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 training_script.py --distributed ...``, every output under tmp_path."""
    folders = [f"--{name}-dir={tmp_path / name}" for name in ("data", "runs", "models")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(REPO / "training_script.py"), "--distributed", "--dataset=synthetic", "--device=cpu"]
    command += ["--no-tensorboard", *folders]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*command, *flags], capture_output=True, text=True, timeout=240, env=environment, cwd=tmp_path
    )


def single_run_files(tmp_path: Path) -> tuple[Path, Path, dict]:
    """The checkpoint, binary and metrics.json of the one run under tmp_path (fails if there are more)."""
    (checkpoint,) = (tmp_path / "models" / "checkpoints").iterdir()
    (binary,) = (tmp_path / "models" / "binaries").iterdir()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert [path.name for path in run_dir.iterdir()] == ["metrics.json"]  # --no-tensorboard: nothing else
    assert checkpoint.name == binary.name == f"{run_dir.name}.pt"
    return checkpoint, binary, json.loads((run_dir / "metrics.json").read_text())


def test_minibatch_training_learns_and_resumes_exactly(tmp_path):
    result = train(minibatch_config(tmp_path / "full", epochs=8, checkpoint_freq=3))
    assert result.metrics["test_accuracy"] > 0.8
    assert len(result.history) == 8
    _, binary, metrics = single_run_files(tmp_path / "full")
    assert metrics["status"] == "completed" and metrics["config"]["fanouts"] == [4, 4]
    model, _ = load_model(binary)
    assert all(torch.equal(tensor, result.model.state_dict()[name]) for name, tensor in model.state_dict().items())

    half = train(minibatch_config(tmp_path / "split", epochs=4, checkpoint_freq=3))
    resumed = train(minibatch_config(tmp_path / "split", epochs=8), resume=half.checkpoint_path, override=("epochs",))
    strip = [{k: v for k, v in record.items() if k != "seconds"} for record in result.history]
    assert [{k: v for k, v in record.items() if k != "seconds"} for record in resumed.history] == strip


def test_two_processes_converge_and_only_rank0_writes(tmp_path):
    completed = torchrun(tmp_path, "--fanouts=4,4", "--batch-size=8", "--epochs=15")
    assert completed.returncode == 0, completed.stderr[-3000:]
    checkpoint, binary, metrics = single_run_files(tmp_path)
    assert metrics["status"] == "completed" and len(metrics["history"]) == 15
    assert metrics["final"]["test_accuracy"] > 0.8
    assert metrics["config"]["distributed"] and metrics["config"]["fanouts"] == [4, 4]
    model, contents = load_model(binary)
    assert contents["metrics"] == pytest.approx(metrics["final"])
    assert sum(line.startswith("run ") for line in completed.stdout.splitlines()) == 1  # rank 1 prints nothing


def test_two_processes_take_the_same_steps_as_one_with_twice_the_batch(tmp_path):
    # Fan-outs above every in-degree and no dropout: nothing random is left but the shared seed order, so
    # 2 x 8 seeds per step must follow the loss curve of 1 x 16 up to float rounding of the gradient average.
    flags = dict(fanouts=(100, 100), dropout=0.0, epochs=5)
    completed = torchrun(tmp_path / "two", "--fanouts=100,100", "--dropout=0", "--epochs=5", "--batch-size=8")
    assert completed.returncode == 0, completed.stderr[-3000:]
    _, _, two = single_run_files(tmp_path / "two")
    one = train(minibatch_config(tmp_path / "one", batch_size=16, **flags))
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert [r[key] for r in two["history"]] == pytest.approx([r[key] for r in one.history], rel=1e-4), key
    other = train(minibatch_config(tmp_path / "other", batch_size=8, **{**flags, "epochs": 2}))  # the check can fail
    assert [r["train_loss"] for r in other.history] != pytest.approx(
        [r["train_loss"] for r in one.history[:2]], rel=1e-4
    )


def test_distributed_without_torchrun_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(GATError, match="launch with: torchrun --nproc_per_node=2") as error:
        train(minibatch_config(tmp_path, distributed=True))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(fanouts=(10,)), "fanouts needs one count per layer"),
        (dict(fanouts=(10, 0)), "every fan-out must be in [1, 1000000]"),
        (dict(fanouts=(10, 10), batch_size=0), "batch-size must be in [1, 2147483647]"),
        (dict(distributed=True), "give --fanouts too"),
    ],
)
def test_invalid_minibatch_settings_are_refused(bad, message):
    with pytest.raises(GATError, match=re.escape(message)):
        TrainConfig(**bad)


def test_ddp_gets_every_gradient_in_its_parameters_memory_layout(tmp_path):
    # DDP copies each gradient into a bucket laid out like its parameter and warns ("Grad strides do not match
    # bucket view strides") on every rank when a backward returns another layout, e.g. [5, 10, 1] for a [1, 1, 5]
    # attention vector, whose strides of size-1 dimensions contiguous() does not fix.
    completed = torchrun(tmp_path, "--fanouts=4,4", "--batch-size=8", "--epochs=1", "--skip-connection")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "stride" not in completed.stderr.lower(), completed.stderr[-3000:]
