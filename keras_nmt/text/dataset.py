"""`tf.data` datasets of `((source, target_in), target_out)` batches."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_nmt.text.pairs import SentencePairs
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.vocabulary import PAD_ID

# Quantiles of the example lengths used as bucket boundaries by "auto".
_AUTO_QUANTILES = np.linspace(0.1, 0.9, 9)


class TokenizedPairs(NamedTuple):
    """Sentence pairs as token ids, from `tokenize_pairs`.

    Tokenise a corpus once, then `reorder` it (cheap: a gather of rows) to
    feed `make_dataset` a new order each epoch without tokenising again.
    `len(tokenized)` is the number of pairs.

    Attributes:
        source_ids: int32 `tf.RaggedTensor` `(pairs, None)`, each row
            `[START] ... [END]`.
        target_ids: int32 `tf.RaggedTensor` `(pairs, None)`, likewise.
    """

    source_ids: tf.RaggedTensor
    target_ids: tf.RaggedTensor

    def __len__(self) -> int:
        return int(self.source_ids.nrows())

    @property
    def lengths(self) -> np.ndarray:
        """The length of each pair, `max(len(source), len(target))` in
        tokens (what `make_dataset` buckets by), as a NumPy int array."""
        return np.maximum(
            self.source_ids.row_lengths().numpy(),
            self.target_ids.row_lengths().numpy(),
        )

    def reorder(self, order: np.ndarray) -> TokenizedPairs:
        """The pairs at the indices `order` (a 1-D NumPy int array), in
        that order.

        Raises:
            ValueError: if `order` is not 1-D integers in `[0, len(self))`.
        """
        order = np.asarray(order)
        n = len(self)
        if order.ndim != 1 or not (
            np.issubdtype(order.dtype, np.integer) or order.size == 0
        ):
            raise ValueError(
                "reorder expects a 1-D array of integer indices; received "
                f"dtype {order.dtype} and shape {order.shape}."
            )
        if order.size and (order.min() < 0 or order.max() >= n):
            raise ValueError(
                f"reorder expects indices in [0, {n}) (the number of "
                f"pairs); received indices from {order.min()} to "
                f"{order.max()}."
            )
        order = tf.constant(order, dtype=tf.int64)
        return TokenizedPairs(
            tf.gather(self.source_ids, order),
            tf.gather(self.target_ids, order),
        )


def _sources_and_targets(pairs, where) -> tuple[list[str], list[str]]:
    if isinstance(pairs, SentencePairs):
        return list(pairs.sources), list(pairs.targets)
    if (
        isinstance(pairs, (tuple, list))
        and not isinstance(pairs, TokenizedPairs)
        and len(pairs) == 2
        and not isinstance(pairs[0], str)
        and not isinstance(pairs[1], str)
    ):
        sources, targets = list(pairs[0]), list(pairs[1])
        if len(sources) != len(targets):
            raise ValueError(
                f"{where} needs as many targets as sources; received "
                f"{len(sources)} sources and {len(targets)} targets."
            )
        return sources, targets
    also = ", a TokenizedPairs" if where == "make_dataset" else ""
    raise ValueError(
        f"{where} expects a SentencePairs (e.g. from read_pairs){also} or "
        "a tuple (sources, targets) of two lists of strings; received "
        f"{type(pairs).__name__}."
    )


def _check_processor(processor, where) -> None:
    if not isinstance(processor, TextProcessor):
        raise ValueError(
            f"{where} expects a TextProcessor as `processor`; received "
            f"{type(processor).__name__}. Build one with "
            "TextProcessor.from_sentences(train.sources, train.targets)."
        )


def _check_tokenized(pairs: TokenizedPairs) -> None:
    for field, ids in (
        ("source_ids", pairs.source_ids),
        ("target_ids", pairs.target_ids),
    ):
        if (
            not isinstance(ids, tf.RaggedTensor)
            or ids.dtype != tf.int32
            or ids.ragged_rank != 1
            or ids.shape.rank != 2
        ):
            raise ValueError(
                f"make_dataset expects TokenizedPairs.{field} to be an "
                "int32 tf.RaggedTensor of shape (pairs, None); received "
                f"{ids!r:.80}. Make it with tokenize_pairs."
            )
    n_sources = int(pairs.source_ids.nrows())
    n_targets = int(pairs.target_ids.nrows())
    if n_sources != n_targets:
        raise ValueError(
            "make_dataset needs as many targets as sources; received "
            f"{n_sources} sources and {n_targets} targets."
        )


def _tokenize(sources, targets, processor, stacklevel) -> TokenizedPairs:
    source_ids, source_cut = processor.source.tokenize_counting(sources)
    target_ids, target_cut = processor.target.tokenize_counting(targets)
    if int(source_cut) or int(target_cut):
        warnings.warn(
            f"{int(source_cut)} of {len(sources)} source and "
            f"{int(target_cut)} of {len(targets)} target sentence(s) had "
            f"more than max_length - 2 = {processor.max_length - 2} words "
            f"and were truncated to max_length={processor.max_length} "
            "tokens (ending with [END]). Build the TextProcessor with a "
            "larger max_length to keep them whole.",
            stacklevel=stacklevel + 1,
        )
    return TokenizedPairs(source_ids, target_ids)


def tokenize_pairs(
    pairs: SentencePairs | tuple[Sequence[str], Sequence[str]],
    processor: TextProcessor,
) -> TokenizedPairs:
    """Tokenise sentence pairs once, for `make_dataset`.

    Standardises and looks up every sentence with `processor.source` and
    `processor.target`, truncating to `processor.max_length` (keeping
    `[END]`); one warning counts the truncated sentences.

    Args:
        pairs: a `SentencePairs` or a tuple `(sources, targets)` of lists of
            raw strings.
        processor: the `TextProcessor` holding the vocabularies.

    Returns:
        A `TokenizedPairs`.

    Raises:
        ValueError: on mismatched pairs or a wrong `processor`.

    Example:

    >>> pairs = (["Hola.", "Adiós."], ["Hello.", "Goodbye."])
    >>> processor = TextProcessor.from_sentences(*pairs)
    >>> tokenized = tokenize_pairs(pairs, processor)
    >>> tokenized.target_ids.to_list(), tokenized.lengths.tolist()
    ([[2, 6, 4, 3], [2, 5, 4, 3]], [4, 4])
    """
    if isinstance(pairs, TokenizedPairs):
        raise ValueError(
            "tokenize_pairs received a TokenizedPairs, which is already "
            "tokenised; pass it to make_dataset directly."
        )
    sources, targets = _sources_and_targets(pairs, "tokenize_pairs")
    _check_processor(processor, "tokenize_pairs")
    return _tokenize(sources, targets, processor, stacklevel=2)


def length_buckets(lengths: np.ndarray) -> list[int]:
    """Bucket boundaries at the deciles of example lengths.

    What `make_dataset(..., bucket_boundaries="auto")` uses when shuffling;
    compute it once (e.g. from `TokenizedPairs.lengths`) to give every
    epoch the same buckets.

    Args:
        lengths: a non-empty 1-D array of example lengths (in tokens).

    Returns:
        Strictly increasing exclusive upper bounds (one more than each
        distinct decile), each above the smallest length.

    Raises:
        ValueError: on an empty or non-1-D `lengths`.

    Example:

    >>> length_buckets(np.array([3, 3, 4, 4, 5, 9]))
    [4, 5, 6, 10]
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(
            "length_buckets expects a non-empty 1-D array of lengths; "
            f"received shape {lengths.shape}."
        )
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
    pairs: (
        SentencePairs | tuple[Sequence[str], Sequence[str]] | TokenizedPairs
    ),
    processor: TextProcessor,
    *,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
    bucket_boundaries: str | Sequence[int] | None = "auto",
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Make a `tf.data.Dataset` for `model.fit` / `model.evaluate`.

    Tokenises every pair once, eagerly, as `tokenize_pairs` does
    (standardise, look up, truncate to `processor.max_length` keeping
    `[END]`; one warning counts the truncated sentences), unless `pairs` is
    already a `TokenizedPairs`; then builds the pipeline: shuffle (the whole
    dataset, reshuffled each epoch) -> length-bucketed padded batches ->
    split the target -> prefetch.

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
    bucketing, a batch holds sentences of similar length (less padding,
    faster epochs) and the last batch of each bucket may be smaller than
    `batch_size` (unless `drop_remainder=True`).

    Args:
        pairs: a `SentencePairs`, a tuple `(sources, targets)` of lists of
            raw strings, or a `TokenizedPairs` (from `tokenize_pairs`, e.g.
            `reorder`ed for an epoch), used as it is.
        processor: the `TextProcessor` holding the vocabularies (the one
            that made a `TokenizedPairs`).
        batch_size: examples per batch.
        shuffle: shuffle the examples, differently each epoch. Use `False`
            for evaluation.
        seed: the shuffle seed; an integer gives the same order on every
            run, `None` a random one.
        bucket_boundaries: `"auto"` (default): buckets at the deciles of
            the example lengths (`length_buckets`) when `shuffle=True`, and
            no bucketing when `shuffle=False`, so evaluation batches keep
            the input order exactly; a strictly increasing list of
            lengths (exclusive upper bounds, in tokens, of
            `max(len(source), len(target))`); or `None`: plain padded
            batches in (possibly shuffled) order.
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
    if isinstance(pairs, TokenizedPairs):
        _check_tokenized(pairs)
        sources = targets = None
        n_pairs = len(pairs)
    else:
        sources, targets = _sources_and_targets(pairs, "make_dataset")
        n_pairs = len(sources)
    if not n_pairs:
        raise ValueError(
            "make_dataset received no pairs; pass at least one "
            "(source, target) pair."
        )
    _check_processor(processor, "make_dataset")
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

    if sources is not None:
        pairs = _tokenize(sources, targets, processor, stacklevel=2)
    lengths = pairs.lengths
    if bucket_boundaries == "auto":
        bucket_boundaries = length_buckets(lengths) if shuffle else None
    bucket_boundaries = bucket_boundaries or None
    n_batches = _count_batches(
        lengths, bucket_boundaries, int(batch_size), drop_remainder
    )
    if n_batches == 0:
        raise ValueError(
            f"make_dataset: drop_remainder=True with batch_size={batch_size} "
            f"leaves no batch of {n_pairs} pairs; lower batch_size or "
            "set drop_remainder=False."
        )

    ds = tf.data.Dataset.range(n_pairs)
    if shuffle:
        ds = ds.shuffle(n_pairs, seed=seed, reshuffle_each_iteration=True)
    ds = batch_rows(
        ds,
        pairs,
        batch_size=int(batch_size),
        bucket_boundaries=bucket_boundaries,
        drop_remainder=drop_remainder,
    )
    # The exact number of batches, so that Keras knows the epoch length
    # (a progress bar, and no "ran out of data" warning after epoch 1).
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return as_model_inputs(ds)


