import base64
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import unicodedata

import keras
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text

from keras_nmt import text
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.text.subword import SubwordVocabulary
from keras_nmt.text.subword import train_sentencepiece
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.translator import Translator

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"
RESERVED = ["", "[UNK]", "[START]", "[END]"]
BYTES = [f"<0x{b:02X}>" for b in range(256)]

# A small corpus of many scripts; the round trips below also hold
# characters it never shows (byte fallback).
MIXED = [
    "Hola, ¿qué tal?",
    "¡Buenos días, señor García!",
    "El niño comió una manzana.",
    "Guten Morgen, wie geht's?",
    "Die Straße ist schön und groß.",
    "Tôi yêu tiếng Việt.",
    "Xin chào, bạn khỏe không?",
    "Привет, как дела?",
    "Москва — столица России.",
    "Καλημέρα, τι κάνεις;",
    "Η Ελλάδα είναι όμορφη.",
    "今日はいい天気ですね。",
    "私は学生です。",
    "今天天气很好。",
    "我喜欢学习中文。",
    "مرحبا، كيف حالك؟",
    "أنا أحب القراءة.",
    "Le rendez-vous est le 2024-08-02 à 10:30.",
    "L'homme, est-ce qu'il vient ?",
    "I'm happy 🙂 today!",
]


@pytest.fixture(scope="module")
def pairs():
    return text.read_pairs(FIXTURE, reverse=True)


@pytest.fixture(scope="module")
def corpus(pairs):
    return MIXED * 3 + list(pairs.sources) + list(pairs.targets)


@pytest.fixture(scope="module")
def vocabulary(corpus):
    return SubwordVocabulary.from_sentences(
        corpus, max_tokens=700, max_length=64, name="source"
    )


@pytest.fixture(scope="module")
def reference(vocabulary):
    """sentencepiece's own processor on the same model: the reference for
    the tensorflow-text ops."""
    return sentencepiece.SentencePieceProcessor(model_proto=vocabulary.model)


# ---- round trips ---------------------------------------------------------

ROUND_TRIPS = [
    # (input, expected standardised text), expected written by hand.
    ("Hola, ¿qué tal?", "Hola, ¿qué tal?"),
    ("¿DÓNDE está el Niño?", "¿DÓNDE está el Niño?"),
    ("Die Straße, Öl und Übermut.", "Die Straße, Öl und Übermut."),
    ("Tôi yêu tiếng Việt.", "Tôi yêu tiếng Việt."),
    # Vietnamese typed decomposed (NFD) comes back composed (NFC).
    (unicodedata.normalize("NFD", "Tiếng Việt"), "Tiếng Việt"),
    ("Привет, Мир!", "Привет, Мир!"),
    ("Ελληνικά: ΑΒΓ αβγ ς.", "Ελληνικά: ΑΒΓ αβγ ς."),
    ("東京は大きい都市です。", "東京は大きい都市です。"),
    ("我们明天见。", "我们明天见。"),
    ("السلام عليكم", "السلام عليكم"),
    ("Fecha: 2024-08-02, hora 10:30.", "Fecha: 2024-08-02, hora 10:30."),
    ("est-ce que l'homme vient ?", "est-ce que l'homme vient ?"),
    ("emoji 🙂👍🏽 and 👩‍👩‍👧!", "emoji 🙂👍🏽 and 👩‍👩‍👧!"),
    # Never seen in the corpus: spelled in bytes, still exact.
    ("ℵ₀ ☃ 𝔘𝔫𝔦 ዐማርኛ ᚠᚢᚦ", "ℵ₀ ☃ 𝔘𝔫𝔦 ዐማርኛ ᚠᚢᚦ"),
    ("  Hola \t mundo\u00a0 \n ", "Hola mundo"),
    ("", ""),
]


@pytest.mark.parametrize("sentence, expected", ROUND_TRIPS)
def test_round_trip(vocabulary, reference, sentence, expected):
    assert text.standardize_cased([sentence]).numpy()[0].decode() == expected
    ids = vocabulary.tokenize([sentence])
    assert vocabulary.detokenize(ids) == [expected]
    assert vocabulary.detokenize_tensor(ids).numpy()[0].decode() == expected
    # The tensorflow-text op cuts as sentencepiece does.
    row = ids.numpy()[0]
    assert row.tolist() == [2, *reference.encode(expected), 3]
    assert reference.decode(row[1:-1].tolist()) == expected
    assert vocabulary.unk_id not in row


