"""Train a `Translator` on sentence pairs: the workflow behind
`keras-nmt train`, the demo and the notebooks.

`tf.data` feeds the model (the text pipeline needs TensorFlow), but the model
itself trains on whichever Keras backend is active: Keras 3 fits any backend
from a `tf.data.Dataset`. On TensorFlow, a `tf.distribute.Strategy` spreads
each batch over several devices or machines.

Fault tolerance: the training state (weights, optimizer, position in the
data, running metrics) is backed up every few steps and at the end of each
epoch, and every file is written under a temporary name and renamed when
complete, so a run killed at any moment resumes exactly where its last
backup was taken (`resume=True`) and its directory always holds a loadable
translator.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import os
import pathlib
import shutil
import tempfile
import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from keras_nmt.text import SentencePairs
from keras_nmt.text import TextProcessor
from keras_nmt.text import make_dataset
from keras_nmt.text.dataset import _auto_boundaries
from keras_nmt.translator import CONFIG_FILE
from keras_nmt.translator import MODEL_FILE
from keras_nmt.translator import Translator
from keras_nmt.translator import remove_temporary_files
from keras_nmt.translator import save_model_atomically
from keras_nmt.translator import write_atomically
from keras_nmt.translator import write_text_atomically

BACKUP_DIR = "backup"
BACKUP_STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
TRAINING_CONFIG_FILE = "training.json"
DEFAULT_BACKUP_STEPS = 50
_BACKUP_FORMAT_VERSION = 1


def _sources_targets(pairs, name: str) -> tuple[list[str], list[str]]:
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


def _read_history(path: pathlib.Path) -> list[dict]:
    """The rows of a CSVLogger file (an unfinished last line is dropped)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def _keep_history(path: pathlib.Path, epochs: int) -> list[dict]:
    """Keep the rows of the first `epochs` epochs in the CSVLogger file
    (rows of an epoch that the resumed run trains again are dropped)."""
    rows = _read_history(path)
    kept = [row for row in rows if _epoch_of(row) < epochs]
    if path.is_file() and rows:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
        write_text_atomically(path, out.getvalue())
    return kept


def _epoch_of(row: dict) -> float:
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return math.inf


def _best_value(rows: list[dict], monitor: str) -> float | None:
    """The best (lowest) finite value of `monitor` in CSVLogger rows."""
    values = []
    for row in rows:
        try:
            values.append(float(row[monitor]))
        except (KeyError, TypeError, ValueError):
            continue
    values = [v for v in values if math.isfinite(v)]
    return min(values) if values else None


def _mixed_precision_policy() -> str:
    """`"mixed_float16"` where a GPU trains, `"mixed_bfloat16"` otherwise.

    float16 runs on the tensor cores of every recent NVIDIA GPU (Keras adds
    loss scaling); bfloat16 has float32's range (no loss scaling) and is the
    format CPUs (AVX512-BF16, AMX) and TPUs compute in.
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        has_gpu = bool(tf.config.list_logical_devices("GPU"))
    elif backend == "jax":
        import jax

        has_gpu = jax.default_backend() == "gpu"
    elif backend == "torch":
        import torch

        has_gpu = torch.cuda.is_available()
    else:
        has_gpu = False
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


def _is_chief(strategy) -> bool:
    """Whether this process writes the run's files: on a TensorFlow cluster
    only the chief (worker 0 without a chief); on JAX, process 0 (several
    processes share a `keras.distribution` across hosts); else always."""
    if strategy is not None:
        return bool(strategy.extended.should_checkpoint)
    if keras.config.backend() == "jax":
        import jax

        return jax.process_index() == 0
    return True


def _workers(strategy) -> int:
    """The number of worker machines of a `MultiWorkerMirroredStrategy`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def _fit(model, strategy, **kwargs):
    """`model.fit(**kwargs)`, with a clear error for a known Keras bug."""
    try:
        model.fit(**kwargs)
    except ValueError as error:
        if _workers(strategy) > 1 and "PerReplica" in str(error):
            raise ValueError(
                "Keras' model.fit failed under MultiWorkerMirroredStrategy "
                f"with {_workers(strategy)} workers: Keras 3 (3.15 at least) "
                "cannot fit across several workers with the TensorFlow "
                "backend (keras-team/keras#20585). Use MirroredStrategy on "
                "one machine, or the JAX backend with keras.distribution "
                "across machines. The error: "
                f"{str(error).splitlines()[0]}"
            ) from error
        raise


