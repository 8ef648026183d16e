"""How long and how fast a fine-tuning stage trains: the step budget, the learning rate, the held-out
validation split with restore-best, and the per-epoch record the report shows.

Measured on the sample MNIST (4,000 training samples) and an 8×8 digits problem (1,400), prune 0.8 +
QAT, int8 accuracy drop against the original (bench/RESULTS.md, "Fine-tuning defaults"):

* a budget in optimizer steps as well as epochs: ``--epochs`` is a floor and a stage runs at least
  ``--min-steps`` (default 300) steps — 1,400 samples at batch 64 get 14 epochs instead of 2;
* the learning rate: ``--learning-rate``, else the one the model file's optimizer was compiled with,
  else 1e-3 (Adam; 1e-4 left the digits problem 3 to 5 points down after 150-300 steps);
* 10 % of the training samples held out (when that is at least 50 samples): the weights of the epoch
  with the lowest validation loss are kept (for pruning: among the epochs at the final sparsity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _tf

MAX_EPOCHS = 100
DEFAULT_LEARNING_RATE = 1e-3
MIN_VALIDATION_SAMPLES = 50


@dataclass(frozen=True)
class Budget:
    epochs: int
    steps_per_epoch: int
    reason: str

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan_budget(train_samples: int, batch_size: int, epochs: int, min_steps: int) -> Budget:
    """Epochs so that a stage gets at least ``min_steps`` optimizer steps (``epochs`` is a floor)."""
    per_epoch = max(1, -(-train_samples // batch_size))
    needed = math.ceil(min_steps / per_epoch)
    chosen = min(max(epochs, needed), max(MAX_EPOCHS, epochs))
    if chosen == epochs:
        reason = f"{epochs} epoch(s) as asked ({epochs * per_epoch} optimizer steps)"
    elif chosen == needed:
        reason = (f"{chosen} epochs instead of {epochs}: {train_samples} samples at batch {batch_size} give "
                  f"{per_epoch} steps per epoch, and a stage runs at least {min_steps} steps (--min-steps)")
    else:
        reason = f"{chosen} epochs (at most {MAX_EPOCHS}; {min_steps} steps would need {needed})"
    return Budget(chosen, per_epoch, reason)


def saved_learning_rate(training_config: dict | None) -> float | None:
    """The learning rate of the optimizer a model file was compiled with (None when there is none)."""
    if not training_config:
        return None
    optimizer = training_config.get("optimizer_config") or training_config.get("optimizer")
    if isinstance(optimizer, dict) and "config" in optimizer:
        optimizer = optimizer["config"]
    if not isinstance(optimizer, dict):
        return None
    rate = optimizer.get("learning_rate", optimizer.get("lr"))  # Keras 2.0-2.2 called it lr
    if isinstance(rate, dict):  # a schedule: its initial rate
        config = rate.get("config", rate)
        rate = config.get("initial_learning_rate", config.get("learning_rate"))
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def learning_rate(override: float | None, training_config: dict | None) -> tuple[float, str]:
    """(rate, where it came from) for the fine-tuning optimizer (Adam)."""
    if override is not None:
        return override, "--learning-rate"
    saved = saved_learning_rate(training_config)
    if saved is not None:
        return saved, "the model file's optimizer"
    return DEFAULT_LEARNING_RATE, "tfopt's default (the model file has no optimizer)"


def split_validation(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), seeded; no validation when it would hold under 50 samples."""
    order = np.random.default_rng(seed).permutation(n)
    held = int(round(n * fraction))
    if held < MIN_VALIDATION_SAMPLES or n - held < 1:
        return np.sort(order), order[:0]
    return np.sort(order[held:]), np.sort(order[:held])


def first_epoch_at_target(end_step: int, steps_per_epoch: int) -> int:
    """0-based index of the first epoch that ends with the pruning mask at its final sparsity."""
    return max(0, math.ceil((end_step + 1) / steps_per_epoch) - 1)


_CLASSES: dict[str, type] = {}


def callbacks() -> dict[str, type]:
    """``RestoreBest`` and ``Ticks`` (Keras callbacks, defined on first use after tf_keras is importable)."""
    if _CLASSES:
        return _CLASSES
    K = _tf.tf_keras()

    class RestoreBest(K.callbacks.Callback):
        """Keep the weights of the best epoch (lowest validation loss) from ``start_epoch`` on; restore at the end.

        ``get_weights`` / ``set_weights`` cover TF-MOT's wrapper variables too (kernel, pruning mask and step,
        quantizer ranges), so a restored epoch is self-consistent."""

        def __init__(self, start_epoch: int = 0, monitor: str = "val_loss"):
            super().__init__()
            self.start_epoch, self.monitor = start_epoch, monitor
            self.best, self.best_epoch, self.best_weights = math.inf, None, None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if epoch < self.start_epoch or value is None or not math.isfinite(value) or value >= self.best:
                return
            self.best, self.best_epoch, self.best_weights = float(value), epoch, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class Ticks(K.callbacks.Callback):
        """Progress: a count per optimizer step (with the loss), a milestone per epoch (with validation values)."""

        def __init__(self, counter, progress, label: str, epochs: int, per_epoch: int):
            super().__init__()
            self.tick, self.epochs, self.per_epoch = counter(progress, label, epochs * per_epoch, "steps"), epochs, per_epoch
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss", float("nan"))
            self.tick(self.epoch * self.per_epoch + batch + 1, f"epoch {self.epoch + 1}/{self.epochs}, loss {loss:.4f}")

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
            self.tick((epoch + 1) * self.per_epoch, f"epoch {epoch + 1}/{self.epochs}, {shown}", milestone=True)

    _CLASSES.update(RestoreBest=RestoreBest, Ticks=Ticks)
    return _CLASSES