def test_unseen_characters_fall_back_to_bytes(vocabulary):
    ids = vocabulary.tokenize(["☃"]).numpy()[0]
    pieces = vocabulary.ids_to_tokens([ids])[0]
    # "☃" is U+2603, UTF-8 E2 98 83.
    assert [p for p in pieces if p.startswith("<0x")] == [
        "<0xE2>",
        "<0x98>",
        "<0x83>",
    ]
    assert all(4 <= i < 260 for i in ids if vocabulary.tokens[i][:3] == "<0x")


def test_case_is_kept(vocabulary):
    upper, lower = vocabulary.tokenize(["HOLA", "hola"]).numpy()
    assert upper.tolist() != lower.tolist()
    assert vocabulary.detokenize([upper, lower]) == ["HOLA", "hola"]


def test_batch_round_trip(vocabulary):
    sentences = [s for s, _ in ROUND_TRIPS]
    expected = [e for _, e in ROUND_TRIPS]
    assert vocabulary.detokenize(vocabulary.tokenize(sentences)) == expected
    ragged = vocabulary.tokenize_ragged(sentences)
    assert vocabulary.detokenize(ragged) == expected


# ---- ids -----------------------------------------------------------------


def test_reserved_ids_and_bytes(vocabulary, reference):
    tokens = vocabulary.tokens
    assert tokens[:4] == RESERVED
    assert tokens[4:260] == BYTES
    assert (vocabulary.pad_id, vocabulary.unk_id) == (0, 1)
    assert (vocabulary.start_id, vocabulary.end_id) == (2, 3)
    assert len(vocabulary) == vocabulary.size == len(tokens)
    assert vocabulary.size == reference.get_piece_size()
    assert tokens[4:] == [
        reference.id_to_piece(i) for i in range(4, vocabulary.size)
    ]
    assert len(set(tokens)) == len(tokens)


def test_tokenize_wraps_and_pads(vocabulary, reference):
    ids = vocabulary.tokenize(["Hola", "Buenos días, señor."])
    assert ids.dtype == tf.int32
    first = [2, *reference.encode("Hola"), 3]
    second = [2, *reference.encode("Buenos días, señor."), 3]
    width = max(len(first), len(second))
    assert ids.numpy().tolist() == [
        first + [0] * (width - len(first)),
        second + [0] * (width - len(second)),
    ]


def test_truncation_keeps_end(corpus, reference):
    short = SubwordVocabulary.from_sentences(
        corpus, max_tokens=700, max_length=5
    )
    sentence = "Die Straße ist schön und groß."
    pieces = reference.encode(sentence)
    assert len(pieces) > 3 >= len(reference.encode("y"))
    with pytest.warns(UserWarning, match=r"1 of 2 sentence\(s\).*\[END\]"):
        ids = short.tokenize_ragged([sentence, "y"]).to_list()
    assert ids[0] == [2, *pieces[:3], 3]
    assert ids[1] == [2, *reference.encode("y"), 3]
    counted, n_truncated = short.tokenize_counting([sentence, sentence])
    assert int(n_truncated) == 2
    assert max(counted.row_lengths().numpy()) == 5


def test_detokenize_reads_up_to_the_first_end(vocabulary, reference):
    hola = reference.encode("Hola")
    tal = reference.encode("tal")
    rows = [
        [2, *hola, 3, *tal, 3, 0],
        [*hola, 0, 0, 0, 0, 0, 0, 0][: len(hola) + 6],
        [3, *hola, 0, 0, 0, 0, 0][: len(hola) + 6],
    ]
    assert vocabulary.detokenize(rows) == ["Hola", "Hola", ""]
    # Padding and [START] inside a row are dropped too.
    assert vocabulary.detokenize([[2, *hola, 0, 2, *tal, 3]]) == [
        reference.decode(hola + tal)
    ]
    assert reference.decode(hola + tal) == "Hola tal"


def test_unk_is_visible(vocabulary):
    assert vocabulary.detokenize([[2, 1, 3]]) == ["[UNK]"]


