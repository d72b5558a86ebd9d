"""The epoch loop every trainer shares: a `Run` (state, early stopping, checkpoints, files) and `run_epochs`
(log, checkpoint, stop early or on a signal, then keep the best model).

The trainers build on it: `gat.training.fullbatch` (one graph, one step per epoch), `gat.training.minibatch` (sampled
neighbourhoods, one or many processes) and `gat.training.inductive` (many graphs: PPI). `gat.training.trainer.train`
picks one from the config."""

from __future__ import annotations

import copy
import functools
import math
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gat.data.graph import Graph
from gat.errors import GATError
from gat.nn.model import GAT, Inspection
from gat.threads import ThreadPolicy, thread_policy
from gat.training import checkpoints
from gat.training.allocator import memory_errors_in_one_line
from gat.training.config import TrainConfig
from gat.training.presets import score_name
from gat.training.progress import Progress
from gat.training.selection import EarlyStopping
from gat.training.steps import (
    build_model,
    build_optimizer,
    check_memory,
)
from gat.training.tracking import RunLog


@dataclass
class TrainResult:
    """What :func:`train` returns: identifiers, final metrics (of the restored best model) and file paths."""

    run_id: str
    best_epoch: int
    epochs: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    training_seconds: float
    run_dir: Path
    checkpoint_path: Path
    binary_path: Path
    model: GAT = field(repr=False)
    # per selection rule: its epoch, validation scores there and, with test_every_rule, test metrics
    selections: dict[str, dict[str, float]] = field(default_factory=dict)


