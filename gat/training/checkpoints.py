"""Saving and loading checkpoints (resumable training state) and binaries (final trained models).

Both are ``torch.save`` files holding only tensors and plain Python data, so they load with
``torch.load(weights_only=True)``: opening a file from someone else cannot run code. Writes are atomic.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gat.errors import GATError
from gat.io import save_torch
from gat.training.config import SELECTION_RULES
from gat.validate import Array, DictOf, ListOf, Number, Optional, check

FORMAT = "gat"
FORMAT_VERSION = 1
# What each kind must hold before anything uses it (gat.validate); the config's fields are checked by
# TrainConfig.from_dict, the weights' shapes by load_state.
WEIGHTS = DictOf(Array(("float32", "float64", "float16", "bfloat16")))  # a model's state dict
# An Adam parameter group, as the optimizer reads it when training goes on.
ADAM_GROUP = {
    "params": ListOf(Number(int, 0)),
    "lr": Number(float, 0),
    "weight_decay": Number(float, 0),
    "eps": Number(float, 0),
    "betas": ListOf(Number(float, 0, 1)),
}
SCHEMAS = {
    "binary": {
        "run_id": str,
        "config": dict,
        "model": WEIGHTS,
        "dataset": str,
        "metrics": DictOf((float, type(None))),
        "best_epoch": Optional(Number(int, 0)),
    },
    "checkpoint": {
        "run_id": str,
        "config": dict,
        "model": WEIGHTS,
        "optimizer": {"state": dict, "param_groups": ListOf(ADAM_GROUP)},
        "best_model": WEIGHTS,
        "epoch": Number(int, 0),
        "early_stopping": {
            "patience": Number(int, 1),
            "best_val_loss": Number(float, 0, math.inf),  # inf until the first validation
            "best_val_accuracy": Number(float, 0, 1),
            "best_epoch": Number(int, 0),
            "epochs_without_improvement": Number(int, 0),
            "select": Optional(str),  # absent from checkpoints written before --select: the paper's rule
            "choices": Optional(DictOf(ListOf(float))),  # rule -> [epoch, val loss, val score]
        },
        "test_at_choice": Optional(DictOf(DictOf(float))),
        "rng": {
            "torch": Array(("uint8",), ndim=1),
            "numpy": Array(("int64",), ndim=1),
            "numpy_position": Number(int, 0),
            "numpy_gauss": ListOf(float),
        },
        "history": ListOf(
            {"epoch": Number(int, 1), "train_loss": float, "val_loss": float, "seconds": Number(float, 0)}
        ),
        "training_seconds": Number(float, 0),
    },
}


def save(kind: str, contents: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically write a ``kind`` ("checkpoint" or "binary") file with a format header."""
    return save_torch({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, **contents}, path)


def load(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Load and validate a file written by :func:`save`; any problem is one :class:`GATError` naming the file.

    A checkpoint is accepted where a binary is asked for (it holds a model too), not the other way round.
    """
    path = Path(path)
    if not path.is_file():
        raise GATError(f"{path}: no such file; give the path of a .pt file under models/checkpoints or models/binaries")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, random bytes: all the same to the user
        raise GATError(
            f"{path}: cannot be read as a GAT {kind} ({_reason(error)}); it is truncated, corrupt or not ours"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GATError(f"{path}: not a GAT {kind} file (no '{FORMAT}' format header)")
    if data.get("format_version") != FORMAT_VERSION:
        raise GATError(
            f"{path}: format version {data.get('format_version')} is not supported (this version reads "
            f"{FORMAT_VERSION}); use the release of this project that wrote it"
        )
    accepted = ("checkpoint",) if kind == "checkpoint" else ("binary", "checkpoint")
    if data.get("kind") not in accepted:
        raise GATError(f"{path}: is a {data.get('kind')}, not a {kind}")
    check(data, SCHEMAS[data["kind"]], f"{path}: malformed {data['kind']}")
    select = data.get("early_stopping", {}).get("select", "paper")
    if select not in SELECTION_RULES:
        raise GATError(f"{path}: malformed checkpoint: 'early_stopping.select' is {select!r}, not a selection rule")
    return data


def _reason(error: Exception) -> str:
    # torch's weights-only refusal is a paragraph; its useful part is the "Unsupported global" line.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "Unsupported global" in line] or lines or [type(error).__name__]
    return useful[0].removeprefix("WeightsUnpickler error: ")[:160]


def load_state(module: torch.nn.Module | torch.optim.Optimizer, state: dict, path: str | os.PathLike) -> None:
    """``load_state_dict`` with a one-line error when the file does not fit this model; an optimizer's state is
    then put in its parameters' shapes and memory layouts (:func:`_fit_to_parameters`)."""
    try:
        module.load_state_dict(state)
        if isinstance(module, torch.optim.Optimizer):
            _fit_to_parameters(module)
    except (RuntimeError, ValueError, KeyError) as error:
        raise GATError(f"{path}: does not match this model/optimizer ({_reason(error)})") from None


def _fit_to_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Check that every per-parameter state tensor (Adam's moments) has its parameter's shape, and copy it into
    the parameter's memory layout.

    ``Optimizer.load_state_dict`` checks neither: it keeps each tensor's saved strides. torch 2.13's fused CPU
    Adam reads parameter, gradient and moments as flat memory, so a moment saved row-major for a weight now stored
    column-major (or the reverse) is silently paired with the wrong entries (measured: a resumed run left the
    uninterrupted one at its first step), and a moment of the wrong shape is read out of bounds.
    """
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for name, value in state.items():
                if not isinstance(value, torch.Tensor) or value.dim() == 0:  # the step count
                    continue
                if value.shape != parameter.shape:
                    raise ValueError(f"state {name!r} is {list(value.shape)} for a {list(parameter.shape)} parameter")
                if value.stride() != parameter.stride():
                    state[name] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def rng_state() -> dict[str, Any]:
    """Every random generator training touches, as tensors (so ``weights_only`` loading works)."""
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_position": int(position),
        "numpy_gauss": (int(has_gauss), float(cached_gauss)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], source: str = "rng state") -> None:
    """Restore what :func:`rng_state` saved; a state of the wrong size (not this torch's, or cut) is a one-line
    GATError naming ``source``."""
    sizes = {"torch": torch.get_rng_state().numel(), "numpy": len(np.random.get_state()[1])}
    for name, size in sizes.items():
        if state[name].numel() != size:
            raise GATError(f"{source}: 'rng.{name}' holds {state[name].numel()} values, not the {size} of a state")
    torch.set_rng_state(state["torch"])
    has_gauss, cached_gauss = state["numpy_gauss"]
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_position"], has_gauss, cached_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def environment() -> dict[str, str]:
    """Library versions and the git commit, recorded in every binary so a result can be traced back."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
