import collections
import pathlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt import text
from keras_nmt.text.dataset import TokenizedPairs
from keras_nmt.text.dataset import length_buckets
from keras_nmt.text.dataset import make_dataset
from keras_nmt.text.dataset import tokenize_pairs
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.vocabulary import Vocabulary

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


def batches(ds):
    """Every batch of one epoch as NumPy arrays."""
    return [(s.numpy(), t_in.numpy(), t_out.numpy()) for (s, t_in), t_out in ds]


def assert_same_batches(a, b):
    a, b = batches(a), batches(b)
    assert len(a) == len(b)
    assert sum(x.shape[0] for x, _, _ in a) > 0
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


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
    sources = processor.source.tokenize(pairs.sources).numpy()
    targets = processor.target.tokenize(pairs.targets).numpy()
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
        source.numpy(), processor.source.tokenize(sources).numpy()
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
    assert record[0].filename == __file__  # points at the caller
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
    with pytest.raises(ValueError, match=", a TokenizedPairs or a tuple"):
        make_dataset(["a"], processor)
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


# --- tokenise once: TokenizedPairs -------------------------------------------


def small_processor(max_length=8):
    reserved = ["", "[UNK]", "[START]", "[END]"]
    return TextProcessor(
        reserved + [".", "hola", "chao"],  # ids 4, 5, 6
        reserved + [".", "hello", "goodbye", "my", "friend"],  # ids 4-8
        max_length=max_length,
    )


def test_tokenize_pairs_hand_computed():
    tokenized = tokenize_pairs(
        (["Hola.", "chao hola zzz"], ["Goodbye, my friend.", "hello"]),
        small_processor(),
    )
    assert isinstance(tokenized, TokenizedPairs)
    assert len(tokenized) == 2
    assert tokenized.source_ids.dtype == tf.int32
    assert tokenized.target_ids.dtype == tf.int32
    assert tokenized.source_ids.to_list() == [[2, 5, 4, 3], [2, 6, 5, 1, 3]]
    # "," is not in the target vocabulary: [UNK].
    assert tokenized.target_ids.to_list() == [[2, 6, 1, 7, 8, 4, 3], [2, 5, 3]]
    lengths = tokenized.lengths
    assert isinstance(lengths, np.ndarray)
    assert lengths.tolist() == [7, 5]  # max(source, target) per pair


def test_tokenize_pairs_equals_each_vocabulary(pairs, processor):
    tokenized = tokenize_pairs(pairs, processor)
    assert len(tokenized) == len(pairs)
    assert tokenized.source_ids.to_list() == (
        processor.source.tokenize_ragged(pairs.sources).to_list()
    )
    assert tokenized.target_ids.to_list() == (
        processor.target.tokenize_ragged(pairs.targets).to_list()
    )
    expected = [
        max(len(s), len(t))
        for s, t in zip(
            tokenized.source_ids.to_list(),
            tokenized.target_ids.to_list(),
            strict=True,
        )
    ]
    assert tokenized.lengths.tolist() == expected


def test_tokenize_pairs_warns_once_with_counts():
    processor = small_processor(max_length=4)
    with pytest.warns(UserWarning) as record:
        tokenized = tokenize_pairs(
            (["hola hola hola", "hola"], ["hello", "my my my"]), processor
        )
    assert len(record) == 1
    assert record[0].filename == __file__
    assert "1 of 2 source and 1 of 2 target sentence(s)" in str(
        record[0].message
    )
    assert tokenized.source_ids.to_list() == [[2, 5, 5, 3], [2, 5, 3]]
    assert tokenized.target_ids.to_list() == [[2, 5, 3], [2, 7, 7, 3]]


