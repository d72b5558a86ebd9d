"""What a run leaves behind to look at: TensorBoard event files and ``metrics.json``.

TensorBoard, tab by tab:

- Custom Scalars: train vs val loss on one chart, train vs val accuracy (micro-F1 for PPI) on another, and the
  mean KL divergence of each head's attention from uniform attention over training, one chart per layer.
- Scalars / Time Series: the same curves, one card per tag: ``loss/``, ``accuracy/`` (or ``micro_f1/``),
  ``learning_rate``, ``uniformity/kl_layer<l>_head<h>``; the final numbers under ``summary/`` (run ``<run>/summary``).
- Histograms: ``uniformity/entropy_layer<l>_head<h>``, each node's attention entropy, from the untrained model
  (step 0) on.
- HParams: one row per run (the session lives in ``<run>/summary``): what defines the run (dataset, layer, depth,
  heads, hidden, dropout, lr, weight decay, skip connection, seed, fan-outs and batch size) against what it reached
  (test and validation score, test loss, best epoch, epochs run, training seconds).
- Text: the same numbers as a table, under ``summary``.

TensorBoard writes its event files from a background thread. A write that fails there (a full disk, a folder
removed under a run) kills that thread, and tensorboard raises the same error again in the calling thread at the
writer's next call or flush: :func:`event_faults` turns it into one line naming the folder, and every writer is
flushed before a run is called complete, so a log never goes missing silently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gat.io import ensure_writable, os_error, save_json
from gat.nn.analysis import attention_entropy, kl_from_uniform
from gat.nn.model import Inspection
from gat.training.config import TrainConfig
from gat.training.presets import score_name

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

EPOCH_SCALARS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "accuracy/train": "train_accuracy",
    "accuracy/val": "val_accuracy",
    "micro_f1/train": "train_micro_f1",  # multi-label (PPI) runs report micro-F1 instead of accuracy
    "micro_f1/val": "val_micro_f1",
    "learning_rate": "learning_rate",
}
# The final numbers live in the sub-run "<run>/summary", where the HParams tab reads them as the run's metrics
# (it takes every scalar of a session's run as a metric, so the per-epoch curves stay out of it). The names sort
# so that the five the HParams table shows by default are the scores, the best epoch and the epochs run.
SUMMARY_RUN = "summary"
# Attention tags sort after loss/ and accuracy/: TensorBoard orders tag groups alphabetically.
KL_TAG = "uniformity/kl_layer{layer}_head{head}"
ENTROPY_TAG = "uniformity/entropy_layer{layer}_head{head}"
EVENT_THREAD_MODULE = "tensorboard.summary.writer.event_file_writer"  # where TensorBoard's writer thread is defined


def run_hparams(config: TrainConfig) -> dict[str, bool | float | str]:
    """What defines a run, for TensorBoard's HParams tab: the model and its training, not folders or verbosity."""
    hparams: dict[str, bool | float | str] = {
        "dataset": config.dataset,
        "layer": config.layer,
        "num_layers": config.num_layers,
        "heads": ",".join(map(str, config.heads)),
        "hidden": config.hidden,
        "dropout": config.dropout,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "skip_connection": config.skip_connection,
        "seed": config.seed,
        "fanouts": ",".join(map(str, config.fanouts)) or "full-batch",
    }
    if config.fanouts:
        hparams["batch_size"] = config.batch_size
    return hparams


def summary_metrics(
    dataset: str, metrics: dict[str, float], best_epoch: int, epochs: int, seconds: float
) -> dict[str, float]:
    """The run's final numbers by TensorBoard tag: the restored best model's scores, and how training went."""
    score = score_name(dataset)
    values = {
        f"{SUMMARY_RUN}/{score}_test": metrics.get(f"test_{score}"),
        f"{SUMMARY_RUN}/{score}_val": metrics.get(f"val_{score}"),
        f"{SUMMARY_RUN}/best_epoch": best_epoch,
        f"{SUMMARY_RUN}/epochs": epochs,
        f"{SUMMARY_RUN}/loss_test": metrics.get("test_loss"),
        f"{SUMMARY_RUN}/training_seconds": seconds,
    }
    return {tag: float(value) for tag, value in values.items() if value is not None}


def scalar_layout(dataset: str, num_layers: int) -> dict[str, dict[str, list]]:
    """The Custom Scalars tab: train vs val on one chart, then how far attention is from uniform, per layer
    (``num_layers`` 0: runs that log no attention)."""
    score = score_name(dataset)
    layout = {
        "training (train vs val)": {
            "loss": ["Multiline", ["loss/train", "loss/val"]],
            score.replace("_", "-"): ["Multiline", [f"{score}/train", f"{score}/val"]],
        }
    }
    if num_layers:
        layout["attention vs uniform (mean KL per head, nats; 0 = uniform)"] = {
            f"layer {layer}": ["Multiline", [rf"uniformity/kl_layer{layer}_head\d+$"]] for layer in range(num_layers)
        }
    return layout


