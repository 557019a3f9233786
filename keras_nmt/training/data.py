"""The training batches of every epoch: the corpus tokenised once, each
epoch a reordering of it."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_nmt.text import length_buckets
from keras_nmt.text import make_dataset
from keras_nmt.text import tokenize_pairs


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

    def epoch(self, epoch: int) -> tf.data.Dataset:
        rng = np.random.default_rng([self.seed % 2**64, epoch])
        order = rng.permutation(len(self.tokenized))
        return make_dataset(
            self.tokenized.reorder(order),
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
