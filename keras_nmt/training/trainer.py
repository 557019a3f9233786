"""`train_translator`: the workflow behind `keras-nmt train`, the demo and
the notebooks, as a list of named steps.

`tf.data` feeds the model (the text pipeline needs TensorFlow), but the model
itself trains on whichever Keras backend is active: Keras 3 fits any backend
from a `tf.data.Dataset`. On TensorFlow, a `tf.distribute.Strategy` spreads
each batch over several devices or machines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_nmt import files
from keras_nmt.seq2seq.model import build_seq2seq
from keras_nmt.seq2seq.model import compile_seq2seq
from keras_nmt.text import SentencePairs
from keras_nmt.text import StreamingPairs
from keras_nmt.text import TextProcessor
from keras_nmt.text import make_dataset
from keras_nmt.text import streaming_processor
from keras_nmt.training import distribute
from keras_nmt.training.callbacks import Backup
from keras_nmt.training.callbacks import BestCheckpoint
from keras_nmt.training.callbacks import EpochCheckpoints
from keras_nmt.training.callbacks import assign
from keras_nmt.training.data import EpochData
from keras_nmt.training.data import StreamingEpochData
from keras_nmt.training.data import padded_to_few_shapes
from keras_nmt.training.run_directory import BACKUP_DIR
from keras_nmt.training.run_directory import HISTORY_FILE
from keras_nmt.training.run_directory import RunDirectory
from keras_nmt.training.run_directory import best_value
from keras_nmt.training.run_directory import epoch_of
from keras_nmt.training.run_directory import keep_history
from keras_nmt.training.run_directory import read_history
from keras_nmt.training.selection import LearningRateLog
from keras_nmt.training.selection import Patience
from keras_nmt.training.selection import PlateauDecay
from keras_nmt.training.selection import TimeBudget
from keras_nmt.training.selection import ValidationBLEU
from keras_nmt.training.selection import monitor_of
from keras_nmt.training.selection import validation_subset
from keras_nmt.training.settings import BEFORE_RECORDED
from keras_nmt.training.settings import TrainingSettings
from keras_nmt.translator import MODEL_FILE
from keras_nmt.translator import TRAINING_FILE
from keras_nmt.translator import Translator

# Sentences decoded at once for the validation BLEU.
VALIDATION_BATCH = 256
# Validation pairs kept in memory from a streaming part (a seeded sample).
STREAMING_VALIDATION_PAIRS = 10_000


class TrainingDivergedError(ValueError):
    """No epoch of the run produced a finite loss to select a model by."""


def train_translator(
    train_pairs: SentencePairs
    | tuple[Sequence[str], Sequence[str]]
    | StreamingPairs,
    validation_pairs: SentencePairs
    | tuple[Sequence[str], Sequence[str]]
    | StreamingPairs
    | None,
    out_dir: str | os.PathLike,
    settings: TrainingSettings | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int | str = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    tensorboard: str | os.PathLike | None = None,
    data_source: dict | None = None,
    **changes,
) -> Translator:
    """Train an attention seq2seq model and save it as a `Translator`.

    Steps: seed everything (`keras.utils.set_random_seed(settings.seed)`);
    build the `TextProcessor` on the *training* pairs only; build the model
    (`build_seq2seq`) and compile it (`compile_seq2seq`, Adam), inside
    `strategy.scope()` when a strategy is given; fit on the training pairs,
    tokenised once (epoch `e` in an order drawn from `(seed, e)`), with
    these callbacks:

    - the validation BLEU of each epoch (greedy, cased, on a seeded subset
      of `settings.validation_sentences` sources; `keras_nmt.training.
      selection`), and a best-model checkpoint: after every epoch whose
      `settings.select_by` value (validation BLEU, or validation loss;
      training loss without validation pairs) is finite and the best so
      far, the whole translator is saved to `out_dir`;
    - early stopping (`patience`), learning-rate halving (`lr_patience`)
      and the time budget (`max_minutes`), decided from the run's history;
    - a backup under `out_dir/backup`: weights, optimizer state, the
      position in the data and the running metrics, every
      `settings.backup_every` steps and at the end of each epoch, so an
      interrupted run continues with `resume=True` from its last backup as
      if it had not stopped; kept when training completes, so
      `resume=True` with more `epochs` continues a finished run;
    - `CSVLogger` (`out_dir/history.csv`) and `TerminateOnNaN`.

    Finally the best weights are restored and the translator is saved to
    `out_dir` (see `Translator.save`), with the settings and the number of
    completed epochs and steps in `training.json`.

    `out_dir` (see `keras_nmt.training.RunDirectory`): a new or empty
    directory, or one written by an earlier run. A non-empty directory we
    did not write is refused; a directory with a trained model is replaced
    only with `overwrite=True`, and only once the new run has saved its
    first checkpoint (until then it trains in a staging directory beside
    `out_dir`, deleted if the run fails). One run at a time holds the
    directory's lock. Until its first epoch completes, a new run's
    directory holds no model (`Translator.load` says so).

    Distributed training (TensorFlow backend): `batch_size` is the global
    batch, split over `strategy.num_replicas_in_sync` replicas. With
    `MultiWorkerMirroredStrategy` every worker runs this same call with
    `out_dir` on a shared file system, and only the chief writes it. With
    `TPUStrategy` the last, smaller batches are dropped.

    Args:
        train_pairs: the training pairs: a `SentencePairs` or a tuple
            `(sources, targets)`, or a `StreamingPairs` (a corpus larger
            than memory, e.g. the train part of `StreamingPairs.split`):
            read from its files at each epoch (see
            `keras_nmt.training.data.StreamingEpochData`), its vocabularies
            built by `streaming_processor`.
        validation_pairs: the validation pairs (same forms), or `None` to
            select the best epoch on the training loss. A `StreamingPairs`
            is read into memory: a seeded sample of at most
            `STREAMING_VALIDATION_PAIRS` (10,000) of its pairs.
        out_dir: the output directory (created if needed).
        settings: the `TrainingSettings` (model, data and optimisation);
            default `TrainingSettings()`.
        resume: continue the interrupted run in `out_dir` from its backup.
            The data and every setting but `epochs` and `backup_every` must
            be those of the interrupted run. A resumed run may use another
            strategy: the order of the data does not depend on it.
        overwrite: replace the trained model in `out_dir` with this run's.
        strategy: a `tf.distribute.Strategy` (TensorFlow backend), or
            `None` (one device, or the strategy whose scope this is in).
        verbose: `model.fit`'s verbosity: 1 = progress bars, 2 = one line per
            epoch, 0 = silent.
        callbacks: more Keras callbacks for `model.fit`.
        tensorboard: a directory for TensorBoard logs (see
            `keras_nmt.training.board`), or `None`.
        data_source: JSON-serialisable facts about where the pairs came
            from (the command line records the file and its split), kept in
            `training.json` under `"data_source"`.
        **changes: settings to change, by name (`epochs=2`, `units=512`):
            shorthand for `settings.replace(...)`.

    Returns:
        The `Translator` with the best weights, as saved in `out_dir`.

    Raises:
        ValueError: on empty or malformed pairs, invalid settings, or an
            `out_dir` this run may not use (`RunDirectoryError`).
        TrainingDivergedError: (a `ValueError`) if no epoch had a finite
            loss; no model is saved.

    Example:

    >>> from keras_nmt import text
    >>> train, validation, _ = text.split_pairs(text.load_demo_pairs())
    >>> translator = train_translator(
    ...     train, validation, "my-run", epochs=2)  # doctest: +SKIP
    >>> translator.translate(["¿Dónde está Tom?"])  # doctest: +SKIP
    """
    settings = (settings or TrainingSettings()).replace(**changes)
    train, validation, counts = _inputs(
        train_pairs, validation_pairs, settings.seed
    )
    distribute.check_strategy(strategy)
    start = time.perf_counter()
    previous_policy = keras.config.dtype_policy()
    with _directory(out_dir, strategy) as run:
        if distribute.is_chief(strategy):
            run.prepare(resume=resume, overwrite=overwrite)
        state = None
        if resume:
            _check_resumable(pathlib.Path(out_dir), settings, counts)
            state = Backup.read(pathlib.Path(out_dir) / BACKUP_DIR)
        try:
            return _train(
                run,
                settings,
                train,
                validation,
                counts,
                state,
                strategy=strategy,
                verbose=verbose,
                callbacks=callbacks,
                tensorboard=tensorboard,
                data_source=data_source,
                start=start,
            )
        finally:
            keras.config.set_dtype_policy(previous_policy)


def _train(run, settings, train, validation, counts, state, **options):
    """The run itself, once its directory is ready."""
    strategy = options["strategy"]
    keras.utils.set_random_seed(settings.seed)
    if state is not None:
        processor = TextProcessor.load(run.path)
    else:
        processor = _new_processor(train, settings)
    policy = (
        distribute.mixed_precision_policy()
        if settings.mixed_precision
        else None
    )
    model = _build_model(settings, processor, strategy, policy, state)
    translator = Translator(model, processor, max_length=settings.max_length)
    drop_remainder = isinstance(strategy, tf.distribute.TPUStrategy)
    data = _epoch_data(train, processor, settings, drop_remainder)
    counts.setdefault("train_pairs", data.size)  # streamed: counted now
    if state is None:
        processor.save(run.dir)
        _write_training_file(
            run.dir, settings, counts, policy, options["data_source"]
        )
    validation_ds = None
    if validation:
        validation_ds = make_dataset(
            validation,
            processor,
            batch_size=settings.batch_size,
            shuffle=False,
            drop_remainder=drop_remainder,
        )
    bleu = None
    if validation and settings.validation_sentences:
        # Its own translator on the same model: larger batches decode the
        # subset faster (the same translations).
        scorer = Translator(
            model,
            processor,
            max_length=settings.max_length,
            batch_size=VALIDATION_BATCH,
        )
        bleu = ValidationBLEU(
            scorer,
            *validation_subset(
                *validation, settings.validation_sentences, settings.seed
            ),
        )
    checkpoint = _fit(
        run, translator, data, (validation_ds, bleu), settings, state, options
    )
    if checkpoint.best is None:
        run.remove_backup()
        raise TrainingDivergedError(
            f"Training diverged: no epoch produced a finite "
            f"{checkpoint.monitor} (the loss became NaN or infinite), so no "
            "model was saved. Lower the learning rate (it is "
            f"{settings.learning_rate:g}) or check the data."
        )
    if isinstance(run, RunDirectory):
        _finish(run, model, checkpoint)
    else:  # a worker: the chief records the run. The best weights: its
        # copy, or the chief's if a resumed run did not improve on them.
        best = run.dir / MODEL_FILE
        model.load_weights(best if best.is_file() else run.path / MODEL_FILE)
    return translator


def _build_model(settings, processor, strategy, policy, state):
    """The compiled model (restored from the backup `state` if any)."""
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    previous_policy = keras.config.dtype_policy()
    with scope:
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        try:
            model = build_seq2seq(
                processor.source_vocab_size,
                processor.target_vocab_size,
                **settings.model_arguments(),
            )
        finally:
            keras.config.set_dtype_policy(previous_policy)
        compile_seq2seq(
            model,
            learning_rate=settings.learning_rate,
            label_smoothing=settings.label_smoothing,
            jit_compile=settings.jit_compile,
        )
        if state is not None:
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(state["weights"])
            assign(model.non_trainable_variables, state["non_trainable"])
    return model


def _fit(run, translator, data, validation, settings, state, options):
    """Fit from the start or from the backup `state`; returns the
    `BestCheckpoint` callback (its `best` is `None` if no epoch had a finite
    loss)."""
    model = translator.model
    validation_ds, bleu = validation
    steps = data.steps_per_epoch
    epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    if state is not None and state.get("steps_per_epoch") != steps:
        raise ValueError(
            f"Cannot resume the run in '{run.path}': its backup has "
            f"{state.get('steps_per_epoch')} steps per epoch, this data "
            f"{steps}. Resume with the same data and batch_size, or "
            "train without resume to start over."
        )
    monitor = monitor_of(
        settings.select_by, validation_ds is not None, bleu is not None
    )
    rows = _history_before(run, epoch) if state else []
    checkpoint = BestCheckpoint(
        run, translator, monitor, best_value(rows, monitor)
    )
    backup = Backup(run, settings.backup_every, steps, resume_at=(epoch, step))
    if state is not None and step:
        backup.metrics = state["metrics"]
    # In this order: each reads what the ones before added to the logs;
    # the learning-rate decay comes before the backup saves the optimizer.
    fit_callbacks = [
        LearningRateLog(),
        *([bleu] if bleu is not None else []),
        checkpoint,
    ]
    if settings.keep_checkpoints:
        fit_callbacks.append(EpochCheckpoints(run, settings.keep_checkpoints))
    if settings.patience:
        fit_callbacks.append(Patience(monitor, settings.patience, rows))
    if settings.lr_patience:
        fit_callbacks.append(PlateauDecay(monitor, settings.lr_patience, rows))
    fit_callbacks += [
        keras.callbacks.CSVLogger(
            str(run.dir / HISTORY_FILE), append=state is not None
        ),
        backup,  # after the CSV row: a resumed epoch is logged once
        keras.callbacks.TerminateOnNaN(),
    ]
    if settings.max_minutes is not None:
        fit_callbacks.append(TimeBudget(settings.max_minutes, options["start"]))
    if options["tensorboard"] is not None:
        from keras_nmt.training.board import tensorboard_callbacks

        fit_callbacks += tensorboard_callbacks(
            options["tensorboard"], translator, bleu
        )
    fit_callbacks += list(options["callbacks"])
    if state is not None and options["verbose"]:
        print(
            f"Resuming the run in '{run.path}' at epoch {epoch + 1}/"
            f"{settings.epochs}, step {step}/{steps}",
            flush=True,
        )
    # (data, first epoch, end epoch, steps per epoch) of each fit: a run
    # resumed mid-epoch first trains the rest of that epoch alone.
    fits = []
    if step and epoch < settings.epochs:
        rest = data.stream(epoch, epoch + 1, skip=step)
        fits.append((rest, epoch, epoch + 1, steps - step))
        epoch += 1
    if epoch < settings.epochs:
        fits.append(
            (data.stream(epoch, settings.epochs), epoch, settings.epochs, steps)
        )
    if settings.jit_compile:
        fits = [
            (padded_to_few_shapes(stream, data.boundaries), *rest)
            for stream, *rest in fits
        ]
        if validation_ds is not None:
            validation_ds = padded_to_few_shapes(validation_ds, None)
    for stream, first, end, steps_per_epoch in fits:
        distribute.fit(
            model,
            options["strategy"],
            x=stream,
            validation_data=validation_ds,
            initial_epoch=first,
            epochs=end,
            steps_per_epoch=steps_per_epoch,
            callbacks=fit_callbacks,
            verbose=options["verbose"],
            shuffle=False,  # the order is EpochData's
        )
        if model.stop_training:  # NaN, patience or time budget
            break
    checkpoint.stopped_by = next(
        (c.reason for c in fit_callbacks if getattr(c, "stopped", False)),
        "nan" if model.stop_training else "epochs",
    )
    return checkpoint


def _finish(run, model, checkpoint) -> None:
    """Restore the best weights (the translator saved at the best epoch)
    and record the completed epochs and steps and the selection in
    `training.json`. The backup (the state after the last step) is kept:
    `resume=True` with more `epochs` continues the finished run."""
    history = read_history(run.dir / HISTORY_FILE)
    # The steps trained, before the best epoch's weights (and optimizer
    # state) are loaded back.
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    model.load_weights(run.dir / MODEL_FILE)
    path = run.dir / TRAINING_FILE
    described = json.loads(path.read_text(encoding="utf-8"))
    described["completed_epochs"] = len(history)
    described["steps"] = steps
    values = [row.get(checkpoint.monitor) for row in history]
    best = [i for i, v in enumerate(values) if _same(v, checkpoint.best)]
    described["selected_by"] = checkpoint.monitor
    described["best_epoch"] = best[0] + 1 if best else None
    described["best_value"] = checkpoint.best
    described["stopped_by"] = checkpoint.stopped_by
    files.write_text_atomically(path, json.dumps(described, indent=2) + "\n")


def _write_training_file(directory, settings, counts, policy, source):
    described = {
        **settings.to_dict(),
        **counts,
        **({"data_source": source} if source else {}),
        "dtype_policy": policy or keras.config.dtype_policy().name,
        "backend": keras.config.backend(),
    }
    files.write_text_atomically(
        directory / TRAINING_FILE, json.dumps(described, indent=2) + "\n"
    )


def _history_before(run, epoch: int) -> list[dict]:
    """The history rows of the epochs before `epoch` (the chief also drops
    the later rows from the file: the resumed run logs them again)."""
    if isinstance(run, RunDirectory):
        return keep_history(run.dir / HISTORY_FILE, epoch)
    rows = read_history(run.path / HISTORY_FILE)
    return [row for row in rows if epoch_of(row) < epoch]


def _check_resumable(out_dir, settings, counts) -> None:
    """Raise `ValueError` if the settings or data differ from the
    interrupted run's."""
    path = out_dir / TRAINING_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Nothing to resume in '{out_dir}': {TRAINING_FILE} is "
            "missing. Train without resume to start a new run."
        )
    # A setting that an older version did not record had its default of
    # then (`BEFORE_RECORDED`), or else today's.
    previous = {
        **TrainingSettings().to_dict(),
        **BEFORE_RECORDED,
        **json.loads(path.read_text(encoding="utf-8")),
    }
    current = {**settings.to_dict(), **counts}
    keys = (*TrainingSettings.fixed_on_resume(), *counts)
    changed = [
        f"{key}={current[key]!r} (the run used {previous.get(key)!r})"
        for key in keys
        if not _same(previous.get(key), current[key])
    ]
    if changed:
        raise ValueError(
            f"Cannot resume the run in '{out_dir}' with different settings: "
            f"{'; '.join(changed)}. Resume with the same data and settings, "
            "or train without resume to start over."
        )


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