def test_ids_to_tokens_shows_word_starts(vocabulary, reference):
    sentence = "Buenos días, señor."
    ids = vocabulary.tokenize([sentence, "Hola"])
    pieces = vocabulary.ids_to_tokens(ids)
    assert pieces[0] == [
        "[START]",
        *reference.encode(sentence, out_type=str),
        "[END]",
    ]
    assert pieces[0][1].startswith("▁")
    assert "".join(pieces[0][1:-1]).replace("▁", " ").strip() == sentence
    assert "" not in pieces[1]  # padding left out
    with pytest.raises(ValueError, match=r"Id 99999 is outside \[0, "):
        vocabulary.ids_to_tokens([[99999]])


# ---- training --------------------------------------------------------------


def test_training_is_deterministic(corpus):
    first = train_sentencepiece(corpus, vocab_size=600, sample_size=200)
    second = train_sentencepiece(corpus, vocab_size=600, sample_size=200)
    assert first == second


_TRAIN_ELSEWHERE = textwrap.dedent(
    """
    import base64, json, sys
    from keras_nmt.text.subword import train_sentencepiece
    corpus = json.loads(sys.stdin.read())
    model = train_sentencepiece(corpus, vocab_size=600, sample_size=200)
    print(base64.b64encode(model).decode())
    """
)


@pytest.mark.slow
def test_training_is_deterministic_across_processes(corpus):
    """sentencepiece's own sampling (shuffle_input_sentence) differs from
    one process to the next; ours is seeded."""
    result = subprocess.run(
        [sys.executable, "-c", _TRAIN_ELSEWHERE],
        input=json.dumps(corpus),
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    here = train_sentencepiece(corpus, vocab_size=600, sample_size=200)
    assert base64.b64decode(result.stdout.strip().splitlines()[-1]) == here


def test_vocab_size_is_a_soft_limit(corpus):
    model = train_sentencepiece(corpus, vocab_size=50_000)
    size = sentencepiece.SentencePieceProcessor(
        model_proto=model
    ).get_piece_size()
    assert 260 < size < 50_000


def test_vocab_size_below_the_characters_is_refused(corpus):
    with pytest.raises(ValueError, match=r"Use a vocab_size >= \d+") as info:
        train_sentencepiece(corpus, vocab_size=270)
    needed = int(str(info.value).rsplit(">= ", 1)[1].rstrip("."))
    model = train_sentencepiece(corpus, vocab_size=needed)
    assert sentencepiece.SentencePieceProcessor(
        model_proto=model
    ).get_piece_size()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vocab_size": 100}, "Invalid vocab_size=100; expected an integer"),
        ({"vocab_size": True}, "Invalid vocab_size=True"),
        ({"sample_size": 0}, "Invalid sample_size=0"),
    ],
)
def test_invalid_training_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_sentencepiece(["Hola"], **kwargs)


def test_training_needs_text():
    with pytest.raises(ValueError, match="hold no text"):
        train_sentencepiece(["", "  \t "])
    with pytest.raises(ValueError, match="single string"):
        train_sentencepiece("Hola")


# ---- saving ------------------------------------------------------------------


def test_config_round_trip_through_json(vocabulary):
    config = json.loads(json.dumps(vocabulary.get_config()))
    assert set(config) == {"model", "max_length", "name"}
    restored = SubwordVocabulary.from_config(config)
    assert restored.model == vocabulary.model
    assert restored.tokens == vocabulary.tokens
    sentences = [s for s, _ in ROUND_TRIPS]
    np.testing.assert_array_equal(
        restored.tokenize(sentences).numpy(),
        vocabulary.tokenize(sentences).numpy(),
    )
    with pytest.raises(ValueError, match="base64 text of a SentencePiece"):
        SubwordVocabulary.from_config({**config, "model": "not base64!"})


def test_save_load_round_trip(vocabulary, tmp_path):
    path = tmp_path / "deeper" / "source.model"
    vocabulary.save(path)
    assert path.read_bytes() == vocabulary.model
    # A standard SentencePiece model file, for sentencepiece and tf-text.
    reference = sentencepiece.SentencePieceProcessor(model_file=str(path))
    tokenizer = tf_text.SentencepieceTokenizer(model=path.read_bytes())
    sentences = [s for s, e in ROUND_TRIPS if e]
    expected = [reference.encode(e) for s, e in ROUND_TRIPS if e]
    assert tokenizer.tokenize([e for _, e in ROUND_TRIPS if e]).to_list() == (
        expected
    )
    restored = SubwordVocabulary.load(path, max_length=64, name="target")
    assert restored.name == "target"
    np.testing.assert_array_equal(
        restored.tokenize(sentences).numpy(),
        vocabulary.tokenize(sentences).numpy(),
    )
    with pytest.raises(FileNotFoundError, match="No subword model file"):
        SubwordVocabulary.load(tmp_path / "missing.model", max_length=8)


