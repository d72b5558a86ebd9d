"""Every boundary of the project answers a bad input or a fault with one line, never a traceback or a wrong result.

The entry points (`gat.cli`, `visualization.cli`, `gat.reproduce`) are called in-process, as ``main(argv)``, over
one table of cases, one or more per class of failure: file-system faults, numbers out of range, files that parse
but are not what they claim, diverged models, ambiguous intent. Each case checks the exit code, that stderr is
exactly one line naming the problem, that nothing was printed before the refusal, and that every file that
existed before is byte-identical afterwards. Real faults where the machine allows them: a 64 KiB tmpfs is a full
disk, a read-only tmpfs a read-only file system (both need root; CI runs as root). A few cases also go through the
real command lines in subprocesses.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import gat.cli
import gat.reproduce
import visualization.cli
from gat.data.download import resolve_mirror
from gat.data.planetoid import load_planetoid
from gat.data.ppi import load_ppi
from gat.errors import GATError
from gat.io import STALE_PART_SECONDS, ensure_writable, save_json, save_torch
from gat.training.allocator import memory_errors_in_one_line
from gat.training.config import TrainConfig
from gat.training.steps import available_memory
from gat.validate import Array, DictOf, ListOf, Number, Optional, check
from tests.helpers import REPO, without_map_worker

ENTRY_POINTS = {"train": gat.cli.main, "draw": visualization.cli.main, "reproduce": gat.reproduce.main}


# --- the world each case runs in ---------------------------------------------------------------------------------


@dataclass
class World:
    """A temporary folder with a trained model (binary and checkpoint) and a plain file where folders are expected."""

    root: Path
    binary: Path
    checkpoint: Path

    @property
    def a_file(self) -> Path:
        path = self.root / "a-file"
        path.write_text("not a folder\n")
        return path

    def train(self, *flags: str) -> list[str]:
        """A quick, quiet training command line writing into this world (flags given later win)."""
        return ["--dataset", "synthetic", "--epochs", "1", "--quiet", "--no-tensorboard", *self.folders(), *flags]

    def folders(self) -> list[str]:
        return ["--data-dir", str(self.root / "data"), "--runs-dir", str(self.root / "runs"),
                "--models-dir", str(self.root / "models")]  # fmt: skip

    def draw(self, command: str, model: Path | None = None, *flags: str) -> list[str]:
        out = ["--out", str(self.root / "figures")]
        return [command, "--model", str(model or self.binary), "--data-dir", str(self.root / "data"), *out, *flags]

    def edited(self, source: Path, edit: Callable[[dict], None]) -> Path:
        """A copy of the torch file ``source`` with ``edit`` applied to its contents: a valid container."""
        data = torch.load(source, weights_only=True)
        edit(data)
        path = self.root / f"edited-{source.parent.name}.pt"
        torch.save(data, path)
        return path

    def draw_edited(self, command: str, edit: Callable[[dict], None]) -> list[str]:
        """Draw from a copy of the binary changed by ``edit``."""
        return self.draw(command, self.edited(self.binary, edit))

    def resume_edited(self, edit: Callable[[dict], None], *flags: str) -> list[str]:
        """Resume from a copy of the checkpoint changed by ``edit``."""
        return self.train("--resume", str(self.edited(self.checkpoint, edit)), *flags)

    def result(self, record: object) -> list[str]:
        """A saved result of the one run of the returned reproduce command line."""
        runs = self.root / "results" / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "synthetic_gat_seed0.json").write_text(json.dumps(record))
        return ["--datasets", "synthetic", "--layers", "gat", "--seeds", "1", "--epochs", "1",
                "--output", str(self.root / "results"), "--data-dir", str(self.root / "data")]  # fmt: skip


@pytest.fixture
def world(synthetic_binary: Path, tmp_path: Path) -> World:
    models = tmp_path / "trained"
    for kind in ("binaries", "checkpoints"):
        (models / kind).mkdir(parents=True)
        shutil.copy(synthetic_binary.parents[1] / kind / synthetic_binary.name, models / kind)
    return World(tmp_path, models / "binaries" / synthetic_binary.name, models / "checkpoints" / synthetic_binary.name)


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def run_main(entry: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``main(argv)`` of an entry point in-process: (exit code, stdout, stderr). An exception escaping ``main``
    (what a user would see as a traceback) fails the test by propagating."""
    try:
        code = ENTRY_POINTS[entry](argv)
    except SystemExit as exit_:  # argparse refusing a flag
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the cases: (entry point, argv from the world, exit code, what the one line says) -----------------------------

