"""`train`: one entry point for every kind of run, and `load_model` for a trained one."""

from __future__ import annotations

import os

from gat.data.registry import get_dataset
from gat.nn.model import GAT
from gat.train import checkpoints
from gat.train.config import TrainConfig
from gat.train.fullbatch import train_full_batch
from gat.train.inductive import train_inductive
from gat.train.loop import TrainResult
from gat.train.minibatch import train_minibatch
from gat.train.steps import build_model, resolve_device

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


def train(config: TrainConfig, resume: str | os.PathLike | None = None, override: tuple[str, ...] = ()) -> TrainResult:
    """Train a GAT as ``config`` says, or continue the run saved in checkpoint ``resume``.

    A resumed run keeps its stored configuration so it continues exactly, except the environment fields
    (device, folders, verbosity) and the fields named in ``override`` (e.g. ``("epochs",)`` to train longer),
    which come from ``config``.

    Writes ``runs/<run-id>/`` (TensorBoard, metrics.json), ``models/checkpoints/<run-id>.pt`` every
    ``checkpoint_freq`` epochs and at the end, and ``models/binaries/<run-id>.pt`` with the best model.

    Raises:
        TrainingInterrupted: on SIGINT/SIGTERM, after saving a checkpoint to resume from.
        GATError: on bad input (data, checkpoint) or a non-finite loss (the last good checkpoint is kept).
    """
    saved = checkpoints.load(resume, "checkpoint") if resume is not None else None
    if saved is not None:
        current = config.to_dict()
        config = TrainConfig.from_dict({**saved["config"], **{k: current[k] for k in (*ENVIRONMENT_FIELDS, *override)}})
    device = resolve_device(config.device)
    if get_dataset(config.dataset).task == "inductive":  # many graphs: gat/train/inductive.py
        return train_inductive(config, device, saved, str(resume))
    if config.fanouts:  # sampled mini-batches, on one process or several: gat/train/minibatch.py
        return train_minibatch(config, device, saved, str(resume))
    return train_full_batch(config, device, saved, str(resume))


def load_model(path: str | os.PathLike) -> tuple[GAT, dict]:
    """Rebuild the trained model stored in a binary (or checkpoint) file; returns ``(model, file contents)``."""
    data = checkpoints.load(path, "binary")
    config = TrainConfig.from_dict(data["config"])
    state = data["model"] if data["kind"] == "binary" else data["best_model"]
    num_features = state["layers.0.linear.weight"].shape[1]
    num_classes = state[f"layers.{config.num_layers - 1}.linear.weight"].shape[0] // config.heads[-1]
    model = build_model(config, num_features, num_classes)
    checkpoints.load_state(model, state, path)
    return model.eval(), data
