"""Model selection while training: validation BLEU, early stopping,
learning-rate decay on a plateau and a time budget.

Why not Keras' `EarlyStopping` and `ReduceLROnPlateau`: their state (the
best value, the epochs waited) lives in the callback and is reset by
`on_train_begin`, so a run resumed from its backup would forget it and a
run that is continued for more epochs would wait from zero again. Here the
decisions are computed from the run's history (the values of every epoch so
far, read back from `history.csv` on resume), so they are the same whether
a run was interrupted or not. Keras has no time-budget callback
(TensorFlow Addons' `TimeStopping` went with the library).
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

# The direction of improvement of each value a run can be selected by.
MODES = {"val_bleu": "max", "val_loss": "min", "loss": "min"}


def monitor_of(select_by: str, has_validation: bool, with_bleu: bool) -> str:
    """The log key a run selects its model by."""
    if not has_validation:
        return "loss"
    if select_by == "bleu" and with_bleu:
        return "val_bleu"
    return "val_loss"


def is_better(value, best, mode: str) -> bool:
    """Whether finite `value` improves on `best` (`None`: no best yet)."""
    try:
        value = float(value)  # history.csv holds strings, "" when missing
    except (TypeError, ValueError):
        return False
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def best_of(values, mode: str) -> float | None:
    """The best finite value of `values` (`None` if none)."""
    best = None
    for value in values:
        if is_better(value, best, mode):
            best = float(value)
    return best


def validation_subset(sources, references, size: int, seed: int):
    """Up to `size` distinct validation sources with all their references:
    a seeded sample of the source groups, in their first-seen order.

    Returns:
        `(sources, references)`: two lists of equal length, one pair per
        line (a source appears once per reference), ready for
        `keras_nmt.evaluation.evaluate`.
    """
    grouped: dict[str, list[str]] = {}
    for source, reference in zip(sources, references, strict=True):
        grouped.setdefault(source, []).append(reference)
    keys = list(grouped)
    if len(keys) > size:
        rng = np.random.default_rng([seed % 2**64, 1])
        chosen = sorted(rng.choice(len(keys), size=size, replace=False))
        keys = [keys[i] for i in chosen]
    pairs = [(key, ref) for key in keys for ref in grouped[key]]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class ValidationBLEU(keras.callbacks.Callback):
    """Adds `val_bleu` to the logs of each epoch: the cased corpus BLEU
    (sacrebleu, as `Translator.evaluate`) of the compiled greedy
    translations of a fixed validation subset.

    Place it before the callbacks that read `val_bleu` (they share the
    epoch's `logs`). `seconds` records how long each scoring took.
    """

    def __init__(self, translator, sources, references):
        super().__init__()
        self.translator = translator
        self.sources, self.references = list(sources), list(references)
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        start = time.perf_counter()
        scores = self.translator.evaluate(
            self.sources, self.references, method="greedy"
        )
        self.seconds.append(time.perf_counter() - start)
        logs["val_bleu"] = scores["bleu"]
        logs["val_bleu_seconds"] = self.seconds[-1]


class LearningRateLog(keras.callbacks.Callback):
    """Adds the optimizer's `learning_rate` of the epoch to its logs (and
    so to `history.csv`, where `PlateauDecay` reads its past changes)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class _HistoryRule(keras.callbacks.Callback):
    """A decision from the monitored values of every epoch so far: those
    of the epochs before this `fit` (`previous`, from the history file)
    and those logged since."""

    def __init__(self, monitor: str, patience: int, previous=()):
        super().__init__()
        self.monitor, self.patience = monitor, patience
        self.mode = MODES[monitor]
        self.values = [row.get(monitor) for row in previous]
        self.rates = [row.get("learning_rate") for row in previous]

    def _record(self, logs) -> int:
        """Append this epoch's value; returns the epochs since the best."""
        self.values.append((logs or {}).get(self.monitor))
        self.rates.append((logs or {}).get("learning_rate"))
        best_at, best = None, None
        for index, value in enumerate(self.values):
            if is_better(value, best, self.mode):
                best_at, best = index, float(value)
        last = len(self.values) - 1
        return last + 1 if best_at is None else last - best_at


class Patience(_HistoryRule):
    """Early stopping: stops training once `patience` epochs have passed
    without a better `monitor` value than the best so far. `stopped` says
    whether it stopped the run."""

    reason = "patience"

    def __init__(self, monitor, patience, previous=()):
        super().__init__(monitor, patience, previous)
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        if self._record(logs) >= self.patience:
            self.model.stop_training = True
            self.stopped = True


class PlateauDecay(_HistoryRule):
    """Multiplies the learning rate by `factor` once `patience` epochs have
    passed without a better `monitor` value, and again after every further
    `patience` epochs without one (counted from the last change, which is
    read from the logged `learning_rate`)."""

    def __init__(self, monitor, patience, previous=(), factor=0.5):
        super().__init__(monitor, patience, previous)
        self.factor = factor

    def on_epoch_end(self, epoch, logs=None):
        waited = self._record(logs)
        since_change = 0
        rates = [float(r) for r in self.rates if r not in (None, "")]
        for rate in reversed(rates):
            if not math.isclose(rate, rates[-1], rel_tol=1e-6):
                break
            since_change += 1
        if waited >= self.patience and since_change >= self.patience:
            optimizer = self.model.optimizer
            rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            optimizer.learning_rate.assign(rate * self.factor)


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `minutes` have passed since `start` (a
    `time.perf_counter()` value), leaving time for the end-of-epoch work
    (validation, checkpoint) as long as the last epoch's took: the batch
    after which the budget would be overrun ends the epoch early, and the
    epoch is scored and kept like any other. `stopped` says whether it
    stopped the run."""

    reason = "max_minutes"

    def __init__(self, minutes: float, start: float):
        super().__init__()
        self.deadline = start + 60.0 * minutes
        self.epoch_end_seconds = 0.0
        self.stopped = False
        self._epoch_end_start = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now + self.epoch_end_seconds >= self.deadline:
            self.model.stop_training = True
            self.stopped = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch_end_start is not None:
            self.epoch_end_seconds = time.perf_counter() - self._epoch_end_start

    def on_test_begin(self, logs=None):
        self._epoch_end_start = time.perf_counter()
