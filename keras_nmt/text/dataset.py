"""`tf.data` datasets of `((source, target_in), target_out)` batches."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.text.pairs import SentencePairs
from keras_nmt.text.text_processor import PAD_ID
from keras_nmt.text.text_processor import TextProcessor

# Quantiles of the example lengths used as bucket boundaries by "auto".
_AUTO_QUANTILES = np.linspace(0.1, 0.9, 9)


def _sources_and_targets(pairs) -> tuple[list[str], list[str]]:
    if isinstance(pairs, SentencePairs):
        return list(pairs.sources), list(pairs.targets)
    if (
        isinstance(pairs, (tuple, list))
        and len(pairs) == 2
        and not isinstance(pairs[0], str)
        and not isinstance(pairs[1], str)
    ):
        sources, targets = list(pairs[0]), list(pairs[1])
        if len(sources) != len(targets):
            raise ValueError(
                "make_dataset needs as many targets as sources; received "
                f"{len(sources)} sources and {len(targets)} targets."
            )
        return sources, targets
    raise ValueError(
        "make_dataset expects a SentencePairs (e.g. from read_pairs) or a "
        f"tuple (sources, targets) of two lists of strings; received "
        f"{type(pairs).__name__}."
    )


def _auto_boundaries(lengths: np.ndarray) -> list[int]:
    """Bucket upper bounds (exclusive) at length quantiles."""
    quantiles = np.quantile(lengths, _AUTO_QUANTILES, method="higher")
    smallest = int(lengths.min())
    return sorted({int(q) + 1 for q in quantiles if q + 1 > smallest})


def _count_batches(lengths, boundaries, batch_size, drop_remainder) -> int:
    """Batches per epoch, as `bucket_by_sequence_length` / `padded_batch`
    make them (bucket i holds lengths in [boundaries[i-1], boundaries[i]))."""
    if boundaries:
        buckets = np.searchsorted(boundaries, lengths, side="right")
        counts = np.bincount(buckets, minlength=len(boundaries) + 1)
    else:
        counts = np.array([len(lengths)])
    if drop_remainder:
        return int((counts // batch_size).sum())
    return int((-(-counts // batch_size)).sum())


def _check_boundaries(boundaries) -> list[int]:
    boundaries = list(boundaries)
    if (
        not boundaries
        or any(
            isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1
            for b in boundaries
        )
        or any(
            a >= b for a, b in zip(boundaries[:-1], boundaries[1:], strict=True)
        )
    ):
        raise ValueError(
            f"Invalid bucket_boundaries={boundaries!r}; expected 'auto', "
            "None (no bucketing) or a non-empty strictly increasing list of "
            "positive integers (exclusive upper bounds of the length "
            "buckets), e.g. [8, 12, 16]."
        )
    return [int(b) for b in boundaries]


def make_dataset(
    pairs: SentencePairs | tuple[Sequence[str], Sequence[str]],
    processor: TextProcessor,
    *,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
    bucket_boundaries: str | Sequence[int] | None = "auto",
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Make a `tf.data.Dataset` for `model.fit` / `model.evaluate`.

    Tokenises every pair once, eagerly (standardise, look up, truncate to
    `processor.max_length` keeping `[END]`; one warning counts the truncated
    sentences), then builds the pipeline: shuffle (the whole dataset,
    reshuffled each epoch) -> length-bucketed padded batches -> split the
    target -> prefetch.

    The dataset yields `((source, target_in), target_out)`:

    - `source`: int32 `(batch, S)`, `[START] ... [END]`, padded with 0;
    - `target_in`: int32 `(batch, T)`, each target without its last token
      (`[START] w1 ... wn`), the decoder's teacher-forced input;
    - `target_out`: int32 `(batch, T)`, each target without `[START]`
      (`w1 ... wn [END]`), what the decoder should predict.

    The shift is done per sentence before padding, so `target_in` and
    `target_out` have the same length and padding (0) at the same places:
    `target_out[b, t]` is the token that follows `target_in[b, t]`.

    `element_spec` is `((TensorSpec((None, None), tf.int32),
    TensorSpec((None, None), tf.int32)), TensorSpec((None, None),
    tf.int32))`; `S` and `T` are the longest lengths in each batch.

    Each example appears exactly once per epoch, and the dataset knows its
    number of batches (`len(ds)`, so Keras shows epoch progress). With
    bucketing, a batch
    holds sentences of similar length (less padding, faster epochs) and the
    last batch of each bucket may be smaller than `batch_size` (unless
    `drop_remainder=True`).

    Args:
        pairs: a `SentencePairs` or a tuple `(sources, targets)` of lists of
            raw strings.
        processor: the `TextProcessor` holding the vocabularies.
        batch_size: examples per batch.
        shuffle: shuffle the examples, differently each epoch. Use `False`
            for evaluation.
        seed: the shuffle seed; an integer gives the same order on every
            run, `None` a random one.
        bucket_boundaries: `"auto"` (default): buckets at the deciles of
            the example lengths when `shuffle=True`, and no bucketing when
            `shuffle=False`, so evaluation batches keep the input order
            exactly; a strictly increasing list of lengths (exclusive upper
            bounds, in tokens, of `max(len(source), len(target))`); or
            `None`: plain padded batches in (possibly shuffled) order.
        drop_remainder: drop the last, smaller batch(es).

    Returns:
        A `tf.data.Dataset` as described above.

    Raises:
        ValueError: on empty or mismatched pairs, or invalid arguments.

    Example:

    >>> pairs = (["Hola.", "Adiós."], ["Hello.", "Goodbye."])
    >>> processor = TextProcessor.from_sentences(*pairs)
    >>> ds = make_dataset(pairs, processor, batch_size=2, shuffle=False)
    >>> (source, target_in), target_out = next(iter(ds))
    >>> target_in.numpy()[0].tolist(), target_out.numpy()[0].tolist()
    ([2, 6, 4], [6, 4, 3])
    """
    sources, targets = _sources_and_targets(pairs)
    if not sources:
        raise ValueError(
            "make_dataset received no pairs; pass at least one "
            "(source, target) pair."
        )
    if not isinstance(processor, TextProcessor):
        raise ValueError(
            "make_dataset expects a TextProcessor as `processor`; received "
            f"{type(processor).__name__}. Build one with "
            "TextProcessor.from_sentences(train.sources, train.targets)."
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"Invalid batch_size={batch_size!r}; expected a positive integer."
        )
    if isinstance(bucket_boundaries, str):
        if bucket_boundaries != "auto":
            raise ValueError(
                f"Invalid bucket_boundaries={bucket_boundaries!r}; expected "
                "'auto', None or a list of integers."
            )
    elif bucket_boundaries is not None:
        bucket_boundaries = _check_boundaries(bucket_boundaries)

    source_ids, source_cut = processor._tokenize(sources, "source")
    target_ids, target_cut = processor._tokenize(targets, "target")
    if int(source_cut) or int(target_cut):
        warnings.warn(
            f"make_dataset: {int(source_cut)} of {len(sources)} source and "
            f"{int(target_cut)} of {len(targets)} target sentence(s) had "
            f"more than max_length - 2 = {processor.max_length - 2} words "
            f"and were truncated to max_length={processor.max_length} "
            "tokens (ending with [END]). Build the TextProcessor with a "
            "larger max_length to keep them whole.",
            stacklevel=2,
        )

    lengths = np.maximum(
        source_ids.row_lengths().numpy(), target_ids.row_lengths().numpy()
    )
    if bucket_boundaries == "auto":
        bucket_boundaries = _auto_boundaries(lengths) if shuffle else None
    bucket_boundaries = bucket_boundaries or None
    n_batches = _count_batches(
        lengths, bucket_boundaries, int(batch_size), drop_remainder
    )
    if n_batches == 0:
        raise ValueError(
            f"make_dataset: drop_remainder=True with batch_size={batch_size} "
            f"leaves no batch of {len(sources)} pairs; lower batch_size or "
            "set drop_remainder=False."
        )

    # Shuffle row indices, then slice each row out of the flat ids (a
    # dataset of ragged rows cannot be padded-batched directly).
    source_values, source_splits = source_ids.values, source_ids.row_splits
    target_values, target_splits = target_ids.values, target_ids.row_splits

    def row(i):
        # Shift each example before padding, so that target_in is non-zero
        # exactly where target_out is (no [END] left in target_in).
        target = target_values[target_splits[i] : target_splits[i + 1]]
        return (
            source_values[source_splits[i] : source_splits[i + 1]],
            target[:-1],
            target[1:],
        )

    ds = tf.data.Dataset.range(len(sources))
    if shuffle:
        ds = ds.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(row, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padded_shapes = ([None], [None], [None])
    padding_values = (tf.constant(PAD_ID, tf.int32),) * 3
    if bucket_boundaries:
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda s, t_in, t_out: tf.maximum(
                tf.shape(s)[0], tf.shape(t_in)[0] + 1
            ),
            bucket_boundaries=bucket_boundaries,
            bucket_batch_sizes=[int(batch_size)] * (len(bucket_boundaries) + 1),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    else:
        ds = ds.padded_batch(
            int(batch_size),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    # The exact number of batches, so that Keras knows the epoch length
    # (a progress bar, and no "ran out of data" warning after epoch 1).
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    ds = ds.map(
        lambda s, t_in, t_out: ((s, t_in), t_out),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
