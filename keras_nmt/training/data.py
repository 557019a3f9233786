"""The training batches of every epoch: the corpus tokenised once, each
epoch a reordering of it."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import tensorflow as tf

from keras_nmt.text import length_buckets
from keras_nmt.text import make_dataset
from keras_nmt.text import tokenize_pairs
from keras_nmt.text.dataset import as_model_inputs
from keras_nmt.text.dataset import batch_rows
from keras_nmt.text.streaming import buckets_from_histogram
from keras_nmt.text.streaming import count_batches
from keras_nmt.text.streaming import make_streaming_dataset
from keras_nmt.text.streaming import scan_lengths


class EpochData:
    """The training batches of each epoch, in an order that depends only on
    the seed and the epoch number.

    The pairs are tokenised once; epoch `e` is `make_dataset` (length
    buckets at the deciles of the lengths) over the tokenised pairs
    permuted by a NumPy generator seeded with `(seed, e)`. A `tf.data`
    shuffle would draw a new order each time an iterator is created, and
    Keras creates a different number of them on one device, on several
    (the strategy's build step) and when resuming; a fixed order per epoch
    makes all those runs see the same batches, and lets a resumed run skip
    exactly the batches the interrupted one had trained on.

    Args:
        pairs: the training pairs (`SentencePairs` or `(sources, targets)`).
        processor: the `TextProcessor`.
        batch_size: pairs per batch.
        seed: the seed of the orders.
        drop_remainder: drop the smaller last batch of each bucket (TPUs).
    """

    def __init__(self, pairs, processor, batch_size, seed, drop_remainder):
        self.tokenized = tokenize_pairs(pairs, processor)
        self.processor, self.batch_size = processor, batch_size
        self.seed, self.drop_remainder = seed, drop_remainder
        self.boundaries = length_buckets(self.tokenized.lengths) or None
        self.steps_per_epoch = len(self.epoch(0))
        self.size = len(self.tokenized)

    def order(self, epoch: int) -> np.ndarray:
        """The row order of epoch `epoch` (a permutation of the pairs)."""
        rng = np.random.default_rng([self.seed % 2**64, int(epoch)])
        return rng.permutation(len(self.tokenized))

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The batches of one epoch (with its number of batches known)."""
        return make_dataset(
            self.tokenized.reorder(self.order(epoch)),
            self.processor,
            batch_size=self.batch_size,
            shuffle=False,
            bucket_boundaries=self.boundaries,
            drop_remainder=self.drop_remainder,
        )

    def stream(self, first: int, last: int, skip: int = 0) -> tf.data.Dataset:
        """Epochs `first` to `last - 1` one after the other, without the
        first `skip` batches of epoch `first`: the batches of `epoch(e)`
        for each, built lazily, one epoch at a time. (Concatenating
        `epoch(e)` for every epoch held one copy of the corpus per epoch
        in the pipeline: 7 GB and two minutes of set-up for 1,000 epochs
        of 24,000 pairs.)"""
        rows = len(self.tokenized)

        def order(epoch):
            return self.order(int(epoch)).astype(np.int64)

        def batches(epoch):
            indices = tf.numpy_function(order, [epoch], tf.int64)
            indices.set_shape([rows])
            ds = batch_rows(
                tf.data.Dataset.from_tensor_slices(indices),
                self.tokenized,
                batch_size=self.batch_size,
                bucket_boundaries=self.boundaries,
                drop_remainder=self.drop_remainder,
            )
            count = tf.where(epoch == first, skip, 0)
            return ds.skip(tf.cast(count, tf.int64))

        epochs = tf.data.Dataset.range(first, last)
        return as_model_inputs(epochs.flat_map(batches))


class StreamingEpochData(EpochData):
    """`EpochData` for a corpus larger than memory (a `StreamingPairs`).

    One pass at the start tokenises every pair to count them by length
    (`scan_lengths`): the bucket boundaries (the same deciles as
    `EpochData`'s), the number of batches per epoch and the truncation
    warning. Epoch `e` is then read from the files again
    (`make_streaming_dataset`), in an order that depends only on the seed
    and `e` (files in a seeded order, a seeded shuffle buffer of
    `pairs.shuffle_buffer` pairs), so `stream(..., skip)` resumes exactly.

    Args:
        pairs: the training pairs, a `StreamingPairs` (part).
        processor: the `TextProcessor`.
        batch_size: pairs per batch.
        seed: the seed of the orders.
        drop_remainder: drop the smaller last batch of each bucket (TPUs).

    Raises:
        ValueError: if no batch is left (`drop_remainder`).
        DataFormatError: (a `ValueError`) on a malformed line or no pairs.
    """

    def __init__(self, pairs, processor, batch_size, seed, drop_remainder):
        counts = scan_lengths(pairs, processor)
        self.pairs, self.processor, self.batch_size = (
            pairs,
            processor,
            batch_size,
        )
        self.seed, self.drop_remainder = seed, drop_remainder
        self.size = counts.pairs
        self.boundaries = buckets_from_histogram(counts.histogram) or None
        self.steps_per_epoch = count_batches(
            counts.histogram, self.boundaries, batch_size, drop_remainder
        )
        if not self.steps_per_epoch:
            raise ValueError(
                f"drop_remainder with batch_size={batch_size} leaves no batch "
                f"of the {counts.pairs} training pairs; lower batch_size."
            )
        if counts.truncated_sources or counts.truncated_targets:
            warnings.warn(
                f"{counts.truncated_sources} source and "
                f"{counts.truncated_targets} target sentence(s) of "
                f"{counts.pairs} pairs had more than max_length - 2 = "
                f"{processor.max_length - 2} tokens and are truncated to "
                f"max_length={processor.max_length} tokens (ending with "
                "[END]). Use a larger max_length to keep them whole.",
                stacklevel=2,
            )

    def stream(self, first: int, last: int, skip: int = 0) -> tf.data.Dataset:
        """Epochs `first` to `last - 1` one after the other, without the
        first `skip` batches of epoch `first` (each epoch reads the files:
        no copy of the corpus)."""
        parts = [self.epoch(e) for e in range(first, last)]
        parts[0] = parts[0].skip(skip)
        return functools.reduce(lambda a, b: a.concatenate(b), parts)

    def epoch(self, epoch: int) -> tf.data.Dataset:
        return make_streaming_dataset(
            self.pairs,
            self.processor,
            batch_size=self.batch_size,
            seed=self.seed % 2**64,
            epoch=epoch,
            bucket_boundaries=self.boundaries,
            drop_remainder=self.drop_remainder,
            n_batches=self.steps_per_epoch,
        )


# Beyond the last bucket boundary (and without buckets), lengths round up
# to a multiple of this: a few shapes, at most 7 padding positions.
SHAPE_STEP = 8


def padded_to_few_shapes(
    batches: tf.data.Dataset, boundaries
) -> tf.data.Dataset:
    """Model-input batches `((source, target_in), target_out)` padded (with
    0) to a few lengths, so that an XLA-compiled train step compiles a few
    times rather than once per batch shape.

    A batch's length is `max(source length, target_in length + 1)`, the
    length its bucket was chosen by; it is padded to the end of its bucket
    (`boundary - 1`), or beyond the last boundary (or with no boundaries)
    to the next multiple of `SHAPE_STEP`; the source to that length, the
    targets to one less. The source mask and the padding-aware loss ignore
    the added padding: the loss and gradients are those of the unpadded
    batch (up to float rounding).
    """
    ends = tf.constant(
        [boundary - 1 for boundary in (boundaries or [])], tf.int32
    )

    def pad(inputs, target_out):
        source, target_in = inputs
        length = tf.maximum(tf.shape(source)[1], tf.shape(target_in)[1] + 1)
        rounded = -(-length // SHAPE_STEP) * SHAPE_STEP
        # The bucket's end; past the last one (index len(ends)), `rounded`.
        widths = tf.concat([ends, [rounded]], axis=0)
        width = widths[tf.searchsorted(ends, [length], side="left")[0]]

        def to(x, n):
            return tf.pad(x, [[0, 0], [0, n - tf.shape(x)[1]]])

        return (to(source, width), to(target_in, width - 1)), to(
            target_out, width - 1
        )

    return batches.map(
        pad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
