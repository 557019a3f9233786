import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.vocabulary import Vocabulary
from keras_nmt.text.vocabulary import build_vocabulary

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


# ids:            4     5        6            7     8
SPANISH = RESERVED + [".", "hola", "que\u0301", "?", "¿"]
# ids:            4     5        6       7     8    9    10
ENGLISH = RESERVED + [".", "hello", "what", "?", "'", "s", "up"]


def small_processor(max_length=8):
    return TextProcessor(SPANISH, ENGLISH, max_length=max_length)


# --- the two vocabularies ----------------------------------------------------


def test_reserved_ids(processor):
    assert (processor.pad_id, processor.unk_id) == (0, 1)
    assert (processor.start_id, processor.end_id) == (2, 3)
    assert processor.source_vocabulary[:4] == RESERVED
    assert processor.target_vocabulary[:4] == RESERVED
    assert processor.source_vocab_size == len(processor.source_vocabulary)
    assert processor.target_vocab_size == len(processor.target_vocabulary)


def test_holds_one_vocabulary_per_side():
    processor = small_processor(max_length=7)
    assert isinstance(processor.source, Vocabulary)
    assert isinstance(processor.target, Vocabulary)
    assert (processor.source.name, processor.target.name) == (
        "source",
        "target",
    )
    assert processor.source.tokens == SPANISH
    assert processor.target.tokens == ENGLISH
    assert processor.source_vocabulary == SPANISH
    assert processor.target_vocabulary == ENGLISH
    assert (processor.source_vocab_size, processor.target_vocab_size) == (9, 11)
    assert processor.max_length == 7
    assert processor.source.max_length == processor.target.max_length == 7
    assert repr(processor) == (
        "<TextProcessor tokenizer='word' source_vocab_size=9 "
        "target_vocab_size=11 max_length=7>"
    )
    # The tf.Module tracks both vocabularies and their tables.
    assert processor.source in processor.submodules
    assert processor.target in processor.submodules


def test_sides_tokenize_with_their_own_vocabulary():
    processor = small_processor()
    # "hola" is a source word only, "hello" a target word only.
    np.testing.assert_array_equal(
        processor.source.tokenize(["hola hello"]).numpy(), [[2, 5, 1, 3]]
    )
    np.testing.assert_array_equal(
        processor.target.tokenize(["hola hello"]).numpy(), [[2, 1, 5, 3]]
    )
    assert processor.target.detokenize([[2, 6, 7, 3]]) == ["what?"]
    assert processor.source.detokenize([[2, 8, 6, 7, 3]]) == ["¿qu\u00e9?"]
    assert processor.source.ids_to_tokens([[2, 5, 3]]) == [
        ["[START]", "hola", "[END]"]
    ]


def test_truncation_warning_names_the_side():
    processor = small_processor(max_length=4)
    with pytest.warns(UserWarning, match=r"'target': 1 of 1 sentence"):
        ids = processor.target.tokenize(["hello hello hello"])
    np.testing.assert_array_equal(ids.numpy(), [[2, 5, 5, 3]])


def test_the_side_string_api_is_gone():
    processor = small_processor()
    for name in (
        "tokenize_ragged",
        "ids_to_tokens",
        "tokenize_source",
        "tokenize_target",
        "detokenize_target",
        "detokenize_target_tensor",
        "_tokenize",
        "_warn_truncated",
    ):
        assert not hasattr(processor, name), name


def test_from_sentences_builds_each_side(fixture_pairs):
    processor = TextProcessor.from_sentences(
        fixture_pairs.sources, fixture_pairs.targets, max_tokens=30
    )
    assert processor.source_vocabulary == build_vocabulary(
        fixture_pairs.sources, max_tokens=30
    )
    assert processor.target_vocabulary == build_vocabulary(
        fixture_pairs.targets, max_tokens=30
    )
    assert processor.max_length == 64


# --- saving ------------------------------------------------------------------


def test_config_round_trip_through_json(processor, fixture_pairs):
    config = json.loads(json.dumps(processor.get_config()))
    restored = TextProcessor.from_config(config)
    sentences = fixture_pairs.sources[:40] + ["palabra desconocida zzz"]
    np.testing.assert_array_equal(
        restored.source.tokenize(sentences).numpy(),
        processor.source.tokenize(sentences).numpy(),
    )
    assert restored.max_length == processor.max_length
    assert restored.get_config() == processor.get_config()


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
    config = json.loads(
        (tmp_path / "vocab" / "text_processor.json").read_text("utf-8")
    )
    assert config == {
        "format_version": 2,
        "tokenizer": "word",
        "max_length": 20,
        "source_vocabulary_file": "source_vocab.txt",
        "target_vocabulary_file": "target_vocab.txt",
    }
    restored = TextProcessor.load(tmp_path / "vocab")
    assert restored.get_config() == processor.get_config()
    sentences = fixture_pairs.sources[:30] + fixture_pairs.targets[:30]
    for side in ("source", "target"):
        np.testing.assert_array_equal(
            getattr(restored, side).tokenize(sentences).numpy(),
            getattr(processor, side).tokenize(sentences).numpy(),
        )
        assert getattr(restored, side).name == side


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="text_processor.json"):
        TextProcessor.load(tmp_path)
    small_processor().save(tmp_path)
    (tmp_path / "source_vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="source_vocab.txt"):
        TextProcessor.load(tmp_path)
    small_processor().save(tmp_path)
    (tmp_path / "target_vocab.txt").write_text("a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 is 'a'"):
        TextProcessor.load(tmp_path)
    config = tmp_path / "text_processor.json"
    config.write_text('{"format_version": 3}', encoding="utf-8")
    with pytest.raises(ValueError, match="format_version 3 .*expected 1 or 2"):
        TextProcessor.load(tmp_path)


def test_loads_format_version_1(processor, fixture_pairs, tmp_path):
    """Directories written before subwords (no "tokenizer") still load as
    word processors."""
    processor.save(tmp_path)
    (tmp_path / "text_processor.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "max_length": 20,
                "source_vocabulary_file": "source_vocab.txt",
                "target_vocabulary_file": "target_vocab.txt",
            }
        ),
        encoding="utf-8",
    )
    restored = TextProcessor.load(tmp_path)
    assert restored.tokenizer == "word"
    assert restored.get_config() == processor.get_config()
    sentences = fixture_pairs.sources[:30]
    np.testing.assert_array_equal(
        restored.source.tokenize(sentences).numpy(),
        processor.source.tokenize(sentences).numpy(),
    )


def test_from_config_without_tokenizer_is_word(processor):
    config = processor.get_config()
    del config["tokenizer"]
    assert TextProcessor.from_config(config).get_config() == (
        processor.get_config()
    )


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
        lambda text: processor.target.detokenize_tensor(
            processor.target.tokenize(text)
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
    with pytest.raises(ValueError, match=f"Vocabulary 'source' .*{match}"):
        TextProcessor(source, RESERVED)
    with pytest.raises(ValueError, match=f"Vocabulary 'target' .*{match}"):
        TextProcessor(RESERVED, source)


@pytest.mark.parametrize("max_length", [2, 0, 3.5, True])
def test_invalid_max_length(max_length):
    with pytest.raises(ValueError, match="max_length"):
        TextProcessor(RESERVED, RESERVED, max_length=max_length)


def test_from_sentences_rejects_empty():
    with pytest.raises(ValueError, match="non-empty list of sources"):
        TextProcessor.from_sentences([], ["a"])