NAN = float("nan")


def _set(*keys_and_value: object) -> Callable[[dict], None]:
    """An edit setting ``data[a][b] = value`` for ``_set(a, b, value)``."""
    *keys, value = keys_and_value

    def edit(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return edit


def _nan_weights(data: dict) -> None:
    data["model"]["layers.0.linear.weight"][0, 0] = NAN


RESULT = {"dataset": "synthetic", "layer": "gat", "seed": 0, "test_score": 0.5, "val_score": 0.5, "score": "accuracy",
          "epochs": 1, "best_epoch": 1, "seconds": 1.0, "run_id": "x", "config": {}}  # fmt: skip
CASES = {
    # 1. file-system faults: one line naming the path and the cause, before any work
    "models-dir-is-a-file": ("train", lambda w: w.train("--models-dir", str(w.a_file)), 1, "is a file, not a folder"),
    "runs-dir-is-a-file": ("train", lambda w: w.train("--runs-dir", str(w.a_file / "runs")), 1, "is a file, not a"),
    "data-dir-is-a-file": ("train", lambda w: w.train("--dataset", "cora", "--data-dir", str(w.a_file)), 1,
                           "a-file is a file, not a folder"),
    "figures-dir-is-a-file": ("train", lambda w: w.train("--should_visualize", "--figures-dir", str(w.a_file)), 1,
                              "is a file, not a folder"),
    "draw-out-is-a-file": ("draw", lambda w: ["dataset", "--dataset", "synthetic", "--out", str(w.a_file)], 1,
                           "is a file, not a folder"),
    "reproduce-output-is-a-file": ("reproduce", lambda w: ["--datasets", "synthetic", "--output", str(w.a_file)], 1,
                                   "is a file, not a folder"),
    "model-file-missing": ("draw", lambda w: w.draw("attention", w.root / "nothing.pt"), 1, "no such file"),
    # 2. numbers without bounds: refused at parse time, with the range
    "top-k-0": ("draw", lambda w: w.draw("attention", None, "--top-k", "0"), 2, "must be >= 1, got 0"),
    "top-k-negative": ("draw", lambda w: w.draw("attention", None, "--top-k", "-3"), 2, "must be >= 1, got -3"),
    "top-k-beyond-graph": ("draw", lambda w: w.draw("attention", None, "--top-k", "100000"), 1,
                           "the top 100000 nodes by degree were asked for, but synthetic has"),
    "node-negative": ("draw", lambda w: w.draw("attention", None, "--node", "-1"), 2, "must be >= 0, got -1"),
    "node-beyond-graph": ("draw", lambda w: w.draw("attention", None, "--node", "99999"), 1,
                          "node 99999 does not exist"),
    "max-nodes-0": ("draw", lambda w: w.draw("embeddings", None, "--max-nodes", "0"), 2, "must be >= 10, got 0"),
    "entropy-layer-9": ("draw", lambda w: w.draw("entropy", None, "--layer", "9"), 1, "layer 9 does not exist"),
    "seed-negative": ("train", lambda w: w.train("--seed", "-1"), 2, "seed must be in [0, 4294967295]"),
    "lr-infinite": ("train", lambda w: w.train("--lr", "inf"), 2, "lr must be > 0 (and finite)"),
    "seeds-past-the-last-seed": ("train", lambda w: w.train("--seed", "4294967295", "--seeds", "2"), 2,
                                 "seeds must be <= 1"),
    "hidden-500000": ("train", lambda w: w.train("--hidden", "500000"), 1, "this model needs at least"),
    "hidden-1e9": ("train", lambda w: w.train("--hidden", "1000000000"), 2, "hidden must be in [1, 1000000]"),
    "layers-100000": ("train", lambda w: w.train("--num-layers", "100000"), 2, "num-layers must be in [1, 64]"),
    "threads-100000": ("train", lambda w: w.train("--threads", "100000"), 2, "--threads: must be in [1, 1024]"),
    "reproduce-seeds-4e9": ("reproduce", lambda w: ["--seeds", "4294967295"], 2, "--seeds: must be in [1, 10000]"),
    # 3. files that parse but are not what they claim
    "binary-config-wrong-type": ("draw", lambda w: w.draw_edited("attention", _set("config", "hidden", "eight")), 1,
                                 "config: 'hidden' must be an integer, got str"),
    "binary-config-out-of-range": ("draw", lambda w: w.draw_edited("attention", _set("config", "heads", [8, 0])), 1,
                                   "config: every head count must be in [1, 1000000]"),
    "binary-weights-not-tensors": ("draw", lambda w: w.draw_edited("attention", _set("model", "layers.0.bias", "0")),
                                   1, "'model.layers.0.bias' must be an array, got str"),
    "binary-without-metrics": ("draw", lambda w: w.draw_edited("attention", lambda d: d.pop("metrics")), 1,
                               "malformed binary: 'metrics' is missing"),
    "checkpoint-config-wrong-type": ("train", lambda w: w.resume_edited(_set("config", "dropout", "high")), 1,
                                     "'dropout' must be a number, got str"),
    "checkpoint-lr-text": ("train", lambda w: w.resume_edited(lambda d: d["optimizer"]["param_groups"][0].update(
                           lr="x")), 1, "'optimizer.param_groups[0].lr' must be a number, got str"),
    "checkpoint-rng-cut": ("train", lambda w: w.resume_edited(lambda d: d["rng"].update(numpy=d["rng"]["numpy"][:5]),
                           "--epochs", "2"), 1, "'rng.numpy' holds 5 values, not the 624 of a state"),
    "checkpoint-unknown-rule": ("train", lambda w: w.resume_edited(_set("early_stopping", "select", "bogus")), 1,
                                "'early_stopping.select' is 'bogus', not a selection rule"),
    "checkpoint-history-junk": ("train", lambda w: w.resume_edited(_set("history", [{"x": 1}])), 1,
                                "'history[0].epoch' is missing"),
    "checkpoint-best-loss-nan": ("train", lambda w: w.resume_edited(_set("early_stopping", "best_val_loss", NAN)), 1,
                                 "'early_stopping.best_val_loss' must be in [0, inf], got nan"),
    "checkpoint-epoch-negative": ("train", lambda w: w.resume_edited(_set("epoch", -4)), 1,
                                  "'epoch' must be in [0, inf], got -4"),
    "result-not-a-mapping": ("reproduce", lambda w: w.result([1, 2, 3]), 1, "the file must be a mapping, got list"),
    "result-without-score": ("reproduce", lambda w: w.result({"dataset": "synthetic"}), 1, "'layer' is missing"),
    "result-score-wrong-type": ("reproduce", lambda w: w.result({"dataset": "synthetic", "layer": "gat", "seed": 0,
                                "test_score": "high"}), 1, "'test_score' must be a number, got str"),
    "result-entropy-infinite": ("reproduce", lambda w: w.result({**RESULT, "entropy": [
                                {"layer": 0, "entropy": math.inf, "uniform": 1.0, "kl": 0.0}]}), 1,
                                "'entropy[0].entropy' must be finite, got inf"),
    "result-a-rule-missing": ("reproduce", lambda w: w.result({**RESULT, "test_by_rule": {"paper": 0.5}}), 1,
                              "'test_by_rule.val-loss' is missing"),
    # 4. models that diverged
    "attention-of-nan-weights": ("draw", lambda w: w.draw_edited("attention", _nan_weights), 1,
                                 "the model's weights are not finite"),
    "tsne-of-nan-weights": ("draw", lambda w: w.draw_edited("embeddings", _nan_weights), 1,
                            "the model's weights are not finite"),
    # 5. ambiguous intent
    "resume-other-dataset": ("train", lambda w: w.train("--resume", str(w.checkpoint), "--dataset", "cora"), 1,
                             "--dataset synthetic (not cora)"),
    "resume-other-lr": ("train", lambda w: w.train("--resume", str(w.checkpoint), "--lr", "0.1"), 1,
                        "--lr 0.005 (not 0.1)"),
    "resume-many-seeds": ("train", lambda w: w.train("--resume", str(w.checkpoint), "--seeds", "2"), 2,
                          "cannot be combined with --seeds"),
    "malformed-mirror-url": ("train", lambda w: w.train("--dataset", "cora", "--data-mirror", "http://[::1"), 1,
                             "data mirror 'http://[::1' is not a valid URL"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_every_bad_input_is_one_line_and_changes_no_file(name, world, capsys, monkeypatch):
    monkeypatch.delenv("GAT_DATA_MIRROR", raising=False)  # offline: nothing may be fetched
    entry, argv_of, expected_code, message = CASES[name]
    argv = argv_of(world)
    before = snapshot(world.root)
    code, out, err = run_main(entry, argv, capsys)
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert out == "", "nothing is printed before a refusal"
    assert {path: snapshot(world.root).get(path) for path in before} == before, "an earlier file changed"
    assert not list(world.root.rglob("*.part")), "a temporary file was left behind"


def test_resume_may_change_epochs_and_the_outputs(world, capsys):
    code, _, err = run_main(
        "train", world.train("--resume", str(world.checkpoint), "--epochs", "2", "--tensorboard", "--no-test"), capsys
    )
    assert code == 0, err
    (metrics,) = (world.root / "runs").glob("*/metrics.json")
    summary = json.loads(metrics.read_text())
    assert summary["status"] == "completed" and summary["config"]["epochs"] == 2 and len(summary["history"]) == 2


# --- real faults: a full disk and a read-only file system -------------------------------------------------------


def _mount_tmpfs(folder: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full or read-only disk) needs root")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system: folders and small files fit, a checkpoint (about 0.5 MB) does not."""
    folder = tmp_path / "full"
    _mount_tmpfs(folder, "size=64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    _mount_tmpfs(folder, "ro,size=64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_during_a_checkpoint_fails_the_run_in_one_line(world, full_disk, capsys):
    code, _, err = run_main("train", world.train("--models-dir", str(full_disk / "models")), capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "No space left on device" in err and str(full_disk / "models" / "checkpoints") in err
    assert not list(full_disk.rglob("*.part"))
    (metrics,) = (world.root / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["status"].startswith("failed: cannot write")


def test_a_full_disk_keeps_the_previous_file_and_no_temporary(full_disk):
    save_json({"version": 1}, full_disk / "result.json")
    before = (full_disk / "result.json").read_bytes()
    with pytest.raises(GATError, match=r"cannot write .*result.json: No space left on device"):
        save_json(list(range(100_000)), full_disk / "result.json")
    with pytest.raises(GATError, match=r"cannot write .*model.pt: No space left on device"):  # torch hides ENOSPC
        save_torch({"weights": torch.zeros(100_000)}, full_disk / "model.pt")
    assert (full_disk / "result.json").read_bytes() == before
    assert sorted(path.name for path in full_disk.iterdir()) == ["result.json"]


def test_a_read_only_models_folder_is_refused_before_training(world, read_only, capsys):
    code, _, err = run_main("train", world.train("--models-dir", str(read_only / "models")), capsys)
    assert code == 1 and err.count("\n") == 1
    assert f"cannot write {read_only / 'models'}" in err and "Read-only file system" in err
    assert not (world.root / "runs").exists() or not list((world.root / "runs").rglob("metrics.json"))  # no epoch ran


def _only_run(runs: Path) -> tuple[Path, dict]:
    """The one run folder under ``runs`` and its metrics.json."""
    (run_dir,) = runs.iterdir()
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def _assert_checkpoint_intact(models: Path) -> None:
    """The run's last checkpoint before the fault loads and validates (it was written by an earlier epoch)."""
    from gat.training import checkpoints

    (checkpoint,) = (models / "checkpoints").glob("*.pt")
    assert checkpoints.load(checkpoint, "checkpoint")["epoch"] >= 1


TENSORBOARD_RUN = ("--tensorboard", "--epochs", "30", "--patience", "100", "--entropy-log-freq", "1",
                   "--checkpoint-freq", "1")  # fmt: skip


def test_tensorboard_writer_thread_failing_ends_the_run_in_one_line(world, capsys, monkeypatch):
    """TensorBoard writes events from a background thread. Simulated at the lowest level the machine does not
    need root for: the event file's append (tensorboard's local file system, called from that thread) raises
    ENOSPC from its 100th record on (epoch 4 or so). The real full disk is the slow test below."""
    from tensorboard.compat.tensorflow_stub.io import gfile

    records = {"written": 0}
    original = gfile.LocalFileSystem.append

    def append(self, filename, file_content, binary_mode=False):
        records["written"] += 1
        if records["written"] >= 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, filename, file_content, binary_mode)

    monkeypatch.setattr(gfile.LocalFileSystem, "append", append)
    code, out, err = run_main("train", world.train(*TENSORBOARD_RUN), capsys)
    run_dir, metrics = _only_run(world.root / "runs")
    assert code == 1 and out == "" and "Traceback" not in err, err
    assert err == f"error: cannot write {run_dir}: No space left on device\n"
    assert metrics["status"] == f"failed: cannot write {run_dir}: No space left on device"
    assert 0 < metrics["epochs"] < 30, "the fault ended the run where it happened"
    _assert_checkpoint_intact(world.root / "models")


@pytest.mark.slow
def test_a_full_disk_under_tensorboard_through_training_script(world, full_disk):
    """A real full disk for the TensorBoard log (a 16 KiB tmpfs; the checkpoints are elsewhere): one line naming
    the run folder, no traceback (from the writer thread either), and the checkpoints written before intact.
    metrics.json lives on the same full disk here, so only the console can say why."""
    subprocess.run(["mount", "-o", "remount,size=16k", str(full_disk)], check=True)
    runs = full_disk / "runs"
    result = run_command(str(REPO / "training_script.py"), *world.train("--runs-dir", str(runs), *TENSORBOARD_RUN),
                         cwd=world.root)  # fmt: skip
    (run_dir,) = runs.iterdir()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"error: cannot write {run_dir}: No space left on device\n"
    _assert_checkpoint_intact(world.root / "models")


# --- out of memory: one line with what to try ---------------------------------------------------------------


@pytest.mark.parametrize(
    "error,message",
    [
        (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                      "tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"),
         "out of CPU memory (asked for 4.0 GiB): "),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                                "79.19 GiB of which 3.50 GiB is free."), "out of GPU memory (asked for 20.00 GiB): "),
        (MemoryError("Unable to allocate 8.00 GiB for an array with shape (1073741824,) and data type float64"),
         "out of memory (asked for 8.00 GiB): "),
        (MemoryError(), "out of memory: "),
    ],
    ids=["torch-cpu-allocator", "torch-cuda", "numpy", "python"],
)  # fmt: skip
def test_every_allocator_failure_is_one_line_with_what_to_try(error, message):
    with pytest.raises(GATError) as converted, memory_errors_in_one_line("try less"):
        raise error
    assert str(converted.value) == message + "try less"


def test_other_runtime_errors_are_not_called_out_of_memory():
    with pytest.raises(RuntimeError, match="shape mismatch"), memory_errors_in_one_line("try less"):
        raise RuntimeError("shape mismatch")


def test_the_pictures_running_out_of_memory_are_one_line(world, capsys, monkeypatch):
    """A real allocation failure from torch's CPU allocator (2**60 bytes, which no machine grants) where the
    t-SNE would allocate its map (made in this process: the worker is made to fail)."""
    import openTSNE

    without_map_worker(monkeypatch)
    monkeypatch.setattr(openTSNE.TSNE, "fit", lambda self, features: torch.empty(2**60, dtype=torch.uint8))
    code, out, err = run_main("draw", world.draw("embeddings"), capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    assert (
        err == "error: out of CPU memory (asked for 1073741824.0 GiB): try a smaller --max-nodes or fewer --threads\n"
    )


def test_reproduce_running_out_of_memory_is_one_line(world, capsys, monkeypatch):
    """A real allocation failure from torch's CPU allocator (2**60 bytes) in a run's training step: the error line
    (reproduce adds how to resume) and no traceback."""
    from gat.training.loop import Run

    monkeypatch.setattr(Run, "train_epoch", lambda self, epoch: torch.empty(2**60, dtype=torch.uint8))
    argv = ["--datasets", "synthetic", "--layers", "gat", "--seeds", "1", "--epochs", "1",
            "--output", str(world.root / "results"), "--data-dir", str(world.root / "data")]  # fmt: skip
    code, out, err = run_main("reproduce", argv, capsys)
    assert code == 1 and "Traceback" not in err, err
    # reproduce's progress bar is on stderr too, and its error is followed by how to resume the finished runs
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: out of CPU memory (asked for 1073741824.0 GiB): ")


# --- the writer and the validation as units --------------------------------------------------------------------


def _dead_pid() -> int:
    writer = subprocess.Popen([sys.executable, "-c", ""])
    writer.wait()  # exited and reaped: its pid names no process
    return writer.pid


def test_stale_part_files_of_dead_processes_on_this_host_are_removed(tmp_path):
    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".metrics.json.{host}.{_dead_pid()}.0a1b2c3d.part"
    alive = tmp_path / f".metrics.json.{host}.{os.getpid()}.0a1b2c3d.part"  # a live writer's: keep it
    foreign = tmp_path / ".notes.part"  # not ours (no host and pid): keep it
    for path in (dead, alive, foreign):
        path.write_bytes(b"half a file")
    save_json({"ok": True}, tmp_path / "metrics.json")
    assert not dead.exists() and alive.exists() and foreign.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([alive.name, foreign.name, "metrics.json"])


def test_part_files_of_other_hosts_are_kept_until_they_are_a_day_old(tmp_path):
    """Another machine writing into a shared folder: its pid means nothing here (a dead pid here may be its live
    writer), so only age removes its files; the same goes for a pid of this host that a live process reused."""
    pid = _dead_pid()
    fresh = tmp_path / f".model.pt.other-machine_example_org.{pid}.0a1b2c3d.part"
    old = tmp_path / f".model.pt.other-machine_example_org.{pid}.4e5f6a7b.part"
    reused = tmp_path / f".model.pt.{socket.gethostname().replace('.', '_')}.{os.getpid()}.8c9d0e1f.part"
    for path in (fresh, old, reused):
        path.write_bytes(b"half a file")
    two_days_ago = time.time() - 2 * STALE_PART_SECONDS
    for path in (old, reused):
        os.utime(path, (two_days_ago, two_days_ago))
    save_torch({"weights": torch.zeros(3)}, tmp_path / "model.pt")
    assert fresh.exists() and not old.exists() and not reused.exists()


def test_ensure_writable_names_the_file_in_the_way(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(GATError, match=r"cannot write .*plain/deeper/still: .*plain is a file, not a folder"):
        ensure_writable(tmp_path / "plain" / "deeper" / "still")
    assert ensure_writable(tmp_path / "new" / "folder").is_dir()


SCHEMA = {
    "name": str,
    "count": Number(int, 0, 10),
    "scores": ListOf(float),
    "weights": DictOf(Array(("float32",), ndim=1, finite=True)),
    "note": Optional(str),
    "nested": {"flag": bool},
}
GOOD = {"name": "x", "count": 3, "scores": [0.5, 1], "weights": {"w": torch.zeros(2)}, "nested": {"flag": True}}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"name": None}, "'name' must be a string, got NoneType"),
        ({"count": True}, "'count' must be an integer, got bool"),  # a bool is not a number here
        ({"count": 11}, "'count' must be in [0, 10], got 11"),
        ({"scores": [0.5, "x"]}, "'scores[1]' must be a number, got str"),
        ({"weights": {"w": torch.zeros(2, dtype=torch.float64)}}, "'weights.w' must have dtype float32, got float64"),
        ({"weights": {"w": torch.zeros(2, 2)}}, "'weights.w' must have 1 dimension(s), got shape [2, 2]"),
        ({"weights": {"w": torch.tensor([0.0, math.inf])}}, "'weights.w' holds nan or inf"),
        ({"note": 3}, "'note' must be a string, got int"),
        ({"nested": {}}, "'nested.flag' is missing"),
    ],
)
def test_schema_check_names_the_key_and_what_is_wrong(change, message):
    check(GOOD, SCHEMA, "good.json")  # the unchanged data passes
    with pytest.raises(GATError) as error:
        check({**GOOD, **change}, SCHEMA, "bad.json")
    assert str(error.value) == f"bad.json: {message}"


