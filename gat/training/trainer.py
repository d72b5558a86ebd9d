"""`train`: one entry point for every kind of run, and `load_model` for a trained one."""

from __future__ import annotations

import os
from pathlib import Path

from gat.data.registry import get_dataset
from gat.errors import GATError
from gat.io import ensure_writable
from gat.nn.model import GAT
from gat.training import checkpoints
from gat.training.config import TrainConfig
from gat.training.fullbatch import train_full_batch
from gat.training.inductive import train_inductive
from gat.training.loop import TrainResult
from gat.training.minibatch import train_minibatch
from gat.training.steps import build_model, resolve_device

# Flags that describe where and how loudly a run happens, not what it computes: a resumed run takes them from
# the new command line; everything else comes from the checkpoint so the run continues exactly.
ENVIRONMENT_FIELDS = (
    "device",
    "data_dir",
    "data_mirror",
    "runs_dir",
    "models_dir",
    "quiet",
    "console_log_freq",
    "distributed",
    "cuda_graphs",
    "threads",
)
# What a resumed run may change besides the environment: how long it trains and what it reports. Any other
# setting given explicitly must equal the checkpoint's (the run continues as it started).
MAY_CHANGE_ON_RESUME = (*ENVIRONMENT_FIELDS, "epochs", "checkpoint_freq", "entropy_log_freq", "tensorboard", "test")


def train(config: TrainConfig, resume: str | os.PathLike | None = None, override: tuple[str, ...] = ()) -> TrainResult:
    """Train a GAT as ``config`` says, or continue the run saved in checkpoint ``resume``.

    A resumed run keeps its stored configuration so it continues exactly, except the environment fields
    (device, folders, verbosity) and the fields named in ``override`` (the ones the user gave explicitly),
    which come from ``config``. An ``override`` field outside `MAY_CHANGE_ON_RESUME` (e.g. ``--dataset`` or
    ``--lr``) whose value differs from the checkpoint's is refused with both values.

    The output folders are checked for writing before anything else happens.

    Writes ``runs/<run-id>/`` (TensorBoard, metrics.json), ``models/checkpoints/<run-id>.pt`` every
    ``checkpoint_freq`` epochs and at the end, and ``models/binaries/<run-id>.pt`` with the best model.

    Raises:
        TrainingInterrupted: on SIGINT/SIGTERM, after saving a checkpoint to resume from.
        GATError: on bad input (data, checkpoint) or a non-finite loss (the last good checkpoint is kept).
    """
    saved = checkpoints.load(resume, "checkpoint") if resume is not None else None
    if saved is not None:
        stored = TrainConfig.from_dict(saved["config"], str(resume)).to_dict()
        current = config.to_dict()
        contradicted = [key for key in override if key not in MAY_CHANGE_ON_RESUME and current[key] != stored[key]]
        if contradicted:
            raise GATError(
                f"{resume} continues a run with "
                + ", ".join(f"{_flag(key)} {_value(stored[key])} (not {_value(current[key])})" for key in contradicted)
                + ": drop those flags to resume it, or start a new run without --resume"
            )
        config = TrainConfig.from_dict({**stored, **{k: current[k] for k in (*ENVIRONMENT_FIELDS, *override)}})
        refuse_finished(saved, config, resume)
    check_outputs(config)
    device = resolve_device(config.device)
    if get_dataset(config.dataset).task == "inductive":  # many graphs: gat/training/inductive.py
        return train_inductive(config, device, saved, str(resume))
    if config.fanouts:  # sampled mini-batches, on one process or several: gat/training/minibatch.py
        return train_minibatch(config, device, saved, str(resume))
    return train_full_batch(config, device, saved, str(resume))


def check_outputs(config: TrainConfig) -> None:
    """Fail fast: every folder the run will write into must be writable now, not at the first checkpoint."""
    models = Path(config.models_dir)
    for folder in (models / "checkpoints", models / "binaries", Path(config.runs_dir)):
        ensure_writable(folder)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _value(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def refuse_finished(saved: dict, config: TrainConfig, source: str | os.PathLike) -> None:
    """Raise GATError when the checkpoint's run has nothing left to train: it stopped early (another epoch would
    stop it again at once), or it ran all of ``config.epochs`` (more needs a larger ``--epochs``)."""
    epoch, waited = saved["epoch"], saved["early_stopping"]["epochs_without_improvement"]
    if waited >= config.patience:
        raise GATError(
            f"{source}: run {saved['run_id']} already finished: it stopped early at epoch {epoch}, after {waited} "
            "epochs without improvement; its best model is in models/binaries (train a new run to go further)"
        )
    if epoch >= config.epochs:
        raise GATError(
            f"{source}: run {saved['run_id']} already finished its {epoch} epochs: pass --epochs greater than "
            f"{epoch} to train it further"
        )


def load_model(path: str | os.PathLike) -> tuple[GAT, dict]:
    """Rebuild the trained model stored in a binary (or checkpoint) file; returns ``(model, file contents)``."""
    data = checkpoints.load(path, "binary")
    config = TrainConfig.from_dict(data["config"], str(path))
    state = data["model"] if data["kind"] == "binary" else data["best_model"]
    first, last = "layers.0.linear.weight", f"layers.{config.num_layers - 1}.linear.weight"
    if any(key not in state or state[key].dim() != 2 for key in (first, last)):
        raise GATError(f"{path}: the weights do not fit its config ({config.num_layers} layers): no 2-d {first}/{last}")
    num_features = state[first].shape[1]
    num_classes = state[last].shape[0] // config.heads[-1]
    model = build_model(config, num_features, num_classes)
    checkpoints.load_state(model, state, path)
    return model.eval(), data