def test_tokenize_pairs_invalid_inputs():
    processor = small_processor()
    with pytest.raises(ValueError, match="tokenize_pairs needs as many"):
        tokenize_pairs((["a", "b"], ["c"]), processor)
    with pytest.raises(ValueError, match="tokenize_pairs expects a Text"):
        tokenize_pairs((["a"], ["b"]), None)
    tokenized = tokenize_pairs((["a"], ["b"]), processor)
    with pytest.raises(ValueError, match="already tokenised"):
        tokenize_pairs(tokenized, processor)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 32, "shuffle": False},
        {"batch_size": 9, "shuffle": False, "drop_remainder": True},
        {"batch_size": 7, "seed": 3, "bucket_boundaries": [6, 8, 10, 12]},
        {"batch_size": 7, "seed": 3},  # "auto" buckets
        {"batch_size": 16, "seed": 1, "bucket_boundaries": None},
    ],
)
def test_tokenized_pairs_give_the_same_batches(pairs, processor, kwargs):
    tokenized = tokenize_pairs(pairs, processor)
    from_text = make_dataset(pairs, processor, **kwargs)
    from_ids = make_dataset(tokenized, processor, **kwargs)
    assert from_ids.element_spec == from_text.element_spec
    assert len(from_ids) == len(from_text)
    # One epoch of each (a shuffled dataset reshuffles on every iteration).
    assert_same_batches(from_ids, from_text)


def test_make_dataset_on_tokenized_pairs_does_not_tokenize(
    pairs, processor, monkeypatch
):
    calls = []
    original = Vocabulary.tokenize_counting

    def counting(self, strings):
        calls.append(self.name)
        return original(self, strings)

    monkeypatch.setattr(Vocabulary, "tokenize_counting", counting)
    tokenized = tokenize_pairs(pairs, processor)
    assert calls == ["source", "target"]  # each side once
    make_dataset(pairs, processor, batch_size=8, shuffle=False)
    assert calls == ["source", "target"] * 2

    def fail(self, strings):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(Vocabulary, "tokenize_counting", fail)
    monkeypatch.setattr(Vocabulary, "tokenize_ragged", fail)
    monkeypatch.setattr(Vocabulary, "tokenize", fail)
    rng = np.random.default_rng(0)
    for _ in range(3):  # three "epochs"
        ds = make_dataset(
            tokenized.reorder(rng.permutation(len(tokenized))),
            processor,
            batch_size=8,
            shuffle=False,
        )
        assert sum(1 for _ in ds) == len(ds)


def test_reorder_equals_tokenizing_the_reordered_pairs(pairs, processor):
    tokenized = tokenize_pairs(pairs, processor)
    for order in (
        np.random.default_rng(0).permutation(len(pairs)),
        np.array([5, 0, 5, 3]),  # a subset, with a repeat
        np.arange(len(pairs))[::-1].astype(np.int32),
    ):
        reordered = tokenized.reorder(order)
        expected = tokenize_pairs(pairs.take(order.tolist()), processor)
        assert isinstance(reordered, TokenizedPairs)
        assert len(reordered) == len(order)
        assert reordered.source_ids.to_list() == expected.source_ids.to_list()
        assert reordered.target_ids.to_list() == expected.target_ids.to_list()
        np.testing.assert_array_equal(reordered.lengths, expected.lengths)
        np.testing.assert_array_equal(
            reordered.lengths, tokenized.lengths[order]
        )


def test_epochs_of_reordered_ids_match_epochs_of_reordered_text(
    pairs, processor
):
    # How a training loop uses it: buckets fixed once, one order per epoch.
    tokenized = tokenize_pairs(pairs, processor)
    boundaries = length_buckets(tokenized.lengths)
    assert boundaries
    for epoch in range(2):
        order = np.random.default_rng([0, epoch]).permutation(len(pairs))
        kwargs = {
            "batch_size": 8,
            "shuffle": False,
            "bucket_boundaries": boundaries,
        }
        assert_same_batches(
            make_dataset(tokenized.reorder(order), processor, **kwargs),
            make_dataset(pairs.take(order.tolist()), processor, **kwargs),
        )


