"""Train a `Translator` on sentence pairs: the workflow behind
`keras-attention train`, the demo and the notebooks.

`tf.data` feeds the model (the text pipeline needs TensorFlow), but the model
itself trains on whichever Keras backend is active: Keras 3 fits any backend
from a `tf.data.Dataset`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import shutil
from collections.abc import Sequence

import keras

from keras_attention.seq2seq import build_seq2seq
from keras_attention.seq2seq import compile_seq2seq
from keras_attention.text import SentencePairs
from keras_attention.text import TextProcessor
from keras_attention.text import make_dataset
from keras_attention.translator import CONFIG_FILE
from keras_attention.translator import MODEL_FILE
from keras_attention.translator import Translator

BACKUP_DIR = "backup"
HISTORY_FILE = "history.csv"
TRAINING_CONFIG_FILE = "training.json"


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
        "keras_attention.text.read_pairs) or a tuple (sources, targets) of "
        f"two lists of strings of equal length; received "
        f"{type(pairs).__name__}."
    )


def _best_val_loss(history_path: pathlib.Path, monitor: str) -> float | None:
    """The best value of `monitor` in a CSVLogger file, if any."""
    if not history_path.is_file():
        return None
    values = []
    with open(history_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                values.append(float(row[monitor]))
            except (KeyError, TypeError, ValueError):
                continue
    values = [v for v in values if math.isfinite(v)]
    return min(values) if values else None


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
    verbose: int | str = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Translator:
    """Train an attention seq2seq model and save it as a `Translator`.

    Steps: seed everything (`keras.utils.set_random_seed(seed)`); build the
    `TextProcessor` on the *training* pairs only; build the model
    (`build_seq2seq`) and compile it (`compile_seq2seq`, Adam); fit on
    `make_dataset` batches with these callbacks:

    - `ModelCheckpoint`: after every epoch whose validation loss (training
      loss without validation pairs) is the best so far, the whole model is
      saved to `out_dir/model.keras`;
    - `BackupAndRestore` under `out_dir/backup`: the state at the end of each
      epoch (weights, optimizer, epoch), so that an interrupted run continues
      where it stopped with `resume=True`; deleted when training completes;
    - `CSVLogger`: the metrics of each epoch in `out_dir/history.csv`.

    Finally the best weights are restored and the translator is saved to
    `out_dir` (see `Translator.save`), so `Translator.load(out_dir)` gives
    the model of the best epoch. The directory is written before the first
    epoch too (with the untrained model, and the training arguments in
    `training.json`), so it is a loadable translator at every moment.

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
        batch_size: pairs per batch.
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
        verbose: `model.fit`'s verbosity: 1 = progress bars, 2 = one line per
            epoch, 0 = silent.
        callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The `Translator` with the best weights, as saved in `out_dir`.

    Raises:
        ValueError: on empty or malformed pairs, or invalid options.
        FileNotFoundError: if `resume=True` and `out_dir` holds no
            interrupted run.

    Example:

    >>> from keras_attention import text
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
    out_dir = pathlib.Path(out_dir)
    backup_dir = out_dir / BACKUP_DIR
    if resume:
        if not backup_dir.is_dir() or not (out_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"Nothing to resume in '{out_dir}': expected an interrupted "
                f"run there (a '{BACKUP_DIR}' directory and {CONFIG_FILE}). "
                "Train without resume to start a new run."
            )
    elif backup_dir.exists():
        shutil.rmtree(backup_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
        "train_pairs": len(train_sources),
        "validation_pairs": len(validation[0]) if validation else 0,
    }
    if resume:
        _check_resumable(out_dir, arguments)

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
    translator = Translator(model, processor, max_length=max_length)
    if not resume:
        # A loadable translator directory from the start (with the untrained
        # model until the first checkpoint replaces model.keras).
        translator.save(out_dir)
        described = {**arguments, "backend": keras.config.backend()}
        (out_dir / TRAINING_CONFIG_FILE).write_text(
            json.dumps(described, indent=2) + "\n", encoding="utf-8"
        )

    train_ds = make_dataset(
        (train_sources, train_targets),
        processor,
        batch_size=batch_size,
        seed=seed,
    )
    validation_ds = (
        make_dataset(
            validation, processor, batch_size=batch_size, shuffle=False
        )
        if validation
        else None
    )
    monitor = "val_loss" if validation else "loss"
    best = _best_val_loss(out_dir / HISTORY_FILE, monitor) if resume else None
    model_path = out_dir / MODEL_FILE
    fit_callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.ModelCheckpoint(
            str(model_path),
            monitor=monitor,
            mode="min",
            save_best_only=True,
            initial_value_threshold=best,
        ),
        keras.callbacks.CSVLogger(str(out_dir / HISTORY_FILE), append=resume),
        *callbacks,
    ]
    model.fit(
        train_ds,
        validation_data=validation_ds,
        epochs=epochs,
        callbacks=fit_callbacks,
        verbose=verbose,
        shuffle=False,  # make_dataset shuffles, every epoch
    )
    if model_path.is_file():
        model.load_weights(model_path)
    translator.save(out_dir)
    return translator


# What must not change when a run is resumed (`epochs` may grow).
_RESUME_KEYS = (
    "attention",
    "style",
    "cell",
    "input_feeding",
    "embedding_dim",
    "units",
    "max_length",
    "max_vocab",
    "seed",
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