def test_a_saved_config_is_checked_field_by_field():
    assert TrainConfig.from_dict({"hidden": 16, "unknown_key": 1}).hidden == 16  # unknown keys are ignored
    with pytest.raises(GATError, match=r"^run.pt: config: 'heads\[0\]' must be an integer, got str$"):
        TrainConfig.from_dict({"heads": ["8", 1]}, "run.pt")
    with pytest.raises(GATError, match=r"^run.pt: config: unknown dataset 'imagenet'"):
        TrainConfig.from_dict({"dataset": "imagenet"}, "run.pt")


@pytest.mark.parametrize("mirror", ["http://[::1", "http://host:port/", "ftp://example.org/data", "https:///x"])
def test_a_malformed_mirror_url_is_refused_in_one_line(mirror):
    with pytest.raises(GATError, match="data mirror .*"):
        resolve_mirror(mirror)


# --- caches and raw files that parse but are wrong ------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda arrays: {**arrays, "masks": arrays["masks"].astype(np.int64)},  # 0/1 ints would index nodes 0 and 1
        lambda arrays: {**arrays, "y": arrays["y"].astype(np.float32)},
        lambda arrays: {**arrays, "x_data": np.full_like(arrays["x_data"], np.nan)},
    ],
    ids=["int-masks", "float-labels", "nan-features"],
)
def test_a_wrong_cache_is_rebuilt_not_used(corrupt, planetoid_folder, tmp_path):
    load_planetoid("cora", tmp_path, mirror=planetoid_folder)
    cache = tmp_path / "cora" / "processed" / "cora.npz"
    with np.load(cache) as saved:
        arrays = {key: saved[key] for key in saved.files}
    np.savez_compressed(cache, **corrupt(arrays))
    graph = load_planetoid("cora", tmp_path, mirror=planetoid_folder)
    assert graph.train_mask.dtype == torch.bool and graph.y.dtype == torch.int64
    assert bool(torch.isfinite(graph.x.values()).all())
    assert [int(mask.sum()) for mask in (graph.train_mask, graph.val_mask, graph.test_mask)] == [140, 500, 1000]
    with np.load(cache) as rebuilt:
        assert rebuilt["masks"].dtype == bool and rebuilt["y"].dtype == np.int64