class _EpochData:
    """The training batches of each epoch, in an order that depends only on
    the seed and the epoch number.

    Epoch `e` is `make_dataset` (length buckets as with `shuffle=True`) over
    the pairs permuted by a NumPy generator seeded with `(seed, e)`. A
    `tf.data` shuffle would draw a new order each time an iterator is
    created, and Keras creates a different number of them on one device, on
    several (the strategy's build step) and when resuming; a fixed order per
    epoch makes all those runs see the same batches, and lets a resumed run
    skip exactly the batches the interrupted one had trained on.
    """

    def __init__(
        self, sources, targets, processor, batch_size, seed, drop_remainder
    ):
        self.sources, self.targets = sources, targets
        self.processor, self.batch_size = processor, batch_size
        self.seed, self.drop_remainder = seed, drop_remainder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # make_dataset warns instead
            lengths = np.maximum(
                processor.tokenize_ragged(sources, "source").row_lengths(),
                processor.tokenize_ragged(targets, "target").row_lengths(),
            )
        self.boundaries = _auto_boundaries(lengths) or None
        self.steps_per_epoch = len(self.epoch(0))

    def epoch(self, epoch: int) -> tf.data.Dataset:
        rng = np.random.default_rng([self.seed % 2**64, epoch])
        order = rng.permutation(len(self.sources))
        return make_dataset(
            (
                [self.sources[i] for i in order],
                [self.targets[i] for i in order],
            ),
            self.processor,
            batch_size=self.batch_size,
            shuffle=False,
            bucket_boundaries=self.boundaries,
            drop_remainder=self.drop_remainder,
        )

    def stream(self, first: int, last: int, skip: int = 0) -> tf.data.Dataset:
        """Epochs `first` to `last - 1` one after the other, without the
        first `skip` batches of epoch `first`."""
        parts = [self.epoch(e) for e in range(first, last)]
        parts[0] = parts[0].skip(skip)
        return functools.reduce(lambda a, b: a.concatenate(b), parts)


class _BestCheckpoint(keras.callbacks.Callback):
    """`ModelCheckpoint(save_best_only=True)` written crash-safe: the whole
    model goes to `path` after each epoch whose `monitor` is below the best
    so far (and below `best`), through a temporary file and a rename."""

    def __init__(self, path, monitor: str, best: float | None = None):
        super().__init__()
        self.path, self.monitor, self.best = pathlib.Path(path), monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is None or float(value) < self.best:
            self.best = float(value)
            save_model_atomically(self.model, self.path)


def _values(variables) -> list:
    return [keras.ops.convert_to_numpy(v).tolist() for v in variables]


def _metric_variables(model) -> list:
    return [v for metric in model.metrics for v in metric.variables]


def _assign(variables, values, add: bool = False) -> None:
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


