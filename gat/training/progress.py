"""What a training run prints: a header, a progress bar (or periodic log lines), one summary line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from gat.training.presets import score_label, score_name

if TYPE_CHECKING:
    from gat.data.graph import Graph
    from gat.nn.model import GAT
    from gat.training.config import TrainConfig


class Progress:
    """A tqdm bar when stderr is a terminal, else a log line every ``console_log_freq`` epochs; silent if quiet."""

    def __init__(
        self, config: TrainConfig, graph: Graph, model: GAT, device: torch.device, run_id: str, resumed_from: int
    ) -> None:
        self.config = config
        self.bar = None
        if config.quiet:
            return
        num_parameters = sum(p.numel() for p in model.parameters())
        layers = " -> ".join(f"{layer.num_heads}x{layer.out_features}" for layer in model.layers)
        print(f"run {run_id}" + (f" (resumed after epoch {resumed_from})" if resumed_from else ""))
        print(f"data   {graph}")
        kind = type(model.layers[0]).__name__.removesuffix("Layer")  # GAT, GATv2 or Mean
        print(f"model  {kind} {layers} heads x features, {num_parameters:,} parameters, dropout {config.dropout}")
        print(
            f"train  Adam lr {config.lr}, weight decay {config.weight_decay}, up to {config.epochs} epochs, "
            f"patience {config.patience}, seed {config.seed}, device {device}"
        )
        if config.fanouts:
            processes = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            print(
                f"batch  {config.batch_size} seeds per step on each of {processes} process(es), "
                f"fan-outs {','.join(map(str, config.fanouts))}, exact layer-wise evaluation"
            )
        if sys.stderr.isatty():
            self.bar = tqdm(total=config.epochs, initial=resumed_from, unit="epoch", dynamic_ncols=True)

    def epoch(self, record: dict[str, float], best_epoch: int) -> None:
        if self.config.quiet:
            return
        score, label = score_name(self.config.dataset), score_label(self.config.dataset)  # accuracy or micro-F1
        if self.bar is not None:
            self.bar.update(1)
            val_score = {f"val_{label}": f"{record[f'val_{score}']:.3f}"}
            self.bar.set_postfix(loss=f"{record['train_loss']:.3f}", **val_score, best=best_epoch)
        elif record["epoch"] % self.config.console_log_freq == 0:
            print(
                f"epoch {record['epoch']:5d} | train loss {record['train_loss']:.4f} {label} "
                f"{record[f'train_{score}']:.4f} | val loss {record['val_loss']:.4f} {label} "
                f"{record[f'val_{score}']:.4f} | best epoch {best_epoch}",
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def summary(self, metrics: dict[str, float], best_epoch: int, epochs: int, seconds: float) -> None:
        """``best epoch 123 | val acc 0.8120 | test acc 0.8310 | 223 epochs in 2.1 s (9.4 ms/epoch)`` (micro-F1
        for PPI)."""
        if self.config.quiet:
            return
        score, label = score_name(self.config.dataset), score_label(self.config.dataset)
        test = f" | test {label} {metrics[f'test_{score}']:.4f}" if f"test_{score}" in metrics else ""
        print(
            f"best epoch {best_epoch} | val {label} {metrics[f'val_{score}']:.4f}{test} | "
            f"{epochs} epochs in {seconds:.1f} s ({1000 * seconds / max(epochs, 1):.1f} ms/epoch)"
        )
