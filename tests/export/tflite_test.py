import pathlib

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="TFLite export converts a TensorFlow graph",
)

from keras_nmt import text  # noqa: E402
from keras_nmt.seq2seq import build_seq2seq  # noqa: E402
from keras_nmt.seq2seq import compile_seq2seq  # noqa: E402
from keras_nmt.tflite_export import TFLiteTranslator  # noqa: E402
from keras_nmt.tflite_export import export_tflite  # noqa: E402
from keras_nmt.translator import Translator  # noqa: E402

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"


@pytest.fixture(scope="module")
def pairs():
    return text.split_pairs(text.read_pairs(FIXTURE, reverse=True), seed=0)


@pytest.fixture(scope="module")
def translator(pairs):
    """A tiny Spanish -> English model trained for a few seconds: poor but
    not empty translations, of varied lengths."""
    keras.utils.set_random_seed(0)
    processor = text.TextProcessor.from_sentences(
        pairs.train.sources, pairs.train.targets, max_length=16
    )
    model = build_seq2seq(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=16,
        units=32,
    )
    compile_seq2seq(model, learning_rate=1e-2)
    ds = text.make_dataset(pairs.train, processor, batch_size=32, seed=0)
    model.fit(ds, epochs=8, verbose=0, shuffle=False)
    return Translator(model, processor, batch_size=8)


@pytest.fixture(scope="module")
def sentences(pairs):
    return list(dict.fromkeys(pairs.validation.sources))[:12]


@pytest.fixture(scope="module")
def greedy_file(translator, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "greedy.tflite"
    export_tflite(translator, path)
    return path


def _padded(processor, sentence):
    ids = processor.source.tokenize_ragged([sentence]).to_list()[0]
    source = np.zeros((1, processor.max_length), "int32")
    source[0, : len(ids)] = ids
    return source


def test_greedy_equals_translator_token_for_token(
    translator, sentences, greedy_file
):
    lite = TFLiteTranslator(greedy_file, translator.processor)
    expected = translator.translate(sentences, method="greedy")
    assert any(expected) and len(set(expected)) > 1
    assert lite.translate(sentences) == expected
    # Token for token, [END] and padding included (16 rows, as translate
    # decoded them: the compiled loop is reused).
    sources = np.concatenate(
        [_padded(translator.processor, s) for s in sentences]
        + [_padded(translator.processor, sentences[-1])] * 4
    )
    tokens = translator.inference.greedy(sources).tokens
    tokens = keras.ops.convert_to_numpy(tokens)[: len(sentences)]
    lite_tokens = np.concatenate([lite.translate_ids(s[None]) for s in sources])
    np.testing.assert_array_equal(lite_tokens[: len(sentences)], tokens)


def test_greedy_equals_saved_model(
    translator, sentences, greedy_file, tmp_path
):
    import tensorflow as tf

    translator.export(tmp_path / "saved")
    saved = tf.saved_model.load(str(tmp_path / "saved"))
    texts = saved.translate(tf.constant(sentences)).numpy()
    lite = TFLiteTranslator(greedy_file, translator.processor)
    assert lite.translate(sentences) == [t.decode("utf-8") for t in texts]


def test_wordless_sentences_and_input_checks(translator, greedy_file):
    lite = TFLiteTranslator(greedy_file, translator.processor)
    assert lite.translate(["", "  ", "🙂"]) == ["", "", ""]
    assert lite.translate([]) == []
    with pytest.raises(ValueError, match="a single string"):
        lite.translate("Hola.")
    other = text.TextProcessor.from_sentences(["Hola."], ["Hi."], max_length=8)
    with pytest.raises(ValueError, match=r"shape \(1, 16\).*\(1, 8\)"):
        TFLiteTranslator(greedy_file, other)


def test_beam_with_rules_equals_translator(translator, sentences, tmp_path):
    ruled = Translator(
        translator.model,
        translator.processor,
        beam_width=3,
        length_penalty=0.6,
        no_repeat_ngram_size=2,
    )
    path = tmp_path / "beam.tflite"
    export_tflite(ruled, path, method="beam")
    lite = TFLiteTranslator(path, translator.processor)
    expected = ruled.translate(sentences, method="beam")
    assert lite.translate(sentences) == expected
    assert expected != ruled.translate(sentences, no_repeat_ngram_size=0)


def test_quantized_model_is_smaller_and_translates(
    translator, sentences, greedy_file, tmp_path
):
    # It replaces an earlier model, through a temporary file.
    path = tmp_path / "nested" / "model.tflite"
    path.parent.mkdir()
    path.write_bytes(greedy_file.read_bytes())
    export_tflite(translator, path, quantize=True)
    assert not [p for p in path.parent.iterdir() if p.name != path.name]
    assert path.stat().st_size < 0.6 * greedy_file.stat().st_size
    lite = TFLiteTranslator(path, translator.processor)
    vocab = translator.processor.target_vocab_size
    for sentence in sentences:
        tokens = lite.translate_ids(_padded(translator.processor, sentence))
        assert tokens.shape == (1, translator.max_length)
        assert tokens.dtype == np.int32
        assert ((tokens >= 0) & (tokens < vocab)).all()
    out = lite.translate(sentences)
    assert all(isinstance(s, str) for s in out) and any(out)


def test_bad_paths_are_refused(translator, tmp_path):
    message = (
        r"Cannot export to .*it exists and is %s, so it is not overwritten"
    )
    with pytest.raises(ValueError, match=message % "a directory"):
        export_tflite(translator, tmp_path)
    notes = tmp_path / "notes.tflite"
    notes.write_text("my notes")
    with pytest.raises(ValueError, match=message % "not a TFLite model"):
        export_tflite(translator, notes)
    assert notes.read_text() == "my notes"
    with pytest.raises(ValueError, match=r"method='sample'.*'greedy', 'beam'"):
        export_tflite(translator, tmp_path / "x.tflite", method="sample")
    with pytest.raises(ValueError, match="is not a TFLite model"):
        TFLiteTranslator(notes, translator.processor)
