"""The callbacks of a training run: the best-model checkpoint, the last
epochs' weights (for averaging) and the exact, crash-safe backup of the
training state."""

from __future__ import annotations

import json
import pathlib
import warnings

import keras
import numpy as np

from keras_nmt import files
from keras_nmt.training.run_directory import BACKUP_MARKER_FILE
from keras_nmt.training.run_directory import BACKUP_STATE_FILE
from keras_nmt.training.run_directory import BACKUP_WEIGHTS_GLOB
from keras_nmt.training.run_directory import CHECKPOINT_PATTERN
from keras_nmt.training.run_directory import CHECKPOINTS_GLOB
from keras_nmt.training.selection import MODES
from keras_nmt.training.selection import is_better

BACKUP_FORMAT_VERSION = 1


class BestCheckpoint(keras.callbacks.Callback):
    """`ModelCheckpoint(save_best_only=True)` for a translator, written
    crash-safe into a run directory: after each epoch whose `monitor` is
    finite and better than the best so far (and than `best`: lower, or
    higher for `val_bleu`), the whole translator is saved to `run.dir`
    (`Translator.save`: temporary files and renames), so the directory is
    loadable from the first checkpoint on; the first save promotes a staged
    run (see `RunDirectory.promote`).

    Attributes:
        best: the best value so far (`None` while no epoch had a finite
            one).
        best_epoch: the epoch (from 0) of `best` in this `fit`, else `None`.
    """

    def __init__(self, run, translator, monitor: str, best=None):
        super().__init__()
        self.run, self.translator = run, translator
        self.monitor, self.best = monitor, best
        self.mode = MODES[monitor]
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if is_better(value, self.best, self.mode):
            self.best, self.best_epoch = float(value), epoch
            self.translator.save(self.run.dir)
            self.run.promote()


class EpochCheckpoints(keras.callbacks.Callback):
    """The weights of each of the last `keep` epochs, in
    `run.dir/checkpoints/epoch-NNNN.weights.h5` (crash-safe), for
    checkpoint averaging (`keras_nmt.training.average_checkpoints`); older
    ones are deleted (only files of this pattern)."""

    def __init__(self, run, keep: int):
        super().__init__()
        self.run, self.keep = run, keep

    def on_epoch_end(self, epoch, logs=None):
        directory = self.run.checkpoints_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CHECKPOINT_PATTERN.format(epoch=epoch + 1)
        files.write_atomically(
            path, self.model.save_weights, suffix=".weights.h5"
        )
        for old in sorted(directory.glob(CHECKPOINTS_GLOB))[: -self.keep]:
            old.unlink(missing_ok=True)


def values_of(variables) -> list:
    return [keras.ops.convert_to_numpy(v).tolist() for v in variables]


def metric_variables(model) -> list:
    return [v for metric in model.metrics for v in metric.variables]


def assign(variables, values, add: bool = False) -> None:
    """Assign (or add) saved values to `variables`, in order; nothing if the
    lists do not match (a backup of another model)."""
    variables = list(variables)
    if len(variables) != len(values):
        warnings.warn(
            f"The backup holds {len(values)} values for {len(variables)} "
            "variables; they are not restored.",
            stacklevel=2,
        )
        return
    for variable, value in zip(variables, values, strict=True):
        value = np.asarray(value, dtype=variable.dtype)
        if add:  # metric sums (the `Mean` totals and counts of ours)
            value = keras.ops.convert_to_numpy(variable) + value
        variable.assign(value)


class Backup(keras.callbacks.Callback):
    """Keras' `BackupAndRestore(save_freq=N)`, made exact and crash-safe.

    Every `every` optimizer steps and at the end of every epoch, writes the
    weights with the optimizer state (`save_weights`) and `state.json`: the
    epoch in progress, the steps of it already trained, the non-trainable
    variables (the dropout seed generators, which `save_weights` leaves
    out) and the running metric sums (so the resumed epoch reports its mean
    over all its steps).
    `state.json` names its weights file and is replaced last, atomically, so
    it always describes a complete backup. (Keras' own callback restores the
    epoch only, so a run killed mid-epoch would train that epoch's first
    steps twice, and writes its files in place.)

    `restore(model, directory)` reads a backup back; the trainer continues
    from `(epoch, step)` and hands `metrics` to this callback, which adds
    them to the running metrics after the first resumed step.
    """

    def __init__(self, run, every, steps_per_epoch, resume_at=(0, 0)):
        super().__init__()
        self.run = run
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.resume_epoch, self.resume_step = resume_at
        self.metrics = None
        self._epoch = self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._step = self.resume_step if epoch == self.resume_epoch else 0
        self.resume_step = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.metrics is not None:
            assign(metric_variables(self.model), self.metrics, add=True)
            self.metrics = None
        self._step += 1
        step = self._epoch * self.steps_per_epoch + self._step
        if self.every and step % self.every == 0:
            if self._step < self.steps_per_epoch:  # else on_epoch_end
                self.save(self._epoch, self._step)

    def on_epoch_end(self, epoch, logs=None):
        if 0 < self._step < self.steps_per_epoch:  # stopped mid-epoch
            self.save(epoch, self._step)  # (by a time budget)
        else:
            self.save(epoch + 1, 0)

    def save(self, epoch: int, step: int):
        directory = self.run.backup_dir
        directory.mkdir(parents=True, exist_ok=True)
        (directory / BACKUP_MARKER_FILE).touch()
        global_step = epoch * self.steps_per_epoch + step
        weights = f"state-{global_step:010d}.weights.h5"
        files.write_atomically(
            directory / weights,
            self.model.save_weights,
            suffix=".weights.h5",
        )
        state = {
            "format_version": BACKUP_FORMAT_VERSION,
            "epoch": epoch,
            "step": step,
            "steps_per_epoch": self.steps_per_epoch,
            "weights": weights,
            # save_weights leaves out the dropout seed generators' states.
            "non_trainable": values_of(self.model.non_trainable_variables),
            "metrics": values_of(metric_variables(self.model)) if step else [],
        }
        files.write_text_atomically(
            directory / BACKUP_STATE_FILE, json.dumps(state) + "\n"
        )
        for old in directory.glob(BACKUP_WEIGHTS_GLOB):
            if old.name != weights:
                old.unlink(missing_ok=True)

    @staticmethod
    def read(directory: pathlib.Path) -> dict:
        """The state of the backup in `directory` (its weights' path
        resolved), or a one-line error saying why it cannot be used."""
        path = directory / BACKUP_STATE_FILE
        fix = "Train without resume to start the run over."
        if not path.is_file():
            raise FileNotFoundError(
                f"Nothing to resume in '{directory.parent}': '{directory}' "
                f"holds no {BACKUP_STATE_FILE} (the run was stopped before "
                f"its first backup, or by an older version). {fix}"
            )
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            epoch, step = int(state["epoch"]), int(state["step"])
            weights = directory / state["weights"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"Cannot resume from '{path}': it is not a backup state "
                f"({type(error).__name__}: {error}). {fix}"
            ) from None
        if state.get("format_version") != BACKUP_FORMAT_VERSION:
            raise ValueError(
                f"Cannot resume from '{path}': format_version "
                f"{state.get('format_version')!r} is not supported; "
                f"expected {BACKUP_FORMAT_VERSION}. {fix}"
            )
        if not weights.is_file():
            raise FileNotFoundError(
                f"Cannot resume: the backup weights '{weights}' named in "
                f"'{path}' are missing. {fix}"
            )
        return {**state, "epoch": epoch, "step": step, "weights": weights}