class RunLog:
    """Writes ``runs/<run-id>/``: TensorBoard events (optional) and ``metrics.json`` (always).

    ``first_epoch`` > 1 (a resumed run) purges events past it that an interrupted run may have written, so the
    curves show each epoch exactly once. With ``write=False`` (the ranks > 0 of a multi-process run) nothing is
    written at all.
    """

    def __init__(self, run_dir: Path, tensorboard: bool, first_epoch: int = 1, write: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.write = write
        self.writer = None
        if write:
            ensure_writable(self.run_dir)
        if tensorboard and write:
            self.writer = open_events(self.run_dir, purge_step=first_epoch if first_epoch > 1 else None)

    def layout(self, dataset: str, num_layers: int) -> None:
        """The Custom Scalars layout (written once, when a run starts)."""
        if self.writer is not None:
            with event_faults(self.run_dir, self.abandon):
                self.writer.add_custom_scalars(scalar_layout(dataset, num_layers))

    def epoch(self, record: dict[str, float]) -> None:
        if self.writer is not None:
            with event_faults(self.run_dir, self.abandon):
                for tag, key in EPOCH_SCALARS.items():
                    if key in record:
                        self.writer.add_scalar(tag, record[key], record["epoch"])

    def attention(self, epoch: int, inspect: Callable[[], Inspection], num_nodes: int) -> None:
        """Per layer and head: the histogram of the nodes' attention entropies and the mean KL divergence from
        uniform attention (``log d - H``, 0 when the head averages its neighbours like a GCN). ``inspect`` (a
        whole-graph forward pass) runs only when there is a TensorBoard log to write them to."""
        if self.writer is None:
            return
        inspection = inspect()
        for layer, attention in enumerate(inspection.attention):
            entropy = attention_entropy(attention, inspection.edge_index, num_nodes)
            kl = kl_from_uniform(attention, inspection.edge_index, num_nodes).mean(dim=0)
            with event_faults(self.run_dir, self.abandon):
                for head in range(entropy.shape[1]):
                    self.writer.add_histogram(ENTROPY_TAG.format(layer=layer, head=head), entropy[:, head], epoch)
                    self.writer.add_scalar(KL_TAG.format(layer=layer, head=head), kl[head].item(), epoch)

    def final(
        self, config: TrainConfig, metrics: dict[str, float], best_epoch: int, epochs: int, seconds: float
    ) -> None:
        """The HParams session (the run's hyper-parameters and final numbers) in ``<run>/summary``, and the same
        numbers as a table in the Text tab."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        hparams = run_hparams(config)
        final = summary_metrics(config.dataset, metrics, best_epoch, epochs, seconds)
        # The session's start and end, but no experiment summary: TensorBoard then builds the experiment from the
        # sessions and marks the hyper-parameters that differ between runs, which its table shows first (given an
        # experiment summary, it lists them alphabetically and shows the first five).
        _, session_start, session_end = hparams_summaries(hparams, final)
        with writing_events(self.run_dir / SUMMARY_RUN) as writer:
            writer.file_writer.add_summary(session_start)
            for tag, value in final.items():
                writer.add_scalar(tag, value, epochs)
            writer.file_writer.add_summary(session_end)
        rows = [*(f"| {name} | {value} |" for name, value in hparams.items()),
                *(f"| **{tag.split('/')[1]}** | {value:.6g} |" for tag, value in final.items())]  # fmt: skip
        with event_faults(self.run_dir, self.abandon):
            self.writer.add_text("summary", "\n".join(["| | |", "|---|---|", *rows]), epochs)

    def metrics(self, summary: dict[str, Any]) -> Path:
        path = self.run_dir / "metrics.json"
        return save_json(summary, path) if self.write else path

    def close(self) -> None:
        """Write out every pending event and close the log; a write that failed is raised here, as one line."""
        if self.writer is not None:
            with event_faults(self.run_dir, self.abandon):
                self.writer.flush()  # waits for the writer thread and raises what failed in it (close() would not)
            self.abandon()

    def abandon(self) -> None:
        """Close the log, ignoring a write that fails on the way (after a failure, whose error is the news)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with suppress(OSError):
                writer.close()


def open_events(log_dir: Path, purge_step: int | None = None) -> SummaryWriter:
    """A TensorBoard writer for ``log_dir`` whose background thread's faults reach the caller as one line."""
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

    _report_event_faults_in_the_calling_thread()
    with event_faults(log_dir):
        return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


@contextmanager
def writing_events(log_dir: Path) -> Iterator[SummaryWriter]:
    """:func:`open_events` for one block: flushed at its end, so a failed write is raised there, then closed."""
    writer = open_events(log_dir)
    try:
        with event_faults(log_dir):
            yield writer
            writer.flush()
    finally:
        with suppress(OSError):
            writer.close()


@contextmanager
def event_faults(log_dir: Path, on_fault: Callable[[], None] | None = None) -> Iterator[None]:
    """Raise an ``OSError`` of TensorBoard's writer (its thread's, raised again here) as one-line `GATError`
    ``cannot write <log_dir>: <cause>``, after calling ``on_fault``."""
    try:
        yield
    except OSError as error:
        if on_fault is not None:
            on_fault()
        raise os_error(log_dir, error) from None


class _QuietEventThreads:
    """A ``threading.excepthook`` that leaves out the ``OSError`` of TensorBoard's writer thread: tensorboard raises
    it again in the calling thread, where :func:`event_faults` reports it in one line; the thread's own report
    would be a traceback. Every other thread's exception goes to the hook that was there before."""

    def __init__(self, previous: Callable[[threading.ExceptHookArgs], Any]) -> None:
        self.previous = previous

    def __call__(self, args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, OSError) and type(args.thread).__module__ == EVENT_THREAD_MODULE:
            return
        self.previous(args)


def _report_event_faults_in_the_calling_thread() -> None:
    if not isinstance(threading.excepthook, _QuietEventThreads):
        threading.excepthook = _QuietEventThreads(threading.excepthook)