def batch_rows(
    rows: tf.data.Dataset,
    pairs: TokenizedPairs,
    *,
    batch_size: int,
    bucket_boundaries: Sequence[int] | None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """The padded batches `(source, target_in, target_out)` of the pairs at
    the row indices that `rows` yields, in that order (length-bucketed when
    `bucket_boundaries` is given), as `make_dataset` batches them."""
    # Slice each row out of the flat ids (a dataset of ragged rows cannot
    # be padded-batched directly).
    source_ids, target_ids = pairs
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

    ds = rows.map(row, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padded_shapes = ([None], [None], [None])
    padding_values = (tf.constant(PAD_ID, tf.int32),) * 3
    if bucket_boundaries:
        return ds.bucket_by_sequence_length(
            element_length_func=lambda s, t_in, t_out: tf.maximum(
                tf.shape(s)[0], tf.shape(t_in)[0] + 1
            ),
            bucket_boundaries=bucket_boundaries,
            bucket_batch_sizes=[batch_size] * (len(bucket_boundaries) + 1),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    return ds.padded_batch(
        batch_size,
        padded_shapes=padded_shapes,
        padding_values=padding_values,
        drop_remainder=drop_remainder,
    )


def as_model_inputs(batches: tf.data.Dataset) -> tf.data.Dataset:
    """`(source, target_in, target_out)` batches as `((source, target_in),
    target_out)`, prefetched: what `model.fit` takes."""
    ds = batches.map(
        lambda s, t_in, t_out: ((s, t_in), t_out),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