class _Backup(keras.callbacks.Callback):
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

    def __init__(self, directory, every, steps_per_epoch, resume_at=(0, 0)):
        super().__init__()
        self.directory = pathlib.Path(directory)
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
            _assign(_metric_variables(self.model), self.metrics, add=True)
            self.metrics = None
        self._step += 1
        step = self._epoch * self.steps_per_epoch + self._step
        if self.every and step % self.every == 0:
            if self._step < self.steps_per_epoch:  # else on_epoch_end
                self.save(self._epoch, self._step)

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1, 0)

    def save(self, epoch: int, step: int):
        self.directory.mkdir(parents=True, exist_ok=True)
        global_step = epoch * self.steps_per_epoch + step
        weights = f"state-{global_step:010d}.weights.h5"
        write_atomically(
            self.directory / weights,
            self.model.save_weights,
            suffix=".weights.h5",
        )
        state = {
            "format_version": _BACKUP_FORMAT_VERSION,
            "epoch": epoch,
            "step": step,
            "steps_per_epoch": self.steps_per_epoch,
            "weights": weights,
            # save_weights leaves out the dropout seed generators' states.
            "non_trainable": _values(self.model.non_trainable_variables),
            "metrics": _values(_metric_variables(self.model)) if step else [],
        }
        write_text_atomically(
            self.directory / BACKUP_STATE_FILE, json.dumps(state) + "\n"
        )
        for old in self.directory.glob("state-*.weights.h5"):
            if old.name != weights:
                old.unlink(missing_ok=True)

    @staticmethod
    def read(directory: pathlib.Path) -> dict:
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
        if state.get("format_version") != _BACKUP_FORMAT_VERSION:
            raise ValueError(
                f"Cannot resume from '{path}': format_version "
                f"{state.get('format_version')!r} is not supported; "
                f"expected {_BACKUP_FORMAT_VERSION}. {fix}"
            )
        if not weights.is_file():
            raise FileNotFoundError(
                f"Cannot resume: the backup weights '{weights}' named in "
                f"'{path}' are missing. {fix}"
            )
        return {**state, "epoch": epoch, "step": step, "weights": weights}