class _WorkerDirectory:
    """Where a non-chief worker writes: a temporary directory, deleted at
    the end (the same saves as the chief's, in case they involve
    collective ops). `path` is the shared run directory it reads from."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="keras-nmt-worker-"))

    @property
    def backup_dir(self) -> pathlib.Path:
        return self.dir / BACKUP_DIR

    def promote(self) -> None:
        pass

    def remove_backup(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        shutil.rmtree(self.dir, ignore_errors=True)


def _directory(out_dir, strategy):
    if distribute.is_chief(strategy):
        return RunDirectory(out_dir)
    return _WorkerDirectory(out_dir)


def _inputs(train_pairs, validation_pairs, seed: int):
    """The training pairs (lists, or a `StreamingPairs` read at each
    epoch), the validation pairs in memory or `None`, and their counts (a
    streaming corpus' training pairs are counted later, when `_train`
    scans their lengths)."""
    if isinstance(train_pairs, StreamingPairs):
        train, counts = train_pairs, {}
    else:
        train = _as_pairs(train_pairs, "train_pairs")
        if not train[0]:
            raise ValueError("train_translator: `train_pairs` is empty.")
        counts = {"train_pairs": len(train[0])}
    if isinstance(validation_pairs, StreamingPairs):
        validation_pairs = validation_pairs.sample(
            STREAMING_VALIDATION_PAIRS, seed=seed
        )
    validation = None
    if validation_pairs is not None:
        validation = _as_pairs(validation_pairs, "validation_pairs")
        validation = validation if validation[0] else None
    counts["validation_pairs"] = len(validation[0]) if validation else 0
    return train, validation, counts


def _new_processor(train, settings) -> TextProcessor:
    """The vocabularies of the training pairs (in memory or streamed)."""
    options = {
        "tokenizer": settings.tokenizer,
        "max_tokens": settings.max_vocab,
        "max_length": settings.max_length,
    }
    if isinstance(train, StreamingPairs):
        return streaming_processor(train, **options)
    return TextProcessor.from_sentences(*train, **options)


def _epoch_data(train, processor, settings, drop_remainder) -> EpochData:
    """The batches of each epoch: tokenised once in memory, or read from
    the files at each epoch (`StreamingPairs`)."""
    kind = (
        StreamingEpochData if isinstance(train, StreamingPairs) else EpochData
    )
    return kind(
        train, processor, settings.batch_size, settings.seed, drop_remainder
    )


def _as_pairs(pairs, name: str) -> tuple[list[str], list[str]]:
    if isinstance(pairs, SentencePairs):
        return list(pairs.sources), list(pairs.targets)
    if isinstance(pairs, (tuple, list)) and len(pairs) == 2:
        sources, targets = pairs
        if not isinstance(sources, str) and not isinstance(targets, str):
            sources, targets = list(sources), list(targets)
            if len(sources) == len(targets):
                return sources, targets
    raise ValueError(
        f"train_translator: `{name}` must be a SentencePairs (e.g. from "
        "keras_nmt.text.read_pairs) or a tuple (sources, targets) of "
        f"two lists of strings of equal length; received "
        f"{type(pairs).__name__}."
    )
