"""`EpochData`: each epoch's batches, and the lazy stream of epochs."""

import pathlib

import numpy as np

from keras_nmt import text
from keras_nmt.training.data import SHAPE_STEP
from keras_nmt.training.data import EpochData
from keras_nmt.training.data import padded_to_few_shapes

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"


def _batches(ds):
    return [
        tuple(np.asarray(t).tolist() for t in (s, t_in, t_out))
        for (s, t_in), t_out in ds
    ]


def test_the_stream_is_the_epochs_one_after_the_other():
    pairs = text.read_pairs(FIXTURE, reverse=True)
    processor = text.TextProcessor.from_sentences(
        pairs.sources, pairs.targets, max_length=16
    )
    data = EpochData(pairs, processor, 16, seed=3, drop_remainder=False)
    epochs = [_batches(data.epoch(e)) for e in range(1, 4)]
    assert epochs[0] != epochs[1]  # a new order each epoch
    assert all(len(e) == data.steps_per_epoch for e in epochs)
    streamed = _batches(data.stream(1, 4, skip=2))
    assert streamed == epochs[0][2:] + epochs[1] + epochs[2]
    # Every pair once per epoch.
    rows = sorted(
        tuple(row[row > 0].tolist())
        for source, _, _ in epochs[1]
        for row in np.asarray(source)
    )
    expected = sorted(
        tuple(r)
        for r in processor.source.tokenize_ragged(pairs.sources).to_list()
    )
    assert rows == expected


def _width(source_length, target_length, boundaries):
    """The padded source length, from the rule as the docstring states it."""
    length = max(source_length, target_length + 1)
    for boundary in boundaries:
        if length < boundary:  # in the bucket that ends below `boundary`
            return boundary - 1
    return -(-length // SHAPE_STEP) * SHAPE_STEP


def test_padded_to_few_shapes_pads_to_the_bucket_ends():
    pairs = text.read_pairs(FIXTURE, reverse=True)
    processor = text.TextProcessor.from_sentences(
        pairs.sources, pairs.targets, max_length=40
    )
    data = EpochData(pairs, processor, 8, seed=1, drop_remainder=False)
    assert data.boundaries  # bucketed
    for boundaries in (data.boundaries, None):
        batches = data.epoch(0)
        padded = padded_to_few_shapes(batches, boundaries)
        widths, lengths_before = set(), set()
        for before, after in zip(
            _batches(batches), _batches(padded), strict=True
        ):
            source, target_in, target_out = (np.array(t) for t in before)
            width = _width(
                source.shape[1], target_in.shape[1], boundaries or []
            )
            expected = [
                np.pad(t, [(0, 0), (0, w - t.shape[1])])
                for t, w in zip(
                    (source, target_in, target_out),
                    (width, width - 1, width - 1),
                    strict=True,
                )
            ]
            for got, want in zip(after, expected, strict=True):
                np.testing.assert_array_equal(np.array(got), want)
            widths.add(width)
            lengths_before.add((source.shape[1], target_in.shape[1]))
        # A few lengths: the bucket ends and, beyond them, multiples of 8.
        ends = {b - 1 for b in boundaries or []}
        assert all(w in ends or w % SHAPE_STEP == 0 for w in widths), widths
        assert len(widths) < len(lengths_before), (widths, lengths_before)