def test_reorder_rejects_bad_orders(pairs, processor):
    tokenized = tokenize_pairs(pairs, processor)
    n = len(pairs)
    with pytest.raises(ValueError, match=rf"indices in \[0, {n}\)"):
        tokenized.reorder(np.array([0, n]))
    with pytest.raises(ValueError, match="from -1 to 0"):
        tokenized.reorder(np.array([-1, 0]))
    with pytest.raises(ValueError, match="1-D array of integer"):
        tokenized.reorder(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="1-D array of integer"):
        tokenized.reorder(np.array([0.0, 1.0]))
    empty = tokenized.reorder(np.array([], dtype=np.int64))
    assert len(empty) == 0
    with pytest.raises(ValueError, match="received no pairs"):
        make_dataset(empty, processor)


def test_make_dataset_on_tokenized_pairs_does_not_warn():
    processor = small_processor(max_length=4)
    with pytest.warns(UserWarning):
        tokenized = tokenize_pairs((["hola hola hola"], ["hello"]), processor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = make_dataset(tokenized, processor, shuffle=False)
    (source, target_in), target_out = next(iter(ds))
    np.testing.assert_array_equal(source.numpy(), [[2, 5, 5, 3]])
    np.testing.assert_array_equal(target_in.numpy(), [[2, 5]])
    np.testing.assert_array_equal(target_out.numpy(), [[5, 3]])


def test_make_dataset_rejects_malformed_tokenized_pairs(processor):
    ragged = tf.ragged.constant([[2, 3], [2, 4, 3]], dtype=tf.int32)
    with pytest.raises(ValueError, match="2 sources and 1 targets"):
        make_dataset(TokenizedPairs(ragged, ragged[:1]), processor)
    with pytest.raises(ValueError, match="TokenizedPairs.target_ids"):
        make_dataset(TokenizedPairs(ragged, ragged.to_tensor()), processor)
    with pytest.raises(ValueError, match="TokenizedPairs.source_ids"):
        make_dataset(
            TokenizedPairs(tf.cast(ragged, tf.int64), ragged), processor
        )


# --- length_buckets ----------------------------------------------------------


def test_length_buckets_hand_computed():
    # Deciles with method="higher" on 6 sorted lengths pick the elements at
    # ceil(q * 5), q = 0.1 ... 0.9: indices 1, 1, 2, 2, 3, 3, 4, 4, 5,
    # i.e. lengths 3, 4, 4, 5, 9 -> exclusive bounds 4, 5, 6, 10.
    assert length_buckets(np.array([3, 3, 4, 4, 5, 9])) == [4, 5, 6, 10]
    assert length_buckets(np.array([9, 5, 4, 4, 3, 3])) == [4, 5, 6, 10]
    # 1 ... 10: indices ceil(q * 9) = 1 ... 9 -> lengths 2 ... 10.
    assert length_buckets(np.arange(1, 11)) == list(range(3, 12))
    # Equal lengths: one bound, above them (a bound at or below the
    # smallest length would make a bucket that holds nothing).
    assert length_buckets(np.array([5, 5, 5, 5])) == [6]
    assert length_buckets(np.array([4])) == [5]
    assert length_buckets([2, 2, 2, 2, 2, 2, 2, 2, 2, 7]) == [3, 8]
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        length_buckets(np.array([], dtype=int))
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        length_buckets(np.ones((2, 2), dtype=int))


def test_auto_boundaries_are_length_buckets(pairs, processor):
    tokenized = tokenize_pairs(pairs, processor)
    boundaries = length_buckets(tokenized.lengths)
    assert_same_batches(
        make_dataset(pairs, processor, batch_size=7, seed=4),
        make_dataset(
            pairs,
            processor,
            batch_size=7,
            seed=4,
            bucket_boundaries=boundaries,
        ),
    )


def test_public_names():
    assert text.TokenizedPairs is TokenizedPairs
    assert text.tokenize_pairs is tokenize_pairs
    assert text.length_buckets is length_buckets
    assert text.__all__ == sorted(
        text.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)
    )