class TrainingInterrupted(GATError):
    """Raised after SIGINT/SIGTERM once the state is checkpointed; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def new_run_id(dataset: str, name: str = "") -> str:
    """``<dataset>[_<name>]_<date>-<time>_<random>``: sortable, named by ``--run-name`` where given, and two runs
    started in the same second still differ."""
    prefix = f"{dataset}_{name}" if name else dataset
    return f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"


class Run:
    """One training run: its state (what a checkpoint saves and restores), one epoch, and the files it writes.

    The base every trainer builds on. A subclass says how an epoch learns and how the model is scored:

    - ``train_step(epoch)`` takes the epoch's gradient step(s) and returns the training loss and score;
    - ``evaluate(splits)`` returns ``{split}_loss`` and ``{split}_<score>`` for each split.

    Everything else is shared: seeding, the model and optimiser from the config, the paper's early stopping and
    the kept best weights, resuming from a checkpoint, checkpoints, the binary and ``metrics.json``. Pass the run
    to `run_epochs` to train it. `gat.training.fullbatch.FullBatchRun` is the simplest subclass.
    """

    def __init__(
        self, config: TrainConfig, graph: Graph, device: torch.device, saved: dict | None, source: str
    ) -> None:
        self.config, self.graph = config, graph
        _seed_everything(config.seed)
        check_memory(config, graph, device)
        self.model = build_model(config, graph.num_features, graph.num_classes).to(device)
        self.optimizer = build_optimizer(config, self.model)
        self.stopper = EarlyStopping(config.patience, config.select)
        self.history: list[dict[str, float]] = []
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.test_at_choice: dict[str, dict[str, float]] = {}  # rule -> test metrics of the epoch it chooses
        self.run_id, self.last_epoch, self.seconds_before = new_run_id(config.dataset, config.run_name), 0, 0.0
        if saved is not None:
            checkpoints.load_state(self.model, saved["model"], source)
            checkpoints.load_state(self.optimizer, saved["optimizer"], source)
            self.stopper, self.history = EarlyStopping(**saved["early_stopping"]), saved["history"]
            self.best_state, self.run_id, self.last_epoch = saved["best_model"], saved["run_id"], saved["epoch"]
            self.seconds_before = saved["training_seconds"]
            self.test_at_choice = saved.get("test_at_choice", {})  # absent from older checkpoints
            checkpoints.set_rng_state(saved["rng"], source)  # last: building the model above consumed random numbers
        self.started, self.stopped = time.perf_counter(), None

    # Only one process of a multi-process run writes files (see gat.training.minibatch); a run of its own always does.
    writes_files = True
    # Entropy histograms need the whole graph's attention at once (mini-batch runs never hold it).
    logs_attention_entropy = True
    # The CPUs this process plans its threads for (None: all it may use) and whether $OMP_NUM_THREADS is the
    # user's choice (in a torchrun rank torchrun sets it): see gat.threads.
    cpus: int | None = None
    honours_omp_num_threads = True

    @property
    def work_size(self) -> int:
        """Edge-feature values one training step computes, from which `gat.threads` chooses the thread count:
        the edges of a step (here the whole graph's: full-batch steps and evaluations cover it) times the values
        each edge carries through the layers (heads x features, summed over the layers)."""
        return self.edges_per_step * attention_width(self.config, self.graph.num_classes)

    @property
    def edges_per_step(self) -> int:
        return self.graph.num_edges

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.config.models_dir) / "checkpoints" / f"{self.run_id}.pt"

    @property
    def binary_path(self) -> Path:
        return Path(self.config.models_dir) / "binaries" / f"{self.run_id}.pt"

    @property
    def seconds(self) -> float:
        """Time in the training loop so far, including the sessions before a resume."""
        return self.seconds_before + (self.stopped or time.perf_counter()) - self.started

    def stop_clock(self) -> None:
        self.stopped = time.perf_counter()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One step plus validation; updates early stopping and the best model. The record has a nan/inf
        ``train_loss`` (and the weights are untouched) if the loss was not finite."""
        started = time.perf_counter()
        train_loss, train_score = self.train_step(epoch)
        if not math.isfinite(train_loss):
            return {"epoch": epoch, "train_loss": train_loss}
        score = score_name(self.config.dataset)  # accuracy, or micro-F1 for multi-label PPI
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            f"train_{score}": train_score,
            **self.evaluate(("val",)),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
        }
        record["seconds"] = time.perf_counter() - started
        self.history.append(record)
        self.last_epoch = epoch
        chosen = self.stopper.update(epoch, record["val_loss"], record[f"val_{score}"])
        if self.config.select in chosen:
            self.best_state = copy.deepcopy(self.model.state_dict())
        if self.config.test_every_rule:
            self._test_choices(chosen - {"last"})  # the last epoch's test score is taken once, in finish()
        return record

    def _test_choices(self, rules: set[str]) -> None:
        """Record the current model's test metrics as those of every rule in ``rules`` (never used to choose)."""
        if rules:
            metrics = self.evaluate(("test",))
            self.test_at_choice.update({rule: metrics for rule in rules})

    def selections(self) -> dict[str, dict[str, float]]:
        """Per selection rule: the epoch it chooses, that epoch's validation scores and (with ``test_every_rule``)
        its test metrics."""
        score = score_name(self.config.dataset)
        return {
            rule: {"epoch": int(epoch), "val_loss": loss, f"val_{score}": value, **self.test_at_choice.get(rule, {})}
            for rule, (epoch, loss, value) in self.stopper.choices.items()
        }

    def train_step(self, epoch: int) -> tuple[float, float]:
        """The epoch's gradient step(s); returns the training loss and score (a nan loss: no step was taken)."""
        raise NotImplementedError

    def evaluate(self, splits: tuple[str, ...]) -> dict[str, float]:
        """``{split}_loss`` and ``{split}_<score>`` of the current model for each of ``splits``."""
        raise NotImplementedError

    def agreed_stop(self, stop_signal: int | None) -> int | None:
        """The stop request (a signal number) this run acts on: a single process acts on its own."""
        return stop_signal

    def save_checkpoint(self) -> None:
        if not self.writes_files:
            return
        checkpoints.save(
            "checkpoint",
            {
                "run_id": self.run_id,
                "config": self.config.to_dict(),
                "epoch": self.last_epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "best_model": self.best_state,
                "early_stopping": asdict(self.stopper),
                "rng": checkpoints.rng_state(),
                "history": self.history,
                "training_seconds": self.seconds,
                "test_at_choice": self.test_at_choice,
            },
            self.checkpoint_path,
        )

    def finish(self) -> dict[str, float]:
        """Restore the best model, evaluate it, save it as the run's binary; returns its metrics."""
        if self.config.test_every_rule:
            self._test_choices({"last"})
        self.model.load_state_dict(self.best_state)
        splits = ("train", "val", "test") if self.config.test else ("train", "val")
        metrics = self.evaluate(splits)
        if not self.writes_files:
            return metrics
        checkpoints.save(
            "binary",
            {
                "run_id": self.run_id,
                "config": self.config.to_dict(),
                "model": self.best_state,
                "dataset": self.graph.name,
                "num_features": self.graph.num_features,
                "num_classes": self.graph.num_classes,
                "best_epoch": self.stopper.best_epoch,
                "metrics": metrics,
                "environment": checkpoints.environment(),
            },
            self.binary_path,
        )
        return metrics

    def summary(self, status: str, metrics: dict[str, float] | None = None) -> dict:
        """The contents of metrics.json."""
        return {
            "run_id": self.run_id,
            "status": status,
            "config": self.config.to_dict(),
            "best_epoch": self.stopper.best_epoch,
            "selections": self.selections(),
            "epochs": len(self.history),
            "training_seconds": self.seconds,
            "threads": torch.get_num_threads(),  # CPU threads per operation (gat.threads chose them, or the user)
            "final": metrics or {},
            "history": self.history,
            "checkpoint": str(self.checkpoint_path),
            "environment": checkpoints.environment(),
        }