def test_invalid_models():
    with pytest.raises(ValueError, match="expects the serialized"):
        SubwordVocabulary("not bytes")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        SubwordVocabulary(b"not a model")
    # sentencepiece's default ids: <unk>=0, <s>=1, </s>=2, no padding.
    writer = __import__("io").BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(MIXED * 3),
        model_writer=writer,
        vocab_size=400,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(ValueError, match=r"ids 0-3 are \['<unk>'"):
        SubwordVocabulary(writer.getvalue())


def test_invalid_inputs(vocabulary):
    with pytest.raises(ValueError, match="single string"):
        vocabulary.tokenize("Hola")
    with pytest.raises(ValueError, match=r"must lie in \[0, "):
        vocabulary.detokenize([[2, vocabulary.size, 3]])
    with pytest.raises(ValueError, match="shape"):
        vocabulary.detokenize(np.array([2, 5, 3]))
    with pytest.raises(ValueError, match="max_length"):
        SubwordVocabulary(vocabulary.model, max_length=2)


# ---- graphs: tf.data, tf.function ------------------------------------------


def test_tokenizes_in_tf_data(vocabulary):
    sentences = [s for s, _ in ROUND_TRIPS]
    ds = (
        tf.data.Dataset.from_tensor_slices(sentences)
        .batch(4)
        .map(vocabulary.tokenize_ragged)
    )
    rows = [row for batch in ds for row in batch.to_list()]
    assert rows == vocabulary.tokenize_ragged(sentences).to_list()


def test_survives_clear_session(vocabulary):
    """keras.utils.clear_session() clears TensorFlow's kernel cache, which
    deletes tensorflow-text's kernel-owned SentencePiece resources; ours is
    shared, so eager calls and traced functions keep working."""
    traced = tf.function(vocabulary.tokenize)
    sentences = tf.constant(["Hola, ¿qué tal?"])
    before = traced(sentences).numpy()
    keras.utils.clear_session()
    np.testing.assert_array_equal(vocabulary.tokenize(sentences), before)
    np.testing.assert_array_equal(traced(sentences), before)


def test_tokenizes_in_tf_function(vocabulary):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        return vocabulary.detokenize_tensor(vocabulary.tokenize(strings))

    sentences = [s for s, _ in ROUND_TRIPS]
    out = [s.decode() for s in round_trip(tf.constant(sentences)).numpy()]
    assert out == [e for _, e in ROUND_TRIPS]


# ---- TextProcessor -----------------------------------------------------------


@pytest.fixture(scope="module")
def processor(pairs):
    return TextProcessor.from_sentences(
        pairs.sources,
        pairs.targets,
        tokenizer="subword",
        max_tokens=500,
        max_length=24,
    )


def test_processor_from_sentences(processor, pairs):
    assert processor.tokenizer == "subword"
    assert isinstance(processor.source, SubwordVocabulary)
    assert (processor.source.name, processor.target.name) == (
        "source",
        "target",
    )
    assert processor.max_length == processor.target.max_length == 24
    assert processor.source_vocabulary[:4] == RESERVED
    assert processor.source_vocab_size == processor.source.size
    assert processor.source_vocab_size <= 500
    # Each side learns from its own sentences.
    spanish = sentencepiece.SentencePieceProcessor(
        model_proto=processor.source.model
    )
    assert processor.target.model != processor.source.model
    sentence = pairs.sources[0]
    assert processor.source.tokenize([sentence]).numpy()[0].tolist() == [
        2,
        *spanish.encode(sentence),
        3,
    ]
    assert "subword" in repr(processor)


