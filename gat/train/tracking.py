"""What a run leaves behind to look at: TensorBoard event files and ``metrics.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gat.io import ensure_writable, save_json
from gat.nn.analysis import attention_entropy
from gat.nn.model import Inspection

EPOCH_SCALARS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "accuracy/train": "train_accuracy",
    "accuracy/val": "val_accuracy",
    "micro_f1/train": "train_micro_f1",  # multi-label (PPI) runs report micro-F1 instead of accuracy
    "micro_f1/val": "val_micro_f1",
    "learning_rate": "learning_rate",
}
FINAL_SCALARS = {
    "accuracy/test": "test_accuracy",
    "loss/test": "test_loss",
    "accuracy/best_val": "val_accuracy",
    "micro_f1/test": "test_micro_f1",
    "micro_f1/best_val": "val_micro_f1",
}


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
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=first_epoch if first_epoch > 1 else None)

    def epoch(self, record: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, key in EPOCH_SCALARS.items():
                if key in record:
                    self.writer.add_scalar(tag, record[key], record["epoch"])

    def attention_entropy(self, epoch: int, inspect: Callable[[], Inspection], num_nodes: int) -> None:
        """One histogram per layer and head of the nodes' attention entropies. ``inspect`` (a whole-graph forward
        pass) runs only when there is a TensorBoard log to write them to."""
        if self.writer is None:
            return
        inspection = inspect()
        for layer, attention in enumerate(inspection.attention):
            entropy = attention_entropy(attention, inspection.edge_index, num_nodes)
            for head in range(entropy.shape[1]):
                self.writer.add_histogram(f"attention_entropy/layer{layer}_head{head}", entropy[:, head], epoch)

    def final(self, hyperparameters: dict[str, Any], metrics: dict[str, float], epoch: int) -> None:
        """Test metrics as scalars, and the config with the final metrics for TensorBoard's HParams tab."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        final = {tag: metrics[key] for tag, key in FINAL_SCALARS.items() if metrics.get(key) is not None}
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, epoch)
        # Written into this run's own event file (add_hparams would open a sub-run), so one folder = one run.
        plain = {key: _hparam_value(value) for key, value in hyperparameters.items()}
        for summary in hparams(plain, final):
            self.writer.file_writer.add_summary(summary)

    def metrics(self, summary: dict[str, Any]) -> Path:
        path = self.run_dir / "metrics.json"
        return save_json(summary, path) if self.write else path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _hparam_value(value: Any) -> bool | int | float | str:
    # TensorBoard's HParams tab takes only scalars and strings: lists (heads) and None become text.
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        return value.item()
    return str(value)
