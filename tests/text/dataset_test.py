import collections
import pathlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.text.dataset import make_dataset
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.text_processor import TextProcessor

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"
INT_SPEC = tf.TensorSpec(shape=(None, None), dtype=tf.int32)


@pytest.fixture(scope="module")
def pairs():
    return read_pairs(FIXTURE, reverse=True)


@pytest.fixture(scope="module")
def processor(pairs):
    return TextProcessor.from_sentences(
        pairs.sources, pairs.targets, max_length=24
    )


def unpad(row):
    row = list(np.asarray(row))
    while row and row[-1] == 0:
        row.pop()
    return tuple(row)


def collect(ds):
    """All examples of one epoch as (source, target_in, target_out) tuples."""
    examples = []
    for (source, target_in), target_out in ds:
        for s, ti, to in zip(
            source.numpy(), target_in.numpy(), target_out.numpy(), strict=True
        ):
            examples.append((unpad(s), unpad(ti), unpad(to)))
    return examples


def test_element_spec(pairs, processor):
    ds = make_dataset(pairs, processor, batch_size=16, seed=0)
    assert ds.element_spec == ((INT_SPEC, INT_SPEC), INT_SPEC)


def test_in_order_batches_match_the_tokenised_pairs(pairs, processor):
    ds = make_dataset(pairs, processor, batch_size=32, shuffle=False)
    sources = processor.tokenize_source(pairs.sources).numpy()
    targets = processor.tokenize_target(pairs.targets).numpy()
    offset = 0
    for (source, target_in), target_out in ds:
        n = source.shape[0]
        assert target_in.shape == target_out.shape
        assert source.dtype == target_in.dtype == target_out.dtype == tf.int32
        for i in range(n):
            expected_source = unpad(sources[offset + i])
            expected_target = unpad(targets[offset + i])
            assert unpad(source[i]) == expected_source
            # target_in drops the last token ([END]), target_out [START].
            assert unpad(target_in[i]) == expected_target[:-1]
            assert unpad(target_out[i]) == expected_target[1:]
            assert expected_target[0] == processor.start_id
            assert expected_target[-1] == processor.end_id
        offset += n
    assert offset == len(pairs)


def test_padding_is_zero_and_batches_are_tight(pairs, processor):
    ds = make_dataset(pairs, processor, batch_size=50, shuffle=False)
    for (source, _), target_out in ds:
        for tensor in (source, target_out):
            array = tensor.numpy()
            lengths = (array != 0).sum(axis=1)
            # Non-zero ids form a prefix; zeros only after it.
            for row, length in zip(array, lengths, strict=True):
                assert (row[:length] != 0).all()
                assert (row[length:] == 0).all()
            assert lengths.max() == array.shape[1]  # padded to the longest


def test_bucketing_keeps_every_example_exactly_once(pairs, processor):
    reference = collect(
        make_dataset(pairs, processor, batch_size=7, shuffle=False)
    )
    assert len(reference) == len(pairs)
    ds = make_dataset(
        pairs,
        processor,
        batch_size=7,
        seed=3,
        bucket_boundaries=[6, 8, 10, 12],
    )
    assert collections.Counter(collect(ds)) == collections.Counter(reference)
    auto = make_dataset(pairs, processor, batch_size=7, seed=3)
    assert collections.Counter(collect(auto)) == collections.Counter(reference)


def test_bucketed_batches_hold_similar_lengths(pairs, processor):
    boundaries = [7, 9, 11]
    ds = make_dataset(
        pairs, processor, batch_size=8, seed=0, bucket_boundaries=boundaries
    )
    for (source, target_in), _ in ds:
        # Example length = max(len(source), len(target)), target = in + 1.
        lengths = np.maximum(
            (source.numpy() != 0).sum(1), (target_in.numpy() != 0).sum(1) + 1
        )
        buckets = set(np.searchsorted(boundaries, lengths, side="right"))
        assert len(buckets) == 1


def test_shuffle_seed_and_epochs(pairs, processor):
    def first_sources(ds):
        return [unpad(s) for (s, _), _ in ds.take(3) for s in s.numpy()]

    a = make_dataset(pairs, processor, batch_size=8, seed=5)
    b = make_dataset(pairs, processor, batch_size=8, seed=5)
    c = make_dataset(pairs, processor, batch_size=8, seed=6)
    assert first_sources(a) == first_sources(b)
    assert first_sources(a) != first_sources(c)
    # Reshuffled each epoch.
    assert first_sources(a) != first_sources(a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shuffle": False},
        {"seed": 0},
        {"seed": 0, "bucket_boundaries": [6, 8, 10, 12]},
        {"seed": 0, "bucket_boundaries": None},
        {"seed": 0, "drop_remainder": True},
        {"shuffle": False, "bucket_boundaries": [9], "drop_remainder": True},
    ],
)
def test_cardinality_is_exact(pairs, processor, kwargs):
    ds = make_dataset(pairs, processor, batch_size=9, **kwargs)
    assert len(ds) == sum(1 for _ in ds)


