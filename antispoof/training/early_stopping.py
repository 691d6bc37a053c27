"""Early stopping and model selection on a validation value."""

from __future__ import annotations

import math
from collections.abc import Mapping


class EarlyStopping:
    """Stop when the monitored value (dev EER: ``mode="min"``) has not improved by more than ``min_delta`` for
    ``patience`` consecutive epochs. ``patience=None`` never stops. NaN never counts as an improvement.

        stopper = EarlyStopping(config.get("early_stopping_patience"))
        ...
        improved = stopper.update(dev_eer)
        if stopper.should_stop: break
    """

    def __init__(
        self, patience: int | None, mode: str = "min", min_delta: float = 0.0, ties: str = "earlier"
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}")
        if patience is not None and int(patience) < 1:
            raise ValueError(f"early-stopping patience must be >= 1 (or null to disable), got {patience}")
        if ties not in ("earlier", "later"):
            raise ValueError(f"EarlyStopping ties must be 'earlier' or 'later', got {ties!r}")
        self.ties = (
            ties  # "later": an equal value is a new best (clovaai/aasist's ``best_dev_eer >= dev_eer``)
        )
        self.patience = None if patience is None else int(patience)
        self.mode = mode
        self.min_delta = float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.best_step = -1
        self.bad_steps = 0
        self.steps = 0

    def is_improvement(self, value: float) -> bool:
        value = float(value)
        if math.isnan(value):
            return False
        if self.ties == "later" and value == self.best:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when it is a new best."""
        improved = self.is_improvement(value)
        if improved:
            self.best, self.best_step, self.bad_steps = float(value), self.steps, 0
        else:
            self.bad_steps += 1
        self.steps += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_steps >= self.patience

    def state_dict(self) -> dict:
        return {
            "mode": self.mode,
            "best": self.best,
            "best_step": self.best_step,
            "bad_steps": self.bad_steps,
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the counters (patience and min_delta stay those of the current config)."""
        if state["mode"] != self.mode:
            raise ValueError(f"early-stopping state is for mode {state['mode']!r}, this one is {self.mode!r}")
        self.best = float(state["best"])
        self.best_step = int(state["best_step"])
        self.bad_steps = int(state["bad_steps"])
        self.steps = int(state["steps"])
