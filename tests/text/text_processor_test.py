import json
import pathlib
import random
import warnings

import hypothesis
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import strategies as st

from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.standardize import standardize
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.text_processor import build_vocabulary

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"
RESERVED = ["", "[UNK]", "[START]", "[END]"]


@pytest.fixture(scope="module")
def fixture_pairs():
    return read_pairs(FIXTURE, reverse=True)


@pytest.fixture(scope="module")
def processor(fixture_pairs):
    return TextProcessor.from_sentences(
        fixture_pairs.sources, fixture_pairs.targets, max_length=20
    )


def small_processor(max_length=8):
    return TextProcessor(
        RESERVED + [".", "hola", "que\u0301", "?", "¿"],
        RESERVED + [".", "hello", "what", "?", "'", "s", "up"],
        max_length=max_length,
    )


# --- vocabulary -------------------------------------------------------------


def test_build_vocabulary_orders_by_count_then_token():
    vocabulary = build_vocabulary(["b a", "a c", "C d ."])
    # a: 2, c: 2 (case folded), then b, d, . by code point ('.' < 'b').
    assert vocabulary == RESERVED + ["a", "c", ".", "b", "d"]


def test_build_vocabulary_max_tokens():
    vocabulary = build_vocabulary(["a a a b b c"], max_tokens=6)
    assert vocabulary == RESERVED + ["a", "b"]
    with pytest.raises(ValueError, match="max_tokens=3"):
        build_vocabulary(["a"], max_tokens=3)


def test_build_is_deterministic_and_order_independent(fixture_pairs):
    shuffled = list(fixture_pairs.sources)
    random.Random(0).shuffle(shuffled)
    a = build_vocabulary(fixture_pairs.sources)
    assert a == build_vocabulary(fixture_pairs.sources)
    assert a == build_vocabulary(shuffled)


def test_reserved_ids(processor):
    assert (processor.pad_id, processor.unk_id) == (0, 1)
    assert (processor.start_id, processor.end_id) == (2, 3)
    assert processor.source_vocabulary[:4] == RESERVED
    assert processor.target_vocabulary[:4] == RESERVED
    assert processor.source_vocab_size == len(processor.source_vocabulary)
    assert processor.target_vocab_size == len(processor.target_vocabulary)


def test_tokenize_source_ids_and_unknown_words():
    processor = small_processor()
    ids = processor.tokenize_source(["¿Qué?", "Hola zzz."])
    assert ids.dtype == tf.int32
    np.testing.assert_array_equal(
        ids.numpy(),
        [[2, 8, 6, 7, 3], [2, 5, 1, 4, 3]],  # zzz -> [UNK] = 1, pad 0
    )


def test_tokenize_pads_with_zero():
    processor = small_processor()
    ids = processor.tokenize_target(["hello", "what's up?"]).numpy()
    np.testing.assert_array_equal(
        ids, [[2, 5, 3, 0, 0, 0, 0], [2, 6, 8, 9, 10, 7, 3]]
    )


def test_tokenize_empty_and_symbol_only():
    processor = small_processor()
    ids = processor.tokenize_source(["", "€€"]).numpy()
    np.testing.assert_array_equal(ids, [[2, 3], [2, 3]])
    assert processor.tokenize_source([]).shape == (0, 0)


def test_tokenize_rejects_a_bare_string():
    with pytest.raises(ValueError, match=r"Wrap it in a list"):
        small_processor().tokenize_source("hola")
    with pytest.raises(ValueError, match="expects strings"):
        small_processor().tokenize_source([1, 2])


