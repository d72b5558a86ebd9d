"""When a run stops, and which epoch's model it keeps: the GAT paper's early stopping and the rules of ``--select``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gat.training.config import SELECTION_RULES


@dataclass
class EarlyStopping:
    """When to stop, and which epoch's model to keep.

    Stopping is the GAT paper's rule: stop once neither validation loss nor accuracy improved (or tied) for
    ``patience`` epochs. Which model is kept is ``select``, one of :data:`SELECTION_RULES`; every rule's choice is
    followed whichever is used, so one run can say what each would have kept. All of them read validation
    scores only.
    """

    patience: int
    select: str = "paper"
    best_val_loss: float = math.inf
    best_val_accuracy: float = 0.0
    best_epoch: int = 0  # the epoch ``select`` chooses
    epochs_without_improvement: int = 0
    # rule -> [epoch, validation loss, validation accuracy] of the epoch it chooses so far
    choices: dict[str, list[float]] = field(default_factory=dict)

    def update(self, epoch: int, val_loss: float, val_accuracy: float) -> set[str]:
        """Record an epoch's validation scores; returns the rules that now choose this epoch's model."""
        accuracy_improved = val_accuracy >= self.best_val_accuracy
        loss_improved = val_loss <= self.best_val_loss
        chosen = {rule for rule in SELECTION_RULES if self._prefers(rule, val_loss, val_accuracy)}
        for rule in chosen:
            self.choices[rule] = [epoch, val_loss, val_accuracy]
        if self.select in chosen:
            self.best_epoch = epoch
        if accuracy_improved or loss_improved:
            # best first: min/max keep their first argument against nan, so a nan score never becomes the best
            self.best_val_accuracy = max(self.best_val_accuracy, val_accuracy)
            self.best_val_loss = min(self.best_val_loss, val_loss)
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return chosen

    def _prefers(self, rule: str, val_loss: float, val_accuracy: float) -> bool:
        """Whether ``rule`` prefers this epoch's model to the one it chose before."""
        if rule == "paper":  # both at least as good as their best so far (ties: the later epoch), as the paper's code
            return val_accuracy >= self.best_val_accuracy and val_loss <= self.best_val_loss
        if rule == "last" or rule not in self.choices:
            return True
        _, chosen_loss, chosen_accuracy = self.choices[rule]
        if rule == "val-loss":  # strictly lower: the first epoch of the lowest loss
            return val_loss < chosen_loss
        return val_accuracy > chosen_accuracy or (val_accuracy == chosen_accuracy and val_loss < chosen_loss)

    @property
    def should_stop(self) -> bool:
        return self.epochs_without_improvement >= self.patience