def _ppi_archive(folder: Path, train_nodes: int = 3, train_json: bytes | None = None) -> Path:
    """A minimal ppi.zip: one graph of ``train_nodes`` (train) or 3 nodes (valid, test) per split."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "ppi.zip", "w") as archive:
        for split in ("train", "valid", "test"):
            nodes = train_nodes if split == "train" else 3
            graph = {"nodes": [{"id": i} for i in range(nodes)], "links": [{"source": 0, "target": 1}][: nodes // 2]}
            text = train_json if split == "train" and train_json else json.dumps(graph).encode()
            archive.writestr(f"{split}_graph.json", text)
            for name, array in (("feats", np.ones((nodes, 5))), ("labels", np.zeros((nodes, 2))),
                                ("graph_id", np.zeros(nodes, dtype=np.int64))):  # fmt: skip
                buffer = io.BytesIO()
                np.save(buffer, array)
                archive.writestr(f"{split}_{name}.npy", buffer.getvalue())
    return folder


@pytest.mark.filterwarnings("ignore:ppi.zip has no pinned SHA-256:UserWarning")
@pytest.mark.parametrize(
    "archive,message",
    [
        ({"train_json": b"[" * 100_000 + b"]" * 100_000}, "train_graph.json is not networkx node-link JSON (nested"),
        ({"train_nodes": 0}, "the train split has no nodes"),
    ],
    ids=["deeply-nested-json", "split-without-graphs"],
)
def test_ppi_archives_that_parse_but_are_wrong(archive, message, tmp_path):
    mirror = _ppi_archive(tmp_path / "mirror", **archive)
    with pytest.raises(GATError, match=message.replace("(", r"\(")) as error:
        load_ppi(tmp_path / "data", mirror=mirror)
    assert "\n" not in str(error.value)


# --- the same through the real command lines ------------------------------------------------------------------


def run_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=environment
    )


@pytest.mark.slow
def test_a_full_disk_through_training_script(world, full_disk):
    result = run_command(str(REPO / "training_script.py"), *world.train("--models-dir", str(full_disk)), cwd=world.root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr
    assert not list(full_disk.rglob("*.part"))


@pytest.mark.slow
def test_a_diverged_model_through_python_m_visualization(world):
    nan_binary = world.edited(world.binary, _nan_weights)
    result = run_command("-m", "visualization", *world.draw("embeddings", nan_binary), cwd=world.root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "the model's weights are not finite" in result.stderr


@pytest.mark.slow
def test_a_malformed_result_through_python_m_gat_reproduce(world):
    argv = world.result({"dataset": "synthetic", "layer": "gat"})
    before = snapshot(world.root)
    result = run_command("-m", "gat.reproduce", *argv, cwd=world.root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "'seed' is missing" in result.stderr
    assert snapshot(world.root) == before


@pytest.mark.slow
def test_running_out_of_memory_while_training_through_training_script(world):
    """A real allocator failure: the process may map 1.5 GiB (RLIMIT_AS; a small run needs about 0.7), and a
    --hidden 16384 step needs 1 GiB more than the model, though the estimate (about 2 GiB) fits a machine's
    free memory and so is not refused at parse time."""
    if available_memory(torch.device("cpu")) < 4 * 2**30:
        pytest.skip("needs 4 GiB of free memory for the estimate to let the run start")

    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, resource.RLIM_INFINITY))

    argv = world.train("--hidden", "16384", "--epochs", "2", "--threads", "1")
    result = subprocess.run([sys.executable, str(REPO / "training_script.py"), *argv], capture_output=True, text=True,
                            timeout=300, cwd=world.root, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=limit_address_space)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: out of CPU memory (asked for ") and "--hidden" in line and "--threads" in line
    _, metrics = _only_run(world.root / "runs")
    assert metrics["status"] == "failed: " + line.removeprefix("error: ")