def run_epochs(run: Run, device: torch.device) -> TrainResult:
    """The epoch loop of every trainer: log, checkpoint, stop early or on a signal, then save the best model."""
    config, graph = run.config, run.graph
    log_dir = Path(config.runs_dir) / run.run_id
    log = RunLog(log_dir, config.tensorboard, first_epoch=run.last_epoch + 1, write=run.writes_files)
    progress = Progress(config, graph, run.model, device, run.run_id, resumed_from=run.last_epoch)
    try:
        # the thread policy's count for the epochs and the final evaluation, then the caller's again; a torchrun
        # rank (run.cpus set) keeps its share of the CPUs instead of following the load
        threads = thread_policy(
            run.work_size, config.threads, run.cpus, honour_omp=run.honours_omp_num_threads, adapt=run.cpus is None
        )
        with threads as policy, memory_errors_in_one_line():  # out of memory: one line, and metrics.json says so
            metrics = _train_and_finish(run, log, progress, policy)
    except TrainingInterrupted:
        raise
    except GATError as error:  # a full disk, a vanished folder...: say why in metrics.json too, if it can be written
        log.abandon()  # pending events may fail to write too: the error on hand is the one to report
        _record_failure(log, run, error)
        raise
    finally:
        progress.close()
        log.close()
    result = TrainResult(
        run_id=run.run_id,
        best_epoch=run.stopper.best_epoch,
        epochs=len(run.history),
        metrics=metrics,
        history=run.history,
        training_seconds=run.seconds,
        run_dir=log.run_dir,
        checkpoint_path=run.checkpoint_path,
        binary_path=run.binary_path,
        model=run.model,
        selections=run.selections(),
    )
    progress.summary(metrics, result.best_epoch, result.epochs, result.training_seconds)
    return result


def _record_failure(log: RunLog, run: Run, error: GATError) -> None:
    try:
        log.metrics(run.summary(f"failed: {error}"))
    except GATError:
        pass  # the folder itself is what failed: the error on the console is all there can be


def _train_and_finish(run: Run, log: RunLog, progress: Progress, threads: ThreadPolicy) -> dict[str, float]:
    """The epochs, the final checkpoint, the binary and metrics.json; returns the best model's metrics."""
    config, graph = run.config, run.graph
    inspect = functools.partial(inspect_model, run.model, graph)
    if run.last_epoch == 0:  # a new run: the chart layout, and the untrained model's attention as step 0
        log.layout(config.dataset, config.num_layers if run.logs_attention_entropy else 0)
        if run.logs_attention_entropy:
            log.attention(0, inspect, graph.num_nodes)
    with _signals_requesting_stop() as stop:
        for epoch in range(run.last_epoch + 1, config.epochs + 1):
            threads.update()  # fewer threads while other programs keep the CPUs busy (gat.threads)
            record = run.train_epoch(epoch)
            if not math.isfinite(record["train_loss"]):  # run_epochs records the failure in metrics.json
                last_good = run.checkpoint_path if run.checkpoint_path.exists() else "none written yet"
                raise GATError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; stopped without saving this "
                    f"state (last good checkpoint: {last_good}). Lower --lr or check the input features"
                )
            log.epoch(record)
            if epoch % config.entropy_log_freq == 0 and run.logs_attention_entropy:
                log.attention(epoch, inspect, graph.num_nodes)
            progress.epoch(record, run.stopper.best_epoch)
            stop_signal = run.agreed_stop(stop.signal)
            if epoch % config.checkpoint_freq == 0 or stop_signal is not None:
                run.save_checkpoint()
            if stop_signal is not None:
                log.metrics(run.summary(f"interrupted by {signal.Signals(stop_signal).name}"))
                raise TrainingInterrupted(
                    f"interrupted at epoch {epoch}; checkpoint saved to {run.checkpoint_path}. Resume with: "
                    f"python training_script.py --resume {run.checkpoint_path}",
                    exit_code=128 + stop_signal,
                )
            if run.stopper.should_stop:
                break
    run.stop_clock()
    run.save_checkpoint()  # the final state, so a finished run can be continued with more epochs
    metrics = run.finish()
    log.final(config, metrics, run.stopper.best_epoch, len(run.history), run.seconds)
    log.close()  # every event written, or the run failed: "completed" only once the whole log is on disk
    log.metrics(run.summary("completed", metrics))
    return metrics


def attention_width(config: TrainConfig, num_classes: int) -> int:
    """Values per edge summed over the layers: heads x features of every hidden layer, heads x classes of the last
    (the paper's Cora model: 8 x 8 + 1 x 7 = 71)."""
    hidden = sum(heads * config.hidden for heads in config.heads[:-1])
    return hidden + config.heads[-1] * num_classes


@torch.no_grad()
def inspect_model(model: GAT, graph: Graph) -> Inspection:
    """Every layer's output and attention in eval mode (no dropout): what the trained model actually computes."""
    return model.eval().inspect(graph.x, graph.edge_index)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _StopRequest:
    signal: int | None = None


@contextmanager
def _signals_requesting_stop() -> Iterator[_StopRequest]:
    """Turn the first SIGINT/SIGTERM into a request to stop after the current epoch (so the checkpoint is of a
    consistent state); a second SIGINT interrupts at once. Outside the main thread signals are left alone."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signal = signum
        print(
            f"\n{signal.Signals(signum).name} received: finishing this epoch and saving a checkpoint...",
            file=sys.stderr,
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