def test_drop_remainder(pairs, processor):
    ds = make_dataset(
        pairs, processor, batch_size=64, shuffle=False, drop_remainder=True
    )
    sizes = [s.shape[0] for (s, _), _ in ds]
    assert sizes == [64] * (len(pairs) // 64)


def test_accepts_a_tuple_of_lists():
    sources, targets = ["uno dos", "tres"], ["one two", "three"]
    processor = TextProcessor.from_sentences(sources, targets)
    ds = make_dataset((sources, targets), processor, shuffle=False)
    (source, target_in), target_out = next(iter(ds))
    np.testing.assert_array_equal(
        source.numpy(), processor.tokenize_source(sources).numpy()
    )
    # "one two" -> [START] one two [END]; "three" -> [START] three [END].
    one, two, three = (
        processor.target_vocabulary.index(w) for w in ("one", "two", "three")
    )
    np.testing.assert_array_equal(
        target_in.numpy(), [[2, one, two], [2, three, 0]]
    )
    np.testing.assert_array_equal(
        target_out.numpy(), [[one, two, 3], [three, 3, 0]]
    )


def test_target_in_and_out_share_their_padding(pairs, processor):
    ds = make_dataset(pairs, processor, batch_size=16, seed=1)
    for (_, target_in), target_out in ds:
        np.testing.assert_array_equal(
            target_in.numpy() != 0, target_out.numpy() != 0
        )
        ends = (target_out.numpy() == processor.end_id).sum(axis=1)
        assert (ends == 1).all()
        assert (target_in.numpy() != processor.end_id).all()


def test_truncation_warns_once_with_counts():
    sources = ["a b c d e f g h", "a", "a b c d"]
    targets = ["x", "x y z w v u t", "x"]
    processor = TextProcessor.from_sentences(sources, targets, max_length=6)
    with pytest.warns(UserWarning) as record:
        ds = make_dataset((sources, targets), processor, shuffle=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert "1 of 3 source and 1 of 3 target sentence(s)" in message
    (source, target_in), target_out = next(iter(ds))
    assert source.shape == (3, 6)
    assert source.numpy()[0, -1] == processor.end_id
    assert target_out.numpy()[1, -1] == processor.end_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_dataset((sources[1:2], targets[:1]), processor)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"bucket_boundaries": "yes"}, "bucket_boundaries='yes'"),
        ({"bucket_boundaries": [5, 5]}, "strictly increasing"),
        ({"bucket_boundaries": []}, "strictly increasing"),
    ],
)
def test_invalid_arguments(pairs, processor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(pairs, processor, **kwargs)


def test_invalid_inputs(processor):
    with pytest.raises(ValueError, match="2 sources and 1 targets"):
        make_dataset((["a", "b"], ["c"]), processor)
    with pytest.raises(ValueError, match="received no pairs"):
        make_dataset(([], []), processor)
    with pytest.raises(ValueError, match="received str"):
        make_dataset("a\tb", processor)
    with pytest.raises(ValueError, match="expects a TextProcessor"):
        make_dataset((["a"], ["b"]), processor=None)
    with pytest.raises(ValueError, match="leaves no batch"):
        make_dataset(
            (["a"], ["b"]), processor, batch_size=2, drop_remainder=True
        )


def test_trains_a_keras_model(pairs, processor):
    keras.utils.clear_session()
    source = keras.Input((None,), dtype="int32")
    target_in = keras.Input((None,), dtype="int32")
    encoded = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(processor.source_vocab_size, 8)(source)
    )
    decoded = keras.layers.Embedding(processor.target_vocab_size, 8)(target_in)
    hidden = keras.layers.Add()(
        [decoded, keras.layers.RepeatVector(1)(encoded)]
    )
    logits = keras.layers.Dense(processor.target_vocab_size)(hidden)
    model = keras.Model((source, target_in), logits)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ds = make_dataset(pairs, processor, batch_size=32, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    assert not [w for w in record if "ran out of data" in str(w.message)]
    assert np.isfinite(history.history["loss"]).all()