def train_translator(
    train_pairs: SentencePairs | tuple[Sequence[str], Sequence[str]],
    validation_pairs: SentencePairs
    | tuple[Sequence[str], Sequence[str]]
    | None,
    out_dir: str | os.PathLike,
    *,
    attention: str = "bahdanau",
    style: str = "bahdanau",
    cell: str = "lstm",
    input_feeding: bool = False,
    embedding_dim: int = 128,
    units: int = 256,
    dropout: float = 0.0,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    max_length: int = 32,
    max_vocab: int | None = None,
    seed: int = 0,
    resume: bool = False,
    backup_every: int | None = DEFAULT_BACKUP_STEPS,
    strategy: tf.distribute.Strategy | None = None,
    mixed_precision: bool = False,
    verbose: int | str = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Translator:
    """Train an attention seq2seq model and save it as a `Translator`.

    Steps: seed everything (`keras.utils.set_random_seed(seed)`); build the
    `TextProcessor` on the *training* pairs only; build the model
    (`build_seq2seq`) and compile it (`compile_seq2seq`, Adam), inside
    `strategy.scope()` when a strategy is given; fit on `make_dataset`
    batches (the pairs of epoch `e` in an order drawn from `(seed, e)`) with
    these callbacks:

    - a best-model checkpoint: after every epoch whose validation loss
      (training loss without validation pairs) is the best so far, the
      whole model is saved to `out_dir/model.keras`;
    - a backup under `out_dir/backup` (like Keras' `BackupAndRestore`):
      weights, optimizer state, the position in the data and the running
      metrics, every `backup_every` steps and at the end of each epoch, so
      that an interrupted run continues with `resume=True` from its last
      backup, as if it had not stopped: same batches, same number of steps;
      deleted when training completes;
    - `CSVLogger`: the metrics of each epoch in `out_dir/history.csv`.

    Finally the best weights are restored and the translator is saved to
    `out_dir` (see `Translator.save`), so `Translator.load(out_dir)` gives
    the model of the best epoch. The directory is written before the first
    epoch too (with the untrained model, and the training arguments in
    `training.json`), so it is a loadable translator at every moment: every
    file is written under a temporary name and renamed over the old one
    when complete, so a crash never leaves a truncated model behind.
    `training.json` also records, once training completes,
    `completed_epochs` and `steps` (optimizer steps in all).

    Distributed training (TensorFlow backend): `batch_size` is the global
    batch, split evenly over `strategy.num_replicas_in_sync` replicas (scale
    it with the number of devices to keep the per-device batch). With
    `MultiWorkerMirroredStrategy` every worker runs this same call with the
    same arguments and `out_dir` on a shared file system; each reads its
    share of every batch (`tf.data` auto-sharding by data, consistent
    because every worker computes the same order), and only the chief
    writes `out_dir` (the other workers write to a temporary directory that
    is deleted). With `TPUStrategy` the last, smaller batches are dropped
    (TPUs need a fixed batch size).

    Args:
        train_pairs: the training pairs: a `SentencePairs` or a tuple
            `(sources, targets)`.
        validation_pairs: the validation pairs (same forms), or `None` to
            select the best epoch on the training loss.
        out_dir: the output directory (created if needed).
        attention: `"bahdanau"`, `"dot"`, `"general"` or `"scaled_dot"`.
        style: `"bahdanau"` or `"luong"` decoder.
        cell: `"lstm"` or `"gru"`.
        input_feeding: Luong style only.
        embedding_dim: size of the token embeddings.
        units: size of the decoder state (even; the encoder has
            `units // 2` per direction).
        dropout: dropout rate in `[0, 1)`.
        epochs: the total number of epochs (also when resuming).
        batch_size: pairs per batch (over all replicas).
        learning_rate: Adam's learning rate.
        max_length: the longest token sequence (`[START]` and `[END]`
            included); longer sentences are truncated; also the most tokens
            the translator generates.
        max_vocab: if given, the size of each vocabulary (rarer words map to
            `[UNK]`).
        seed: the seed of weights, shuffling and dropout.
        resume: `True` to continue an interrupted run from
            `out_dir/backup` (with the processor saved in `out_dir`); with
            `False` a previous backup is discarded and training starts over.
            The data and every setting but `epochs`, `strategy`,
            `backup_every`, `verbose` and `callbacks` must be those of the
            interrupted run. A resumed run may use another strategy (e.g.
            more devices): the order of the data does not depend on it.
        backup_every: back up the training state every this many steps
            (besides the end of each epoch); a kill loses at most this many
            steps. `None` or 0: at the end of each epoch only.
        strategy: a `tf.distribute.Strategy` (TensorFlow backend), e.g.
            `tf.distribute.MirroredStrategy()` for all the GPUs of one
            machine; `None`: the default (one device, or the strategy whose
            scope this is called in).
        mixed_precision: `True` to build the model with the
            `"mixed_bfloat16"` dtype policy (`"mixed_float16"` when a GPU is
            visible): float32 variables, 16-bit computations (the attention
            scores and softmax stay float32). The previous global policy is
            restored afterwards; the saved model keeps its policy, and
            `Translator.load` reads it as it is.
        verbose: `model.fit`'s verbosity: 1 = progress bars, 2 = one line per
            epoch, 0 = silent.
        callbacks: more Keras callbacks for `model.fit`. (Resuming in the
            middle of an epoch calls `fit` twice: once for the rest of that
            epoch, once for the next epochs.)

    Returns:
        The `Translator` with the best weights, as saved in `out_dir`.

    Raises:
        ValueError: on empty or malformed pairs, or invalid options.
        FileNotFoundError: if `resume=True` and `out_dir` holds no
            interrupted run.

    Example:

    >>> from keras_nmt import text
    >>> train, validation, _ = text.split_pairs(text.load_demo_pairs())
    >>> translator = train_translator(
    ...     train, validation, "my-run", epochs=2)  # doctest: +SKIP
    >>> translator.translate(["¿Dónde está Tom?"])  # doctest: +SKIP
    """
    train_sources, train_targets = _sources_targets(train_pairs, "train_pairs")
    if not train_sources:
        raise ValueError("train_translator: `train_pairs` is empty.")
    if validation_pairs is not None:
        validation = _sources_targets(validation_pairs, "validation_pairs")
        if not validation[0]:
            validation = None
    else:
        validation = None
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(
            f"Invalid epochs={epochs!r}; expected an integer >= 1."
        )
    if backup_every is not None and (
        not isinstance(backup_every, int)
        or isinstance(backup_every, bool)
        or backup_every < 0
    ):
        raise ValueError(
            f"Invalid backup_every={backup_every!r}; expected None, 0 (back "
            "up at the end of each epoch only) or a number of steps >= 1."
        )
    if strategy is not None:
        if keras.config.backend() != "tensorflow":
            raise ValueError(
                "train_translator: `strategy` is a tf.distribute strategy "
                "and needs the TensorFlow backend; the Keras backend is "
                f"{keras.config.backend()!r}. Run with "
                "KERAS_BACKEND=tensorflow, or on JAX set "
                "keras.distribution.set_distribution("
                "keras.distribution.DataParallel()) and pass strategy=None."
            )
        if not isinstance(strategy, tf.distribute.Strategy):
            raise ValueError(
                "train_translator: `strategy` must be a "
                "tf.distribute.Strategy (e.g. tf.distribute."
                f"MirroredStrategy()) or None; received "
                f"{type(strategy).__name__}."
            )
    out_dir = pathlib.Path(out_dir)
    backup_dir = out_dir / BACKUP_DIR
    if resume:
        if not backup_dir.is_dir() or not (out_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"Nothing to resume in '{out_dir}': expected an interrupted "
                f"run there (a '{BACKUP_DIR}' directory and {CONFIG_FILE}). "
                "Train without resume to start a new run."
            )
    policy = _mixed_precision_policy() if mixed_precision else None
    arguments = {
        "attention": attention,
        "style": style,
        "cell": cell,
        "input_feeding": input_feeding,
        "embedding_dim": embedding_dim,
        "units": units,
        "dropout": dropout,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "max_vocab": max_vocab,
        "seed": seed,
        "mixed_precision": bool(mixed_precision),
        "train_pairs": len(train_sources),
        "validation_pairs": len(validation[0]) if validation else 0,
    }
    if resume:
        _check_resumable(out_dir, arguments)
        state = _Backup.read(backup_dir)

    # Only the chief writes the run; other workers write to a temporary
    # directory (the same saves, in case they involve collective ops).
    chief = _is_chief(strategy)
    write_dir = (
        out_dir
        if chief
        else pathlib.Path(tempfile.mkdtemp(prefix="keras-nmt-worker-"))
    )
    if chief:
        if not resume and backup_dir.exists():
            shutil.rmtree(backup_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(out_dir)
    previous_policy = keras.config.dtype_policy()
    try:
        keras.utils.set_random_seed(seed)
        if resume:
            processor = TextProcessor.load(out_dir)
        else:
            processor = TextProcessor.from_sentences(
                train_sources,
                train_targets,
                max_tokens=max_vocab,
                max_length=max_length,
            )
        scope = (
            strategy.scope()
            if strategy is not None
            else contextlib.nullcontext()
        )
        with scope:
            if policy is not None:
                keras.config.set_dtype_policy(policy)
            model = build_seq2seq(
                processor.source_vocab_size,
                processor.target_vocab_size,
                embedding_dim=embedding_dim,
                units=units,
                attention=attention,
                style=style,
                cell=cell,
                input_feeding=input_feeding,
                dropout=dropout,
            )
            compile_seq2seq(model, learning_rate=learning_rate)
            keras.config.set_dtype_policy(previous_policy)
            if resume:
                if not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                model.load_weights(state["weights"])
                _assign(model.non_trainable_variables, state["non_trainable"])
        translator = Translator(model, processor, max_length=max_length)
        if not resume:
            # A loadable translator directory from the start (with the
            # untrained model until the first checkpoint replaces it).
            translator.save(write_dir)
            described = {
                **arguments,
                "dtype_policy": policy or previous_policy.name,
                "backend": keras.config.backend(),
            }
            write_text_atomically(
                write_dir / TRAINING_CONFIG_FILE,
                json.dumps(described, indent=2) + "\n",
            )

        is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        data = _EpochData(
            train_sources,
            train_targets,
            processor,
            batch_size=batch_size,
            seed=seed,
            drop_remainder=is_tpu,
        )
        steps = data.steps_per_epoch
        validation_ds = (
            make_dataset(
                validation,
                processor,
                batch_size=batch_size,
                shuffle=False,
                drop_remainder=is_tpu,
            )
            if validation
            else None
        )
        epoch, step = (state["epoch"], state["step"]) if resume else (0, 0)
        if resume and state.get("steps_per_epoch") != steps:
            raise ValueError(
                f"Cannot resume the run in '{out_dir}': its backup has "
                f"{state.get('steps_per_epoch')} steps per epoch, this data "
                f"{steps}. Resume with the same data and batch_size, or "
                "train without resume to start over."
            )
        monitor = "val_loss" if validation else "loss"
        history_path = write_dir / HISTORY_FILE
        rows = []
        if resume and chief:
            rows = _keep_history(history_path, epoch)
        elif resume:
            rows = _read_history(out_dir / HISTORY_FILE)
            rows = [row for row in rows if _epoch_of(row) < epoch]
        backup = _Backup(
            write_dir / BACKUP_DIR, backup_every, steps, resume_at=(epoch, step)
        )
        if resume and step:
            backup.metrics = state["metrics"]
        fit_callbacks = [
            _BestCheckpoint(
                write_dir / MODEL_FILE, monitor, _best_value(rows, monitor)
            ),
            keras.callbacks.CSVLogger(str(history_path), append=resume),
            backup,  # after the CSV row: a resumed epoch is logged once
            *callbacks,
        ]
        if resume and verbose:
            print(
                f"Resuming the run in '{out_dir}' at epoch {epoch + 1}/"
                f"{epochs}, step {step}/{steps}",
                flush=True,
            )
        # (data, first epoch, end epoch, steps per epoch) of each fit: a run
        # resumed mid-epoch first trains the rest of that epoch alone.
        fits = []
        if step and epoch < epochs:
            rest = data.stream(epoch, epoch + 1, skip=step)
            fits.append((rest, epoch, epoch + 1, steps - step))
            epoch += 1
        if epoch < epochs:
            fits.append((data.stream(epoch, epochs), epoch, epochs, steps))
        for stream, first, end, steps_per_epoch in fits:
            _fit(
                model,
                strategy,
                x=stream,
                validation_data=validation_ds,
                initial_epoch=first,
                epochs=end,
                steps_per_epoch=steps_per_epoch,
                callbacks=fit_callbacks,
                verbose=verbose,
                shuffle=False,  # the order is _EpochData's
            )
        completed = {
            "completed_epochs": epochs,
            "steps": int(
                keras.ops.convert_to_numpy(model.optimizer.iterations)
            ),
        }
        model_path = write_dir / MODEL_FILE
        if model_path.is_file():
            model.load_weights(model_path)
        translator.save(write_dir)
        config_path = write_dir / TRAINING_CONFIG_FILE
        if not config_path.is_file():
            shutil.copy(out_dir / TRAINING_CONFIG_FILE, config_path)
        described = json.loads(config_path.read_text(encoding="utf-8"))
        write_text_atomically(
            config_path,
            json.dumps({**described, **completed}, indent=2) + "\n",
        )
        if (write_dir / BACKUP_DIR).exists():
            shutil.rmtree(write_dir / BACKUP_DIR)
        return translator
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


# What must not change when a run is resumed (`epochs` may grow).
_RESUME_KEYS = (
    "attention",
    "style",
    "cell",
    "input_feeding",
    "embedding_dim",
    "units",
    "dropout",
    "batch_size",
    "learning_rate",
    "max_length",
    "max_vocab",
    "seed",
    "mixed_precision",
    "train_pairs",
    "validation_pairs",
)


def _check_resumable(out_dir: pathlib.Path, arguments: dict) -> None:
    """Raise `ValueError` if `arguments` differ from the interrupted run's."""
    path = out_dir / TRAINING_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Nothing to resume in '{out_dir}': {TRAINING_CONFIG_FILE} is "
            "missing. Train without resume to start a new run."
        )
    previous = json.loads(path.read_text(encoding="utf-8"))
    # Runs written before `mixed_precision` was recorded used float32.
    previous.setdefault("mixed_precision", False)
    changed = [
        f"{key}={arguments[key]!r} (the run used {previous.get(key)!r})"
        for key in _RESUME_KEYS
        if previous.get(key) != arguments[key]
    ]
    if changed:
        raise ValueError(
            f"Cannot resume the run in '{out_dir}' with different settings: "
            f"{'; '.join(changed)}. Resume with the same data and settings, "
            "or train without resume to start over."
        )
