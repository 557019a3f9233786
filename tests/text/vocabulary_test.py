import json
import pathlib
import random
import warnings

import hypothesis
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import strategies as st

from keras_nmt import text
from keras_nmt.text import text_processor
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.standardize import standardize
from keras_nmt.text.vocabulary import Vocabulary
from keras_nmt.text.vocabulary import build_vocabulary

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"
RESERVED = ["", "[UNK]", "[START]", "[END]"]
# ids:            4     5        6            7     8
SPANISH = RESERVED + [".", "hola", "que\u0301", "?", "¿"]
# ids:            4     5        6       7     8    9    10
ENGLISH = RESERVED + [".", "hello", "what", "?", "'", "s", "up"]


@pytest.fixture(scope="module")
def fixture_pairs():
    return read_pairs(FIXTURE, reverse=True)


@pytest.fixture(scope="module")
def source(fixture_pairs):
    return Vocabulary.from_sentences(
        fixture_pairs.sources, max_length=20, name="source"
    )


def spanish(max_length=8):
    return Vocabulary(SPANISH, max_length=max_length, name="source")


def english(max_length=8):
    return Vocabulary(ENGLISH, max_length=max_length, name="target")


# --- build_vocabulary --------------------------------------------------------


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


def test_build_vocabulary_is_exported_where_it_was():
    assert text.build_vocabulary is build_vocabulary
    assert text_processor.build_vocabulary is build_vocabulary
    assert text.Vocabulary is Vocabulary


# --- construction ------------------------------------------------------------


def test_tokens_size_and_reserved_ids():
    vocabulary = spanish()
    assert (vocabulary.pad_id, vocabulary.unk_id) == (0, 1)
    assert (vocabulary.start_id, vocabulary.end_id) == (2, 3)
    assert (Vocabulary.pad_id, Vocabulary.end_id) == (0, 3)
    assert vocabulary.tokens == SPANISH
    assert vocabulary.size == len(vocabulary) == 9
    assert vocabulary.max_length == 8
    assert vocabulary.name == "source"
    assert repr(vocabulary) == (
        "<Vocabulary name='source' size=9 max_length=8>"
    )
    # `tokens` is a copy: editing it leaves the vocabulary alone.
    vocabulary.tokens.append("x")
    assert vocabulary.size == 9


def test_from_sentences():
    vocabulary = Vocabulary.from_sentences(
        ["Hola.", "¿Hola?", "hola"], max_length=5, name="spanish"
    )
    # hola: 3, then '.', '?', '¿' by code point.
    assert vocabulary.tokens == RESERVED + ["hola", ".", "?", "¿"]
    assert (vocabulary.max_length, vocabulary.name) == (5, "spanish")
    small = Vocabulary.from_sentences(["a a b c"], max_tokens=5)
    assert small.tokens == RESERVED + ["a"]
    assert small.name == "vocabulary"
    with pytest.raises(ValueError, match="non-empty list of sentences"):
        Vocabulary.from_sentences([])
    with pytest.raises(ValueError, match="non-empty list of sentences"):
        Vocabulary.from_sentences("hola")


