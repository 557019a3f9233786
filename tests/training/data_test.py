"""`EpochData`: each epoch's batches, and the lazy stream of epochs."""

import pathlib

import numpy as np

from keras_nmt import text
from keras_nmt.training.data import EpochData

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