def test_truncation_keeps_end_and_warns():
    processor = small_processor(max_length=5)
    with pytest.warns(UserWarning, match=r"1 of 2 source sentence\(s\)"):
        ids = processor.tokenize_source(["hola hola hola hola hola", "hola"])
    np.testing.assert_array_equal(
        ids.numpy(), [[2, 5, 5, 5, 3], [2, 5, 3, 0, 0]]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly max_length: no warning
        processor.tokenize_source(["hola hola hola"])


def test_tokenize_ragged():
    processor = small_processor()
    ids = processor.tokenize_ragged(["hello .", "hello"], "target")
    assert ids.to_list() == [[2, 5, 4, 3], [2, 5, 3]]
    with pytest.raises(ValueError, match="side='both'"):
        processor.tokenize_ragged(["a"], "both")


# --- detokenize --------------------------------------------------------------


def test_detokenize_stops_at_end_and_drops_markers():
    processor = small_processor()
    ids = [
        [2, 6, 8, 9, 10, 7, 3, 5, 5],  # after [END]: ignored
        [5, 4, 0, 0, 0, 0, 0, 0, 0],  # no [START], no [END]
        [2, 1, 7, 3, 0, 0, 0, 0, 0],  # [UNK] stays visible
        [2, 3, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert processor.detokenize_target(np.array(ids)) == [
        "what's up?",
        "hello.",
        "[UNK]?",
        "",
    ]
    assert processor.detokenize_target([[2, 5, 3], [5]]) == ["hello", "hello"]
    ragged = tf.ragged.constant([[2, 5, 4, 3], [6]])
    assert processor.detokenize_target(ragged) == ["hello.", "what"]


def test_detokenize_round_trip(processor, fixture_pairs):
    targets = fixture_pairs.targets[:50]
    ids = processor.tokenize_target(targets)
    expected = [
        s.decode()
        for s in tf.strings.regex_replace(
            tf.strings.lower(targets), " ([.?!,])", r"\1"
        ).numpy()
    ]
    # The fixture's English sentences are ASCII; standardize lowercases and
    # splits punctuation, detokenize re-attaches it.
    assert processor.detokenize_target(ids) == [
        e.replace(" ' ", "'") for e in expected
    ]


def test_detokenize_rejects_bad_ids():
    processor = small_processor()
    with pytest.raises(ValueError, match=r"lie in \[0, 11\).*to 99"):
        processor.detokenize_target([[2, 99]])
    with pytest.raises(ValueError, match=r"shape \(batch, length\)"):
        processor.detokenize_target(np.array([2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocab_size"):
        processor.detokenize_target_tensor(tf.constant([[2, 11]]))


def test_ids_to_tokens():
    processor = small_processor()
    ids = processor.tokenize_source(["¿Qué?", "hola"])
    assert processor.ids_to_tokens(ids, "source") == [
        ["[START]", "¿", "que\u0301", "?", "[END]"],
        ["[START]", "hola", "[END]"],
    ]


# --- saving -------------------------------------------------------------------


def test_config_round_trip_through_json(processor, fixture_pairs):
    config = json.loads(json.dumps(processor.get_config()))
    restored = TextProcessor.from_config(config)
    sentences = fixture_pairs.sources[:40] + ["palabra desconocida zzz"]
    np.testing.assert_array_equal(
        restored.tokenize_source(sentences).numpy(),
        processor.tokenize_source(sentences).numpy(),
    )
    assert restored.max_length == processor.max_length


def test_save_load_round_trip(processor, fixture_pairs, tmp_path):
    processor.save(tmp_path / "vocab")
    files = sorted(p.name for p in (tmp_path / "vocab").iterdir())
    assert files == [
        "source_vocab.txt",
        "target_vocab.txt",
        "text_processor.json",
    ]
    lines = (tmp_path / "vocab" / "target_vocab.txt").read_text("utf-8")
    assert lines.split("\n")[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert lines.split("\n")[:-1] == ["[PAD]"] + processor.target_vocabulary[1:]
    restored = TextProcessor.load(tmp_path / "vocab")
    assert restored.get_config() == processor.get_config()
    for tokenize in ("tokenize_source", "tokenize_target"):
        sentences = fixture_pairs.sources[:30] + fixture_pairs.targets[:30]
        np.testing.assert_array_equal(
            getattr(restored, tokenize)(sentences).numpy(),
            getattr(processor, tokenize)(sentences).numpy(),
        )


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="text_processor.json"):
        TextProcessor.load(tmp_path)
    small_processor().save(tmp_path)
    (tmp_path / "source_vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="source_vocab.txt"):
        TextProcessor.load(tmp_path)


def test_vocab_readable_by_plain_tensorflow(tmp_path):
    processor = small_processor()
    processor.save(tmp_path)
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(tmp_path / "source_vocab.txt"),
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        default_value=1,
    )
    assert table.lookup(tf.constant(["hola", "?", "zzz"])).numpy().tolist() == [
        5,
        7,
        1,
    ]


def test_exports_into_a_saved_model(tmp_path):
    processor = small_processor()
    module = tf.Module()
    module.processor = processor
    module.round_trip = tf.function(
        lambda text: processor.detokenize_target_tensor(
            processor.tokenize_target(text)
        ),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "model"))
    del module
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    result = loaded.round_trip(tf.constant(["What's up?", "Hello zzz"]))
    assert result.numpy().tolist() == [b"what's up?", b"hello [UNK]"]


@pytest.mark.parametrize(
    "source, match",
    [
        (["[UNK]", "", "[START]", "[END]"], "must start with the reserved"),
        (RESERVED + ["a", "a"], "duplicate tokens, e.g. 'a'"),
        (RESERVED + ["a b"], "tokens with whitespace"),
        ("abc", "must be a list of strings"),
    ],
)
def test_invalid_vocabulary(source, match):
    with pytest.raises(ValueError, match=match):
        TextProcessor(source, RESERVED)


@pytest.mark.parametrize("max_length", [2, 0, 3.5, True])
def test_invalid_max_length(max_length):
    with pytest.raises(ValueError, match="max_length"):
        TextProcessor(RESERVED, RESERVED, max_length=max_length)


def test_from_sentences_rejects_empty():
    with pytest.raises(ValueError, match="non-empty list of sources"):
        TextProcessor.from_sentences([], ["a"])


# --- property: any Unicode text tokenises into valid ids ---------------------


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_unicode_text_gives_ids_in_the_vocabulary(processor, texts):
    words = standardize(texts).numpy()
    for line in words:
        assert line == line.strip() and b"  " not in line
    ids = processor.tokenize_source(texts).numpy()
    assert ids.shape[0] == len(texts)
    assert ids.shape[1] <= processor.max_length
    assert ids.min() >= 0
    assert ids.max() < processor.source_vocab_size
    for row, tokens in zip(
        ids, processor.ids_to_tokens(ids, "source"), strict=True
    ):
        end = list(row).index(processor.end_id)
        assert row[0] == processor.start_id
        assert all(i == processor.unk_id or i > 3 for i in row[1:end])
        assert (row[end + 1 :] == 0).all()
        assert len(tokens) == end + 1