@pytest.mark.parametrize(
    "tokens, match",
    [
        (
            ["[UNK]", "", "[START]", "[END]"],
            "Vocabulary 'src' must start with the reserved",
        ),
        (RESERVED + ["a", "a"], "Vocabulary 'src' has duplicate .* 'a'"),
        (RESERVED + ["a b"], "Vocabulary 'src' holds tokens with whitespace"),
        (RESERVED + ["a\t"], "tokens with whitespace, e.g. 'a\\\\t'"),
        (RESERVED + [3], r"must hold strings; received \[3\]"),
        ("abc", "Vocabulary 'src' must be a list of strings; received str"),
    ],
)
def test_invalid_tokens(tokens, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(tokens, name="src")


@pytest.mark.parametrize("max_length", [2, 0, 3.5, True, "8"])
def test_invalid_max_length(max_length):
    with pytest.raises(ValueError, match="max_length"):
        Vocabulary(RESERVED, max_length=max_length)


def test_max_length_three_is_the_smallest():
    vocabulary = Vocabulary(SPANISH, max_length=3)
    with pytest.warns(UserWarning, match="1 of 1 sentence"):
        ids = vocabulary.tokenize(["hola hola"])
    np.testing.assert_array_equal(ids.numpy(), [[2, 5, 3]])


# --- tokenize ----------------------------------------------------------------


def test_tokenize_ids_and_unknown_words():
    ids = spanish().tokenize(["¿Qué?", "Hola zzz."])
    assert ids.dtype == tf.int32
    np.testing.assert_array_equal(
        ids.numpy(),
        [[2, 8, 6, 7, 3], [2, 5, 1, 4, 3]],  # zzz -> [UNK] = 1
    )


def test_tokenize_pads_with_zero():
    ids = english().tokenize(["hello", "what's up?"]).numpy()
    np.testing.assert_array_equal(
        ids, [[2, 5, 3, 0, 0, 0, 0], [2, 6, 8, 9, 10, 7, 3]]
    )


def test_tokenize_ragged_has_no_padding():
    ids = english().tokenize_ragged(["hello .", "hello"])
    assert isinstance(ids, tf.RaggedTensor)
    assert ids.dtype == tf.int32
    assert ids.to_list() == [[2, 5, 4, 3], [2, 5, 3]]


def test_tokenize_accepts_a_string_tensor():
    ids = spanish().tokenize(tf.constant(["hola", "¿qué?"]))
    np.testing.assert_array_equal(
        ids.numpy(), [[2, 5, 3, 0, 0], [2, 8, 6, 7, 3]]
    )


def test_tokenize_empty_and_symbol_only():
    vocabulary = spanish()
    ids = vocabulary.tokenize(["", "€€"]).numpy()
    np.testing.assert_array_equal(ids, [[2, 3], [2, 3]])
    assert vocabulary.tokenize([]).shape == (0, 0)
    assert vocabulary.tokenize_ragged([]).nrows() == 0


def test_tokenize_rejects_a_bare_string_and_non_strings():
    with pytest.raises(ValueError, match=r"Wrap it in a list"):
        spanish().tokenize("hola")
    with pytest.raises(ValueError, match="expects strings"):
        spanish().tokenize([1, 2])
    with pytest.raises(ValueError, match="1-D tf.string tensor"):
        spanish().tokenize(tf.constant([[b"hola"]]))


def test_truncation_keeps_end_and_warns():
    vocabulary = spanish(max_length=5)
    with pytest.warns(UserWarning, match=r"'source': 1 of 2 sentence") as rec:
        ids = vocabulary.tokenize(["hola hola hola hola hola", "hola"])
    assert rec[0].filename == __file__  # points at the caller
    assert "max_length=5" in str(rec[0].message)
    np.testing.assert_array_equal(
        ids.numpy(), [[2, 5, 5, 5, 3], [2, 5, 3, 0, 0]]
    )
    with pytest.warns(UserWarning, match="2 of 2 sentence") as rec:
        ragged = vocabulary.tokenize_ragged(["hola " * 9, ". " * 4])
    assert rec[0].filename == __file__
    assert ragged.to_list() == [[2, 5, 5, 5, 3], [2, 4, 4, 4, 3]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly max_length: no warning
        vocabulary.tokenize(["hola hola hola"])


def test_tokenize_counting_counts_without_warning():
    vocabulary = spanish(max_length=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids, n_truncated = vocabulary.tokenize_counting(
            ["hola " * 4, "hola", "hola . ? ¿"]
        )
    assert n_truncated.dtype == tf.int64
    assert n_truncated.shape == ()
    assert int(n_truncated) == 2
    assert ids.to_list() == [[2, 5, 5, 5, 3], [2, 5, 3], [2, 5, 4, 7, 3]]
    with pytest.warns(UserWarning, match="2 of 3 sentence"):
        padded = vocabulary.tokenize(["hola " * 4, "hola", "hola . ? ¿"])
    np.testing.assert_array_equal(ids.to_tensor().numpy(), padded.numpy())


def test_tokenize_in_a_tf_function_does_not_warn():
    vocabulary = spanish(max_length=4)
    tokenize = tf.function(
        vocabulary.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = tokenize(tf.constant(["hola hola hola", "¿qué?"]))
    np.testing.assert_array_equal(ids.numpy(), [[2, 5, 5, 3], [2, 8, 6, 3]])


# --- detokenize --------------------------------------------------------------


def test_detokenize_stops_at_end_and_drops_markers():
    vocabulary = english()
    ids = [
        [2, 6, 8, 9, 10, 7, 3, 5, 5],  # after [END]: ignored
        [5, 4, 0, 0, 0, 0, 0, 0, 0],  # no [START], no [END]
        [2, 1, 7, 3, 0, 0, 0, 0, 0],  # [UNK] stays visible
        [2, 3, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert vocabulary.detokenize(np.array(ids)) == [
        "what's up?",
        "hello.",
        "[UNK]?",
        "",
    ]
    assert vocabulary.detokenize([[2, 5, 3], [5]]) == ["hello", "hello"]
    ragged = tf.ragged.constant([[2, 5, 4, 3], [6]])
    assert vocabulary.detokenize(ragged) == ["hello.", "what"]
    assert vocabulary.detokenize(tf.constant([[2, 6, 7, 3]])) == ["what?"]


def test_source_sentences_detokenize_too():
    vocabulary = spanish()
    ids = vocabulary.tokenize(["¿Qué?", "Hola zzz."])
    # NFC again: "que" + combining acute -> "qué".
    assert vocabulary.detokenize(ids) == ["¿qu\u00e9?", "hola [UNK]."]
    tensor = vocabulary.detokenize_tensor(ids)
    assert tensor.dtype == tf.string
    assert tensor.numpy().tolist() == [
        "¿qu\u00e9?".encode(),
        b"hola [UNK].",
    ]


def test_detokenize_round_trip(fixture_pairs):
    targets = fixture_pairs.targets[:50]
    vocabulary = Vocabulary.from_sentences(fixture_pairs.targets)
    ids = vocabulary.tokenize(targets)
    # The fixture's English sentences are ASCII; standardize lowercases and
    # splits punctuation, detokenize re-attaches it.
    expected = [
        s.decode().replace(" ' ", "'")
        for s in tf.strings.regex_replace(
            tf.strings.lower(targets), " ([.?!,])", r"\1"
        ).numpy()
    ]
    assert vocabulary.detokenize(ids) == expected
    assert vocabulary.detokenize(vocabulary.tokenize_ragged(targets)) == (
        expected
    )


def test_detokenize_rejects_bad_ids():
    vocabulary = english()
    with pytest.raises(
        ValueError, match=r"'target' must lie in \[0, 11\).*from 2 to 99"
    ):
        vocabulary.detokenize([[2, 99]])
    with pytest.raises(ValueError, match=r"from -1 to 5"):
        vocabulary.detokenize(np.array([[-1, 5]]))
    with pytest.raises(ValueError, match=r"shape \(batch, length\)"):
        vocabulary.detokenize(np.array([2, 3]))
    with pytest.raises(ValueError, match="integer ids; received dtype float"):
        vocabulary.detokenize(np.array([[2.0, 3.0]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="size=11"):
        vocabulary.detokenize_tensor(tf.constant([[2, 11]]))
    with pytest.raises(ValueError, match=r"shape \(batch, length\)"):
        vocabulary.detokenize_tensor(tf.constant([2, 3]))


def test_ids_to_tokens():
    vocabulary = spanish()
    ids = vocabulary.tokenize(["¿Qué?", "hola"])
    expected = [
        ["[START]", "¿", "que\u0301", "?", "[END]"],
        ["[START]", "hola", "[END]"],
    ]
    assert vocabulary.ids_to_tokens(ids) == expected
    assert vocabulary.ids_to_tokens(ids.numpy()) == expected
    assert vocabulary.ids_to_tokens([[2, 1, 3]]) == [
        ["[START]", "[UNK]", "[END]"]
    ]
    ragged = vocabulary.tokenize_ragged(["¿Qué?", "hola"])
    assert vocabulary.ids_to_tokens(ragged) == expected
    with pytest.raises(ValueError, match=r"Id 9 is outside \[0, 9\)"):
        vocabulary.ids_to_tokens([[2, 9]])


# --- saving ------------------------------------------------------------------


def test_config_round_trip_through_json(source, fixture_pairs):
    config = json.loads(json.dumps(source.get_config()))
    assert config["name"] == "source"
    assert config["max_length"] == 20
    restored = Vocabulary.from_config(config)
    assert restored.tokens == source.tokens
    assert restored.name == "source"
    sentences = fixture_pairs.sources[:40] + ["palabra desconocida zzz"]
    np.testing.assert_array_equal(
        restored.tokenize(sentences).numpy(),
        source.tokenize(sentences).numpy(),
    )


def test_save_writes_one_token_per_line(tmp_path):
    path = tmp_path / "deeper" / "vocab.txt"
    spanish().save(path)
    assert [p.name for p in path.parent.iterdir()] == ["vocab.txt"]
    assert path.read_bytes().decode("utf-8") == (
        "[PAD]\n[UNK]\n[START]\n[END]\n.\nhola\nque\u0301\n?\n¿\n"
    )


def test_save_load_round_trip(source, fixture_pairs, tmp_path):
    source.save(tmp_path / "source.txt")
    restored = Vocabulary.load(
        tmp_path / "source.txt", max_length=20, name="source"
    )
    assert restored.get_config() == source.get_config()
    sentences = fixture_pairs.sources[:30] + fixture_pairs.targets[:30]
    np.testing.assert_array_equal(
        restored.tokenize(sentences).numpy(),
        source.tokenize(sentences).numpy(),
    )
    other = Vocabulary.load(tmp_path / "source.txt", max_length=6)
    assert (other.max_length, other.name) == (6, "vocabulary")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        Vocabulary.load(tmp_path / "missing.txt", max_length=8)
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[START]\n[END]", encoding="utf-8")
    with pytest.raises(ValueError, match="looks truncated"):
        Vocabulary.load(path, max_length=8)
    path.write_text("\n[UNK]\n[START]\n[END]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 is ''; expected '\\[PAD\\]'"):
        Vocabulary.load(path, max_length=8)
    path.write_text("[PAD]\n[UNK]\n[START]\n[END]\na\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'mine' has duplicate tokens"):
        Vocabulary.load(path, max_length=8, name="mine")
    path.write_text("[PAD]\n[UNK]\n[START]\n[END]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="max_length=2"):
        Vocabulary.load(path, max_length=2)


def test_file_readable_by_plain_tensorflow(tmp_path):
    spanish().save(tmp_path / "vocab.txt")
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(tmp_path / "vocab.txt"),
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        default_value=1,
    )
    ids = table.lookup(tf.constant(["hola", "?", "zzz"])).numpy()
    assert ids.tolist() == [5, 7, 1]


def test_exports_into_a_saved_model(tmp_path):
    vocabulary = english()
    module = tf.Module()
    module.vocabulary = vocabulary
    module.round_trip = tf.function(
        lambda text: vocabulary.detokenize_tensor(vocabulary.tokenize(text)),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "model"))
    del module
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    result = loaded.round_trip(tf.constant(["What's up?", "Hello zzz"]))
    assert result.numpy().tolist() == [b"what's up?", b"hello [UNK]"]


# --- property: any Unicode text tokenises into valid ids ---------------------


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_unicode_text_gives_ids_in_the_vocabulary(source, texts):
    words = standardize(texts).numpy()
    for line in words:
        assert line == line.strip() and b"  " not in line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long texts are truncated
        ids = source.tokenize(texts).numpy()
    assert ids.shape[0] == len(texts)
    assert ids.shape[1] <= source.max_length
    assert ids.min() >= 0
    assert ids.max() < source.size
    for row, tokens in zip(ids, source.ids_to_tokens(ids), strict=True):
        end = list(row).index(source.end_id)
        assert row[0] == source.start_id
        assert all(i == source.unk_id or i > 3 for i in row[1:end])
        assert (row[end + 1 :] == 0).all()
        assert len(tokens) == end + 1
