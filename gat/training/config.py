"""Training configuration: plain data, filled from command-line flags or written in code.

Torch-free on purpose: the command lines check their flags with it before anything heavy is imported."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from gat.data.registry import get_dataset
from gat.errors import GATError
from gat.validate import ListOf, check

MAX_SEED = 2**32 - 1  # numpy's generators take seeds in [0, 2^32 - 1]
# Upper bounds far beyond any useful model, below what overflows torch's int64 sizes or builds for minutes:
MAX_LAYERS = 64
MAX_WIDTH = 1_000_000  # features per head, heads per layer, sampled neighbours per node, graphs per PPI batch
MAX_BATCH = 2**31 - 1  # seed nodes per mini-batch step
LAYERS = ("gat", "gatv2", "mean")  # the attention layers by name: gat.nn.model.LAYERS maps each to its class

# Which epoch's model a run keeps (`gat.training.selection.EarlyStopping`), from validation scores only:
SELECTION_RULES = {
    "paper": "the last epoch at which validation loss and accuracy both matched or beat their best so far (the "
    "GAT paper's code)",
    "val-loss": "the lowest validation loss",
    "val-acc": "the highest validation accuracy; among ties, the lowest validation loss",
    "last": "the last epoch trained",
}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the GAT paper's Cora setup.

    The paper trains with Adam (lr 0.005, L2 5e-4), dropout 0.6 on every layer's input, on the attention and on
    the projected features that are aggregated, 8 heads x 8 features in the hidden layer, one output head, and
    early stopping with patience 100.
    """

    # data
    dataset: str = "cora"
    data_dir: str = "data"
    data_mirror: str | None = None
    # model
    num_layers: int = 2
    hidden: int = 8
    heads: tuple[int, ...] = (8, 1)
    dropout: float = 0.6
    skip_connection: bool = False
    layer: str = "gat"
    # optimisation
    epochs: int = 10000
    patience: int = 100
    select: str = "paper"  # the model kept: one of SELECTION_RULES (stopping is the paper's rule whatever it is)
    lr: float = 0.005
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # CPU threads per operation; None: chosen from the step's size (gat.threads)
    cuda_graphs: bool = True  # on a GPU, replay each full-batch step from a CUDA graph (steps.CapturedStep)
    # mini-batch training (gat.training.minibatch): in-neighbours sampled per node, one count per layer (layer 0 the
    # outermost hop); empty = full-batch. batch_size seeds per step and process; distributed = under torchrun.
    fanouts: tuple[int, ...] = ()
    batch_size: int = 1024
    graphs_per_batch: int = 2  # PPI: whole training graphs per step (the paper's 2)
    distributed: bool = False
    # outputs
    run_name: str = ""  # joins the run id: runs/<dataset>_<run_name>_<date>-<time>_<random>
    runs_dir: str = "runs"
    models_dir: str = "models"
    checkpoint_freq: int = 50
    console_log_freq: int = 10
    entropy_log_freq: int = 10
    tensorboard: bool = True
    test: bool = True
    # also evaluate the test split at every epoch a selection rule chooses (to compare the rules in one run, as
    # gat.reproduce does): TrainResult.selections then holds each rule's test score
    test_every_rule: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        self.dataset = get_dataset(self.dataset).name  # any case; an unknown name is refused with a suggestion
        self.heads = tuple(int(h) for h in self.heads)
        self.fanouts = tuple(int(f) for f in self.fanouts)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`GATError` naming the first invalid value and what is allowed."""
        checks = [
            (self.layer in LAYERS, f"unknown layer {self.layer!r}: choose one of {', '.join(LAYERS)}"),
            (self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}"),
            (0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}], got {self.seed}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (
                self.select in SELECTION_RULES,
                f"unknown selection rule {self.select!r}: choose one of {', '.join(SELECTION_RULES)}",
            ),
            (self.test or not self.test_every_rule, "test_every_rule evaluates the test split: it needs test on"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0 (and finite), got {self.lr}"),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                f"weight decay must be >= 0 (and finite), got {self.weight_decay}",
            ),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (1 <= self.num_layers <= MAX_LAYERS, f"num-layers must be in [1, {MAX_LAYERS}], got {self.num_layers}"),
            (1 <= self.hidden <= MAX_WIDTH, f"hidden must be in [1, {MAX_WIDTH}], got {self.hidden}"),
            (
                all(1 <= h <= MAX_WIDTH for h in self.heads),
                f"every head count must be in [1, {MAX_WIDTH}], got {list(self.heads)}",
            ),
            (
                len(self.heads) == self.num_layers,
                f"heads needs one count per layer: got {len(self.heads)} ({','.join(map(str, self.heads))}) "
                f"for {self.num_layers} layers",
            ),
            (self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}"),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (
                all(1 <= f <= MAX_WIDTH for f in self.fanouts),
                f"every fan-out must be in [1, {MAX_WIDTH}], got {list(self.fanouts)}",
            ),
            (
                not self.fanouts or len(self.fanouts) == self.num_layers,
                f"fanouts needs one count per layer: got {len(self.fanouts)} ({','.join(map(str, self.fanouts))}) "
                f"for {self.num_layers} layers",
            ),
            (1 <= self.batch_size <= MAX_BATCH, f"batch-size must be in [1, {MAX_BATCH}], got {self.batch_size}"),
            (
                1 <= self.graphs_per_batch <= MAX_WIDTH,
                f"graphs-per-batch must be in [1, {MAX_WIDTH}], got {self.graphs_per_batch}",
            ),
            (
                self.fanouts or not self.distributed,
                "distributed training is mini-batch training: give --fanouts too (e.g. --fanouts 10,10)",
            ),
            (self.checkpoint_freq >= 1, f"checkpoint-freq must be >= 1, got {self.checkpoint_freq}"),
            (self.console_log_freq >= 1, f"console-log-freq must be >= 1, got {self.console_log_freq}"),
            (self.entropy_log_freq >= 1, f"entropy-log-freq must be >= 1, got {self.entropy_log_freq}"),
            (
                re.fullmatch(r"[A-Za-z0-9._=+-]*", self.run_name) is not None,
                f"run-name may use letters, digits and . _ = + - only (it names folders), got {self.run_name!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise GATError(message)

    def to_dict(self) -> dict:
        """Plain JSON/``torch.load(weights_only=True)``-safe data."""
        data = asdict(self)
        data["heads"] = list(self.heads)
        data["fanouts"] = list(self.fanouts)
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Rebuild a config saved by :meth:`to_dict`, ignoring keys this version does not know. A value of the
        wrong type or out of range raises `GATError` naming ``source`` (the file it came from)."""
        schema = {f.name: _expected_type(f.default) for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in schema}
        check(values, {key: schema[key] for key in values}, f"{source}: config")
        try:
            return cls(**values)
        except GATError as error:
            raise GATError(f"{source}: config: {error}") from None


def _expected_type(default: Any) -> Any:
    """What a saved field must be, from its default: tuples are saved as lists of ints, None means text."""
    if default is None:
        return (str, type(None))
    return ListOf(int) if isinstance(default, tuple) else type(default)