def test_processor_save_load(processor, pairs, tmp_path):
    processor.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "source.model",
        "target.model",
        "text_processor.json",
    ]
    config = json.loads((tmp_path / "text_processor.json").read_text("utf-8"))
    assert config == {
        "format_version": 2,
        "tokenizer": "subword",
        "max_length": 24,
        "source_vocabulary_file": "source.model",
        "target_vocabulary_file": "target.model",
    }
    assert (tmp_path / "target.model").read_bytes() == processor.target.model
    restored = TextProcessor.load(tmp_path)
    assert restored.tokenizer == "subword"
    assert restored.get_config() == processor.get_config()
    sentences = pairs.sources[:20] + pairs.targets[:20]
    for side in ("source", "target"):
        np.testing.assert_array_equal(
            getattr(restored, side).tokenize(sentences).numpy(),
            getattr(processor, side).tokenize(sentences).numpy(),
        )


def test_processor_config_round_trip(processor, pairs):
    config = json.loads(json.dumps(processor.get_config()))
    assert config["tokenizer"] == "subword"
    restored = TextProcessor.from_config(config)
    assert restored.source.model == processor.source.model
    assert restored.target.model == processor.target.model
    ids = processor.target.tokenize(pairs.targets[:20])
    np.testing.assert_array_equal(
        restored.target.tokenize(pairs.targets[:20]).numpy(), ids.numpy()
    )


def test_processor_from_built_vocabularies(vocabulary):
    processor = TextProcessor(vocabulary, vocabulary, max_length=10)
    assert processor.tokenizer == "subword"
    assert processor.source.name == "source"
    assert processor.target.max_length == 10
    kept = TextProcessor(vocabulary, vocabulary)
    assert kept.max_length == vocabulary.max_length
    word = text.Vocabulary(RESERVED + ["hola"], max_length=10)
    with pytest.raises(ValueError, match="'subword' and the target .*'word'"):
        TextProcessor(vocabulary, word, max_length=10)


def test_processor_invalid_tokenizer():
    with pytest.raises(ValueError, match="Invalid tokenizer='bpe'; expected"):
        TextProcessor.from_sentences(["a"], ["b"], tokenizer="bpe")


def test_processor_feeds_make_dataset(processor, pairs):
    with pytest.warns(UserWarning, match="1 of 300 source"):
        ds = text.make_dataset(pairs, processor, batch_size=16, seed=0)
    (source, target_in), target_out = next(iter(ds))
    assert source.shape[1] <= 24
    assert (source.numpy()[:, 0] == 2).all()
    assert (target_in.numpy()[:, 0] == 2).all()
    texts = processor.target.detokenize(target_in.numpy())
    assert all(t in pairs.targets for t in texts)


# ---- Translator and SavedModel export ----------------------------------------


@pytest.fixture(scope="module")
def translator(processor):
    """Random weights: poor translations, the same whatever runs them."""
    keras.utils.set_random_seed(0)
    model = build_seq2seq(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=8,
        units=16,
    )
    return Translator(model, processor, max_length=8, batch_size=4)


def test_translator_labels_with_pieces(translator):
    result = translator.translate_with_attention("Buenos días, señor.")
    assert result.source_tokens[0] == "[START]"
    assert result.source_tokens[-1] == "[END]"
    assert (
        result.source_tokens[1:-1]
        == translator.processor.source.ids_to_tokens(
            translator.processor.source.tokenize(["Buenos días, señor."])
        )[0][1:-1]
    )
    assert result.attention.shape == (
        len(result.target_tokens),
        len(result.source_tokens),
    )
    with pytest.raises(ValueError, match="replace_unknown=True needs a word"):
        translator.translate(["Hola"], replace_unknown=True)


_LOAD_EXPORTED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops
    model = tf.saved_model.load(sys.argv[1])
    out = model.translate(tf.constant(json.loads(sys.argv[2])))
    assert "keras_nmt" not in sys.modules, "keras_nmt imported"
    print(json.dumps([s.decode() for s in out.numpy()]))
    """
)


@pytest.mark.slow
def test_export_translates_with_tensorflow_alone(translator, tmp_path):
    path = tmp_path / "exported"
    translator.export(path)
    inputs = ["Hola, ¿qué tal?", "Ve ahora mismo.", "", "☃ 🙂", "Lo hice."]
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_EXPORTED, str(path), json.dumps(inputs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: keras_nmt is not on the path
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == translator.translate(inputs, method="greedy")
    assert out[2] == ""
