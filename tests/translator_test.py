import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap
import unicodedata
import zipfile

import hypothesis
import keras
import numpy as np
import pytest
import sacrebleu
from hypothesis import strategies as st

from keras_nmt import text
from keras_nmt.evaluation import corpus_scores
from keras_nmt.evaluation import normalize_for_scoring
from keras_nmt.files import TEMP_PREFIX
from keras_nmt.files import write_text_atomically
from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from keras_nmt.translator import Translation
from keras_nmt.translator import Translator
from keras_nmt.translator import TranslatorLoadError

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"


@pytest.fixture(scope="module")
def pairs():
    return text.split_pairs(text.read_pairs(FIXTURE, reverse=True), seed=0)


@pytest.fixture(scope="module")
def translator(pairs):
    """A tiny Spanish -> English model trained for a few seconds: its
    translations are poor but not empty."""
    keras.utils.set_random_seed(0)
    train = pairs.train
    processor = text.TextProcessor.from_sentences(
        train.sources, train.targets, max_length=16
    )
    model = build_seq2seq(
        processor.source_vocab_size,
        processor.target_vocab_size,
        embedding_dim=16,
        units=32,
    )
    compile_seq2seq(model, learning_rate=1e-2)
    ds = text.make_dataset(train, processor, batch_size=32, seed=0)
    model.fit(ds, epochs=8, verbose=0, shuffle=False)
    return Translator(model, processor, batch_size=8)


@pytest.fixture(scope="module")
def sentences(pairs):
    return list(dict.fromkeys(pairs.validation.sources))[:12]


@pytest.fixture(scope="module")
def saved_dir(translator, tmp_path_factory):
    directory = tmp_path_factory.mktemp("translator")
    translator.save(directory)
    return directory


# ---- translate ------------------------------------------------------------


def test_translate_returns_one_string_per_sentence(translator, sentences):
    out = translator.translate(sentences)
    assert isinstance(out, list) and len(out) == len(sentences)
    assert all(isinstance(s, str) for s in out)
    assert any(out), "the fixture model should produce some words"
    assert out == translator.translate(sentences)  # greedy is deterministic
    assert all(s == s.lower() for s in out)


def test_empty_and_wordless_sentences_give_empty_strings(translator):
    out = translator.translate(["", "   ", "\t\n", "¿Dónde está Tom?", "🙂"])
    assert out[:3] == ["", "", ""] and out[4] == ""
    assert out[3] == translator.translate(["¿Dónde está Tom?"])[0]
    assert translator.translate([]) == []
    assert translator.translate(["", " "], method="beam") == ["", ""]


def test_batching_does_not_change_translations(translator, sentences):
    # 12 sentences in batches of 8 vs. one batch of 64 vs. one at a time.
    wide = Translator(translator.model, translator.processor, batch_size=64)
    expected = wide.translate(sentences)
    assert translator.translate(sentences) == expected
    assert [translator.translate([s])[0] for s in sentences[:3]] == expected[:3]


def test_beam_width_one_and_top_1_sampling_equal_greedy(translator, sentences):
    greedy = translator.translate(sentences)
    assert (
        translator.translate(sentences, method="beam", beam_width=1) == greedy
    )
    assert translator.translate(sentences, method="sample", top_k=1) == greedy


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "topk"}, r"method='topk'.*\['greedy', 'sample', 'beam'\]"),
        ({"method": "beam", "beam_width": 0}, r"beam_width=0.*>= 1"),
        ({"method": "beam", "length_penalty": -1}, r"length_penalty=-1"),
        ({"method": "sample", "temperature": 0}, r"temperature=0.*> 0"),
        ({"method": "sample", "top_k": 0}, r"top_k=0"),
    ],
)
def test_invalid_options(translator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        translator.translate(["Hola."], **kwargs)


def test_a_single_string_is_an_error_that_says_to_pass_a_list(translator):
    with pytest.raises(ValueError, match=r"single string.*Pass a list"):
        translator.translate("Hola.")
    with pytest.raises(ValueError, match=r"element 1 is a int"):
        translator.translate(["Hola.", 3])


def test_constructor_validates_model_and_processor(translator, pairs):
    other = text.TextProcessor.from_sentences(["a b"], ["c d"])
    with pytest.raises(ValueError, match=r"source vocabulary has \d+ tokens"):
        Translator(translator.model, other)
    with pytest.raises(ValueError, match="TextProcessor"):
        Translator(translator.model, "processor")
    with pytest.raises(ValueError, match="keras.Model"):
        Translator(object(), translator.processor)
    with pytest.raises(ValueError, match="batch_size=0"):
        Translator(translator.model, translator.processor, batch_size=0)


@pytest.fixture(scope="module")
def mixed(pairs):
    """26 sentences of 4 to 16 tokens (two truncated to max_length=16),
    and two without words, in no order of length."""
    sources = [*dict.fromkeys([*pairs.validation.sources, *pairs.test.sources])]
    long = [" ".join(sources[i : i + 2]) for i in range(0, 16, 2)]
    mixed = [*sources[16:34], *long]
    np.random.default_rng(3).shuffle(mixed)
    return [*mixed[:5], "", *mixed[5:19], "🙂", *mixed[19:]]


def _source_lengths(translator, sentences):
    ids = translator.processor.source.tokenize_ragged(sentences)
    return [len(row) for row in ids.to_list()]


def test_calls_are_sorted_by_length_and_padded_to_buckets(
    translator, mixed, monkeypatch
):
    import keras_nmt.translator as module

    calls = []
    decode = module.decode

    def recording_decode(inference, source, options):
        calls.append(source.copy())
        return decode(inference, source, options)

    monkeypatch.setattr(module, "decode", recording_decode)
    translator.translate(mixed)
    lengths = sorted(n for n in _source_lengths(translator, mixed) if n > 2)
    assert len(lengths) == 26 and lengths[0] <= 8 < lengths[-1] == 16
    # Batches of 8 (batch_size), shortest first; the last 2 sentences in
    # a call of 2 rows. Columns: 8 while the longest of a batch fits, else
    # 16 (= max_length); never more than the longest needs.
    chunks = [lengths[i : i + 8] for i in range(0, 26, 8)]
    assert [c.shape for c in calls] == [
        (
            len(chunk) if len(chunk) in (1, 2, 4, 8) else 8,
            8 if max(chunk) <= 8 else 16,
        )
        for chunk in chunks
    ]
    decoded = [
        int(n)
        for call, chunk in zip(calls, chunks, strict=True)
        for n in (call[: len(chunk)] != 0).sum(axis=1)
    ]
    assert decoded == lengths
    # One sentence alone, in the columns of its own length.
    calls.clear()
    short = min(mixed[:5], key=len)
    translator.translate([short])
    assert [c.shape for c in calls] == [(1, 8)]


def test_compiling_each_bucket_is_not_warned_about(translator):
    """TensorFlow warns when a function retraces often; the Translator's
    bucketed shapes are a small set, by design: that warning is dropped
    for its decoding functions only."""
    import logging

    translator.translate(["Hola."])
    [dropping] = [
        f
        for f in logging.getLogger("tensorflow").filters
        if type(f).__name__ == "_BucketRetracing"
    ]

    def kept(message):
        record = logging.LogRecord(
            "tensorflow", logging.WARNING, "x.py", 1, message, (), None
        )
        return dropping.filter(record)

    tf_warning = (
        "5 out of the last 7 calls to <bound method {} of <{} object at "
        "0x7f>> triggered tf.function retracing. Tracing is expensive"
    )
    assert not kept(
        tf_warning.format(
            "Seq2SeqInference._greedy",
            "keras_nmt.seq2seq.inference.Seq2SeqInference",
        )
    )
    assert not kept(
        tf_warning.format(
            "EnsembleInference._beam_search",
            "keras_nmt.seq2seq.ensemble.EnsembleInference",
        )
    )
    assert kept(tf_warning.format("Model.call", "mymodel.Model"))
    assert kept("Some other warning about keras_nmt.seq2seq.inference")


def test_column_buckets():
    from keras_nmt.translator import _column_bucket

    got = {n: _column_bucket(n, 1000) for n in (1, 8, 9, 16, 17, 25, 33, 49)}
    assert got == {1: 8, 8: 8, 9: 16, 16: 16, 17: 24, 25: 32, 33: 48, 49: 64}
    assert [_column_bucket(n, 1000) for n in (65, 97, 129, 193)] == [
        96,
        128,
        192,
        256,
    ]
    # Each bucket holds the length, at most max_length; few buckets.
    for max_length in (3, 16, 24, 50, 200):
        buckets = {
            _column_bucket(n, max_length) for n in range(1, max_length + 1)
        }
        assert max(buckets) == max_length
        assert len(buckets) <= 2 * max_length.bit_length()
        for n in range(1, max_length + 1):
            assert n <= _column_bucket(n, max_length) <= max(8, 1.5 * n, n + 8)


@pytest.fixture(scope="module")
def alone_at_full_length(translator):
    """The old decoding, as a reference: a sentence decoded alone, its
    source padded to `processor.max_length` columns, by `Seq2SeqInference`
    itself; `(sentence, method, model=..., **options) -> Decoded` as NumPy
    arrays."""
    processor = translator.processor
    inferences = {}

    def decode(sentence, method, model=translator.model, **options):
        if id(model) not in inferences:
            inferences[id(model)] = Seq2SeqInference(
                model,
                start_token=processor.start_id,
                end_token=processor.end_id,
                max_length=translator.max_length,
            )
        inference = inferences[id(model)]
        ids = processor.source.tokenize_ragged([sentence]).to_list()[0]
        source = np.zeros((1, processor.max_length), "int32")
        source[0, : len(ids)] = ids
        run = inference.greedy if method == "greedy" else inference.beam_search
        return [keras.ops.convert_to_numpy(x) for x in run(source, **options)]

    return decode


def _unknown_replaced(processor, tokens, attention, sentence):
    """Luong et al.'s [UNK] replacement, written out for the reference."""
    if processor.target.unk_id not in tokens:
        return processor.target.detokenize(tokens[None])[0]
    words = text.standardize([sentence]).numpy()[0].decode().split()
    out = []
    for step, token in enumerate(tokens):
        if token in (processor.target.end_id, 0):
            break
        if token == processor.target.unk_id:
            out.append(words[np.argmax(attention[step, 1 : len(words) + 1])])
        else:
            out.append(processor.target.tokens[token])
    return text.join_tokens([out]).numpy()[0].decode()


@pytest.fixture(scope="module")
def unknowns(translator, mixed):
    """The fixture translator's model with its output bias of [UNK]
    raised until [UNK] appears in several greedy translations of `mixed`."""
    model = keras.models.clone_model(translator.model)
    model.set_weights(translator.model.get_weights())
    processor = translator.processor
    vocab_size, unk = processor.target_vocab_size, processor.target.unk_id
    [bias] = [
        w
        for w in model.get_layer("decoder").weights
        if tuple(w.shape) == (vocab_size,)
    ]
    prone = Translator(model, processor, batch_size=8)
    values = keras.ops.convert_to_numpy(bias)
    for _ in range(40):
        if sum("[UNK]" in t for t in prone.translate(mixed)) >= 4:
            return prone
        values[unk] += 0.25
        bias.assign(values)
    raise AssertionError("no [UNK] in the translations")


def test_sorted_bucketed_batches_translate_as_each_sentence_alone(
    unknowns, mixed, alone_at_full_length
):
    processor = unknowns.processor
    words = [s for s in mixed if _source_lengths(unknowns, [s])[0] > 2]
    greedy, replaced, unknown = [], [], 0
    for sentence in words:
        tokens, _, _, attention, _ = alone_at_full_length(
            sentence, "greedy", model=unknowns.model
        )
        greedy.append(processor.target.detokenize(tokens)[0])
        replaced.append(
            _unknown_replaced(processor, tokens[0], attention[0], sentence)
        )
        unknown += int(processor.target.unk_id in tokens)
    assert unknown >= 4 and len(words) == 26
    out = unknowns.translate(mixed)
    assert [out[i] for i, s in enumerate(mixed) if s in words] == greedy
    assert out[5] == out[20] == ""
    assert unknowns.translate(mixed, replace_unknown=True) == [
        replaced[words.index(s)] if s in words else "" for s in mixed
    ]
    assert sum(a != b for a, b in zip(greedy, replaced, strict=True)) >= 4


@pytest.mark.parametrize("n_best", [1, 3])
def test_sorted_bucketed_beam_search_equals_each_sentence_alone(
    translator, mixed, alone_at_full_length, n_best
):
    processor = translator.processor
    options = {"beam_width": 4, "length_penalty": 0.6}
    got = translator.translate_n_best(
        mixed, method="beam", n_best=n_best, **options
    )
    for sentence, hypotheses in zip(mixed, got, strict=True):
        if _source_lengths(translator, [sentence])[0] <= 2:
            assert hypotheses == [("", 0.0)] * n_best
            continue
        tokens, scores, *_ = alone_at_full_length(
            sentence, "beam", n_best=n_best, **options
        )
        texts = processor.target.detokenize(tokens[0, :n_best])
        assert [h.text for h in hypotheses] == texts
        np.testing.assert_allclose(
            [h.score for h in hypotheses], scores[0, :n_best], rtol=1e-5
        )


def test_options_that_cannot_work_are_refused_before_decoding(
    translator, monkeypatch
):
    import keras_nmt.translator as module

    size = translator.processor.target_vocab_size
    with pytest.raises(ValueError, match=rf"top_k={size + 1}.*has {size}"):
        translator.translate(["Hola."], method="sample", top_k=size + 1)
    with pytest.raises(ValueError, match=rf"beam_width={size + 1}.*<= {size}"):
        translator.translate(["Hola."], method="beam", beam_width=size + 1)
    # 8 rows x 4 beams need ~8 * 4 * 4 * (3 V + 16 * 16 + 48) bytes.
    monkeypatch.setattr(module, "_available_memory", lambda: 2**14)
    with pytest.raises(ValueError, match=r"beam_width=4: decoding 8.*GiB"):
        translator.translate(["Hola."], method="beam", beam_width=4)
    assert translator.translate(["Hola."], method="greedy")


def test_n_best_hypotheses_with_scores(translator, sentences):
    n_best = translator.translate_n_best(
        sentences, method="beam", beam_width=4, n_best=3
    )
    best = translator.translate(sentences, method="beam", beam_width=4)
    assert [len(h) for h in n_best] == [3] * len(sentences)
    assert [h[0].text for h in n_best] == best
    for hypotheses in n_best:
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match=r"n_best=2 with method='greedy'"):
        translator.translate_n_best(sentences, n_best=2)
    with pytest.raises(ValueError, match=r"n_best=5 with beam_width=4"):
        translator.translate_n_best(
            sentences, method="beam", beam_width=4, n_best=5
        )


# ---- attention maps --------------------------------------------------------


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_translate_with_attention(translator, method):
    sentence = "¿Dónde está Tom?"
    result = translator.translate_with_attention(sentence, method=method)
    assert isinstance(result, Translation)
    assert result.text == translator.translate([sentence], method=method)[0]
    assert result.source_tokens == [
        "[START]",
        "¿",
        "dónde",
        "está",
        "tom",
        "?",
        "[END]",
    ]
    assert result.attention.shape == (
        len(result.target_tokens),
        len(result.source_tokens),
    )
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    assert result.target_tokens
    words = [t for t in result.target_tokens if t != "[END]"]
    assert text.join_tokens([words]).numpy()[0].decode() == result.text
    assert math.isfinite(result.score) and result.score <= 0


def test_translate_with_attention_of_an_empty_sentence(translator):
    result = translator.translate_with_attention("  ")
    assert result.text == "" and result.source_tokens == []
    assert result.attention.shape == (0, 0)
    with pytest.raises(ValueError, match="one sentence as a string"):
        translator.translate_with_attention(["Hola."])


# ---- scoring -----------------------------------------------------------------


def test_bleu_of_perfect_translations_is_100():
    refs = [["Where is Tom?"], ["I like it.", "I love it."]]
    scores = corpus_scores(["Where is Tom?", "I like it."], refs)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["exact_match"] == 100.0
    assert scores["sentences"] == 2 and scores["references"] == 3


def test_bleu_of_a_hand_computed_case_is_cased_by_default():
    hypotheses = ["i like green apples a lot"]
    references = [["I like green apples a bit"]]
    scores = corpus_scores(hypotheses, references)
    # Cased: "i" != "I". Precisions 4/6, 3/5, 2/4, 1/3 (product 1/15),
    # equal lengths (BP = 1).
    assert scores["bleu"] == pytest.approx(100 * (1 / 15) ** 0.25)
    assert scores["bleu_cased"] == scores["bleu"]
    # Lowercased: 5/6, 4/5, 3/4, 2/3 (product 1/3).
    assert scores["bleu_lowercase"] == pytest.approx(100 * (1 / 3) ** 0.25)
    assert scores["exact_match"] == 0.0
    assert "tok:13a" in scores["bleu_signature"]
    assert "case:mixed" in scores["bleu_signature"]
    lowered = corpus_scores(hypotheses, references, lowercase=True)
    assert lowered["bleu"] == pytest.approx(100 * (1 / 3) ** 0.25)
    assert "case:lc" in lowered["bleu_signature"]


def test_bleu_equals_sacrebleu_with_several_references():
    hypotheses = ["Tom is tall.", "i am here!", "We won."]
    references = [
        ["Tom is tall.", "Tom's tall."],
        ["I'm here!"],
        ["We won.", "We have won.", "We've won."],
    ]
    scores = corpus_scores(hypotheses, references)
    streams = [
        ["Tom is tall.", "I'm here!", "We won."],
        ["Tom's tall.", None, "We have won."],
        [None, None, "We've won."],
    ]
    expected = sacrebleu.corpus_bleu(hypotheses, streams).score
    assert scores["bleu"] == pytest.approx(expected)
    assert scores["exact_match"] == pytest.approx(200 / 3)
    lowered = sacrebleu.corpus_bleu(hypotheses, streams, lowercase=True)
    assert scores["bleu_lowercase"] == pytest.approx(lowered.score)


def test_translations_are_scored_as_printed():
    # A detokeniser that leaves spaces inside dates, times and words must
    # not score as if it had not: no re-tokenising before sacrebleu.
    printed = ["Il est 10: 30 le 2024 - 08 - 02, est - ce vrai ?"]
    reference = ["Il est 10:30 le 2024-08-02, est-ce vrai ?"]
    scores = corpus_scores(printed, [reference])
    assert scores["exact_match"] == 0.0
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(printed, [reference]).score
    )
    assert scores["bleu"] < 80
    # Only what cannot be seen is normalised: NFC and whitespace.
    assert normalize_for_scoring(["  Cafe\u0301  au   lait. "]) == [
        "Caf\u00e9 au lait."
    ]
    assert corpus_scores(["Cafe\u0301 ?"], [["Caf\u00e9 ?"]])[
        "exact_match"
    ] == (100.0)
    assert corpus_scores(["Hello Tom"], [["Hello, Tom!"]])["exact_match"] == 0
    assert corpus_scores(["hello, tom!"], [["Hello, Tom!"]])["exact_match"] == 0
    assert (
        corpus_scores(["hello, tom!"], [["Hello, Tom!"]], lowercase=True)[
            "exact_match"
        ]
        == 100.0
    )


def test_corpus_scores_validates_its_inputs():
    with pytest.raises(ValueError, match="2 hypotheses and 1 reference"):
        corpus_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="sentence 0 has no reference"):
        corpus_scores(["a"], [[]])


def test_evaluate_groups_references_by_source(translator, monkeypatch):
    outputs = {"Hola.": "Hello.", "Adiós.": "Bye."}
    calls = []

    def fake_translate(sentences, **kwargs):
        calls.append(list(sentences))
        return [outputs[s] for s in sentences]

    monkeypatch.setattr(translator, "translate", fake_translate)
    scores = translator.evaluate(
        ["Hola.", "Adiós.", "Hola."], ["Hi.", "Goodbye.", "Hello."]
    )
    assert calls == [["Hola.", "Adiós."]]  # each source translated once
    expected = corpus_scores(
        ["Hello.", "Bye."], [["Hi.", "Hello."], ["Goodbye."]]
    )
    assert scores["bleu"] == pytest.approx(expected["bleu"])
    assert scores["exact_match"] == 50.0
    assert scores["sentences"] == 2 and scores["references"] == 3
    assert scores["method"] == "greedy"
    with pytest.raises(ValueError, match="2 sources and 1 references"):
        translator.evaluate(["a", "b"], ["c"])


def test_evaluate_runs_the_model(translator, pairs):
    scores = translator.evaluate(
        pairs.validation.sources, pairs.validation.targets
    )
    assert 0.0 <= scores["bleu"] <= 100.0
    assert scores["sentences"] == len(set(pairs.validation.sources))


# ---- save / load -------------------------------------------------------------


def test_save_load_round_trip(translator, saved_dir, sentences):
    names = {p.name for p in saved_dir.iterdir()}
    assert {
        "model.keras",
        "translator.json",
        "text_processor.json",
        "source_vocab.txt",
        "target_vocab.txt",
    } <= names
    config = json.loads((saved_dir / "translator.json").read_text())
    assert config["max_length"] == translator.max_length
    assert config["decoding"]["beam_width"] == translator.options.beam_width

    loaded = Translator.load(saved_dir)
    assert loaded.get_config() == translator.get_config()
    for method in ("greedy", "beam"):
        assert loaded.translate(
            sentences, method=method
        ) == translator.translate(sentences, method=method)


def test_jit_compile_is_a_setting_that_is_saved(
    translator, sentences, tmp_path
):
    graph = Translator(
        translator.model, translator.processor, batch_size=8, jit_compile=False
    )
    assert translator.jit_compile is True  # the default
    assert graph.get_config()["jit_compile"] is False
    # XLA decodes what the graph decodes.
    for method in ("greedy", "beam"):
        assert graph.translate(sentences, method=method) == (
            translator.translate(sentences, method=method)
        )
    xla = Translator(translator.model, translator.processor, batch_size=8)
    xla.save(tmp_path / "xla")
    config = json.loads((tmp_path / "xla" / "translator.json").read_text())
    assert config["jit_compile"] is True
    assert Translator.load(tmp_path / "xla").jit_compile is True
    config["jit_compile"] = False
    (tmp_path / "xla" / "translator.json").write_text(json.dumps(config))
    assert Translator.load(tmp_path / "xla").jit_compile is False
    # A translator.json from before the setting loads with the default.
    del config["jit_compile"]
    (tmp_path / "xla" / "translator.json").write_text(json.dumps(config))
    assert Translator.load(tmp_path / "xla").jit_compile is True
    # Changing it recompiles; invalid values are refused.
    inference = xla.inference
    xla.jit_compile = True
    assert xla.inference is inference
    xla.jit_compile = False
    assert xla.inference is not inference and not xla.jit_compile
    with pytest.raises(ValueError, match=r"jit_compile='yes'; expected True"):
        xla.jit_compile = "yes"
    with pytest.raises(ValueError, match=r"jit_compile=1; expected True or"):
        Translator(translator.model, translator.processor, jit_compile=1)


def test_load_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found: '.*nowhere'"):
        Translator.load(tmp_path / "nowhere")


def test_load_a_directory_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No translator.json in '"):
        Translator.load(tmp_path)


def test_load_a_run_that_never_completed_an_epoch(tmp_path):
    (tmp_path / "training.json").write_text("{}\n")
    with pytest.raises(TranslatorLoadError, match=r"not completed an epoch"):
        Translator.load(tmp_path)


def test_load_a_corrupted_model(saved_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in saved_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (broken / "model.keras").write_bytes(b"this is not a zip file")
    with pytest.raises(
        TranslatorLoadError, match=r"model file '.*model.keras'"
    ):
        Translator.load(broken)
    assert issubclass(TranslatorLoadError, ValueError)
    with zipfile.ZipFile(broken / "model.keras", "w") as archive:
        archive.writestr("config.json", "{truncated")
    with pytest.raises(
        TranslatorLoadError, match=r"model file '.*model.keras'"
    ):
        Translator.load(broken)
    (broken / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match=r"Model file not found"):
        Translator.load(broken)
    (broken / "translator.json").write_text("{not json")
    with pytest.raises(TranslatorLoadError, match="not a valid translator"):
        Translator.load(broken)


# ---- export ------------------------------------------------------------------

_LOAD_EXPORTED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the text ops the graph uses
    model = tf.saved_model.load(sys.argv[1])
    sentences = tf.constant(json.loads(sys.argv[2]))
    out = {
        name: [s.decode() for s in getattr(model, name)(sentences).numpy()]
        for name in ("translate", "translate_beam")
    }
    n_best = model.translate_n_best(sentences)
    out["n_best"] = [
        [[t.decode(), float(s)] for t, s in zip(texts, scores)]
        for texts, scores in zip(
            n_best["translations"].numpy(), n_best["scores"].numpy()
        )
    ]
    assert "keras_nmt" not in sys.modules, "keras_nmt imported"
    print(json.dumps(out))
    """
)


def test_export_translates_with_tensorflow_alone(
    translator, sentences, tmp_path
):
    path = tmp_path / "exported"
    translator.export(path)
    inputs = [*sentences[:6], "", "🙂", sentences[0]]
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
    assert out["translate"] == translator.translate(inputs)
    assert out["translate_beam"] == translator.translate(inputs, method="beam")
    assert out["translate"][6:8] == ["", ""]
    width = translator.options.beam_width
    expected = translator.translate_n_best(inputs, method="beam", n_best=width)
    assert [[t for t, _ in row] for row in out["n_best"]] == [
        [h.text for h in row] for row in expected
    ]
    np.testing.assert_allclose(
        [[s for _, s in row] for row in out["n_best"]],
        [[h.score for h in row] for row in expected],
        rtol=1e-5,
        atol=1e-6,
    )


def test_an_ensemble_translates_and_exports(translator, sentences, tmp_path):
    keras.utils.set_random_seed(1)
    other = build_seq2seq(
        translator.processor.source_vocab_size,
        translator.processor.target_vocab_size,
        embedding_dim=8,
        units=16,
        style="luong",
        attention="dot",
    )
    alone = Translator(translator.model, translator.processor, ensemble=[])
    assert alone.translate(sentences, method="beam") == translator.translate(
        sentences, method="beam"
    )
    pair = Translator(
        translator.model, translator.processor, ensemble=[other], batch_size=8
    )
    out = pair.translate(sentences, method="beam")
    assert len(out) == len(sentences)
    with pytest.raises(ValueError, match=r"ensemble is not saved"):
        pair.save(tmp_path / "nope")
    path = tmp_path / "exported"
    pair.export(path)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_EXPORTED,
            str(path),
            json.dumps(sentences),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads(result.stdout.strip().splitlines()[-1])
    assert exported["translate_beam"] == out
    assert exported["translate"] == pair.translate(sentences)


def test_load_ensemble_checks_the_vocabularies(saved_dir, tmp_path):
    both = Translator.load_ensemble([saved_dir, saved_dir])
    single = Translator.load(saved_dir)
    sentences = ["Hola.", "¿Dónde está Tom?"]
    assert both.translate(sentences) == single.translate(sentences)
    other = tmp_path / "other"
    processor = text.TextProcessor.from_sentences(["a b"], ["c d"])
    Translator(
        build_seq2seq(
            processor.source_vocab_size,
            processor.target_vocab_size,
            embedding_dim=4,
            units=8,
        ),
        processor,
    ).save(other)
    with pytest.raises(ValueError, match=r"vocabularies differ"):
        Translator.load_ensemble([saved_dir, other])


def test_unknown_words_are_replaced_by_the_most_attended_source_word(
    translator, monkeypatch
):
    import keras_nmt.translator as module

    processor = translator.processor
    unk, end = processor.target.unk_id, processor.target.end_id
    index = next(
        i
        for i, t in enumerate(processor.target.tokens)
        if i > 3 and t.isalpha()
    )
    word = processor.target.tokens[index]
    sentence = "Zyxqt come manzanas."  # "zyxqt" is not in the vocabulary

    def fake_decode(inference, source, options):
        rows, length = source.shape
        tokens = np.zeros((rows, 4), "int32")
        tokens[:, :3] = [index, unk, end]
        attention = np.zeros((rows, 4, length), "float32")
        attention[:, 0, 2] = 1.0  # the step of `word` looks at "come"
        attention[:, 1, 1] = 0.9  # the [UNK] step looks at "zyxqt"
        attention[:, 1, 3] = 0.1
        return (
            tokens,
            np.zeros(rows, "float32"),
            np.zeros(rows, "float32"),
            attention,
            np.full(rows, 3, "int32"),
        )

    monkeypatch.setattr(module, "decode", fake_decode)
    assert translator.translate([sentence]) == [f"{word} [UNK]"]
    assert translator.translate([sentence], replace_unknown=True) == [
        f"{word} zyxqt"
    ]


# ---- crash-safe saving -------------------------------------------------------


def _copy_dir(source, target):
    target.mkdir()
    for file in source.iterdir():
        if file.is_file():
            (target / file.name).write_bytes(file.read_bytes())
    return target


def _contents(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_a_crash_while_saving_keeps_the_previous_translator(
    translator, saved_dir, tmp_path, monkeypatch, sentences
):
    directory = _copy_dir(saved_dir, tmp_path / "translator")
    before = _contents(directory)

    def save_half_then_crash(self, filepath, *args, **kwargs):
        pathlib.Path(filepath).write_bytes(b"PK\x03\x04 half of a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", save_half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        translator.save(directory)
    monkeypatch.undo()
    # Nothing under a real name changed, and no partial file is left.
    assert _contents(directory) == before
    loaded = Translator.load(directory)
    assert loaded.translate(sentences[:3]) == translator.translate(
        sentences[:3]
    )


def test_leftover_temporary_files_are_ignored_then_cleaned(
    translator, saved_dir, tmp_path
):
    directory = _copy_dir(saved_dir, tmp_path / "translator")
    # What a save killed midway leaves: a partial model, a staging folder.
    (directory / f"{TEMP_PREFIX}model-1234.keras").write_bytes(b"PK\x03")
    (directory / f"{TEMP_PREFIX}abcd").mkdir()
    (directory / f"{TEMP_PREFIX}abcd" / "model.keras").write_bytes(b"PK")
    assert Translator.load(directory).get_config() == translator.get_config()
    translator.save(directory)
    assert not [p for p in directory.iterdir() if TEMP_PREFIX in p.name]
    Translator.load(directory)


def test_write_text_atomically_keeps_the_old_file_on_a_crash(
    tmp_path, monkeypatch
):
    path = tmp_path / "training.json"
    write_text_atomically(path, '{"epochs": 1}\n')
    assert path.read_text() == '{"epochs": 1}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes
    write_text = pathlib.Path.write_text

    def write_half_then_crash(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", write_half_then_crash)
    with pytest.raises(OSError):
        write_text_atomically(path, '{"epochs": 2, "units": 256}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"epochs": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["training.json"]


def test_a_crash_while_exporting_keeps_the_previous_savedmodel(
    translator, tmp_path, monkeypatch
):
    path = tmp_path / "exported"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"the previous export")
    (path / "variables").mkdir()

    def write_half_then_crash(self, filepath, **kwargs):
        pathlib.Path(filepath, "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    # Only the file handling is under test: skip tracing the graphs. (The
    # class is the backend's, which ExportArchive() returns.)
    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "add_endpoint", lambda *a, **k: None)
    monkeypatch.setattr(archive_class, "write_out", write_half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        translator.export(path)
    assert (path / "saved_model.pb").read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_export_never_overwrites_a_directory_that_is_not_a_savedmodel(
    translator, tmp_path
):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not a SavedModel directory"):
        translator.export(tmp_path)
    with pytest.raises(ValueError, match=r"not a SavedModel directory"):
        translator.export(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# ---- bad input ---------------------------------------------------------------


def test_a_10000_word_sentence_is_truncated_with_a_warning(translator):
    sentence = " ".join(["casa"] * 10_000) + "."
    with pytest.warns(
        UserWarning, match=r"'source': 1 of 2 sentence\(s\).*truncated"
    ):
        out = translator.translate([sentence, "Hola."])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    with pytest.warns(UserWarning, match="truncated"):
        result = translator.translate_with_attention(sentence)
    max_length = translator.processor.max_length
    assert len(result.source_tokens) == max_length
    assert result.source_tokens[-1] == "[END]"
    assert result.attention.shape[1] == max_length


def test_a_10000_word_sentence_is_truncated_in_make_dataset(translator):
    processor = translator.processor
    sentence = " ".join(["casa"] * 10_000)
    with pytest.warns(UserWarning, match=r"1 of 2 source .*truncated"):
        ds = text.make_dataset(
            ([sentence, "Hola."], ["A house.", sentence]),
            processor,
            batch_size=2,
            shuffle=False,
        )
    (source, target_in), target_out = next(iter(ds))
    assert source.shape == (2, processor.max_length)
    assert source.numpy()[0, -1] == processor.end_id
    assert target_out.shape == (2, processor.max_length - 1)
    assert target_out.numpy()[1, -1] == processor.end_id


def test_unknown_words_become_unk(translator):
    result = translator.translate_with_attention("Xylofón qwzrt Tom.")
    assert result.source_tokens[:3] == ["[START]", "[UNK]", "[UNK]"]
    assert np.isfinite(result.attention).all()


def test_load_a_path_that_is_a_file_or_a_foreign_zip(saved_dir, tmp_path):
    with pytest.raises(TranslatorLoadError, match=r"is a file, not a"):
        Translator.load(saved_dir / "model.keras")
    broken = _copy_dir(saved_dir, tmp_path / "foreign")
    with zipfile.ZipFile(broken / "model.keras", "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras model")
    with pytest.raises(
        TranslatorLoadError, match=r"model file '.*model.keras'"
    ):
        Translator.load(broken)
    (broken / "source_vocab.txt").write_bytes(b"\xff\xfe not a vocabulary")
    with pytest.raises(TranslatorLoadError, match=r"vocabularies"):
        Translator.load(broken)


# ---- safe mode ---------------------------------------------------------------


def test_our_keras_files_hold_no_code_and_load_in_safe_mode(saved_dir):
    with zipfile.ZipFile(saved_dir / "model.keras") as archive:
        config = archive.read("config.json").decode("utf-8")
    assert '"Lambda"' not in config and "__lambda__" not in config
    assert "function" not in json.loads(config)["config"]
    keras.saving.load_model(saved_dir / "model.keras", safe_mode=True)


def test_translator_load_keeps_safe_mode_on(saved_dir, monkeypatch):
    load_model = keras.saving.load_model
    calls = []

    def recording_load_model(*args, **kwargs):
        calls.append(kwargs)
        return load_model(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", recording_load_model)
    Translator.load(saved_dir)
    assert calls and calls[0].get("safe_mode", True) is True


def test_a_keras_file_with_code_is_refused_and_never_run(saved_dir, tmp_path):
    ran = tmp_path / "the-lambda-ran"
    # A Lambda layer with a Python lambda: saved as bytecode in the file.
    code = eval(f"lambda x: (open({str(ran)!r}, 'w').close(), x)[1]")  # noqa: S307
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(code)(inputs))
    crafted = _copy_dir(saved_dir, tmp_path / "crafted")
    (crafted / "model.keras").unlink()
    model.save(crafted / "model.keras")
    ran.unlink()  # calling the layer to build the model ran it once
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(crafted / "model.keras", safe_mode=True)
    with pytest.raises(TranslatorLoadError, match=r"Python code.*safe mode"):
        Translator.load(crafted)
    assert not ran.exists()


# ---- property: any Unicode text translates ----------------------------------

# Fragments that stress the text pipeline: words of the training data,
# combining marks, right-to-left scripts and marks, emoji (with skin tones and
# zero-width joiners), CJK, control characters, bidi overrides, odd spaces.
_FRAGMENTS = [
    "Tom",
    "¿Dónde",
    "está",
    "casa",
    "?",
    "¡",
    "e\u0301",
    "\u0301\u0302\u0303",
    "שלום",
    "مرحبا بالعالم",
    "\u200f",
    "\u202e",
    "🙂",
    "👩🏽\u200d💻",
    "🇪🇸",
    "日本語",
    "\x00",
    "\x07",
    "\t",
    "\n",
    "\u00a0",
    "\u3000",
    "\ufeff",
    " ",
]


def _nfc(token):
    return unicodedata.normalize("NFC", token)


@st.composite
def unicode_sentences(draw):
    """Arbitrary code points, or fragments joined, sometimes very long."""
    if draw(st.booleans()):
        text = draw(st.text(max_size=80))
    else:
        text = "".join(draw(st.lists(st.sampled_from(_FRAGMENTS), max_size=12)))
    if draw(st.integers(0, 4)) == 0:
        text = text * draw(st.integers(50, 2000))
    return text


@pytest.mark.filterwarnings("ignore:.*were truncated")
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(st.lists(unicode_sentences(), min_size=1, max_size=3))
def test_any_unicode_text_translates(translator, texts):
    processor = translator.processor
    standardized = [s.decode("utf-8") for s in text.standardize(texts).numpy()]
    for line in standardized:
        assert line == line.strip() and "  " not in line
    ids = processor.source.tokenize(texts).numpy()
    assert ids.shape[0] == len(texts) and ids.shape[1] <= processor.max_length
    assert 0 <= ids.min() and ids.max() < processor.source_vocab_size

    out = translator.translate(texts)
    assert len(out) == len(texts) and all(isinstance(s, str) for s in out)
    for sentence, translation, words in zip(
        texts, out, standardized, strict=True
    ):
        result = translator.translate_with_attention(sentence)
        assert result.text == translation
        if not words:  # nothing to translate
            assert translation == "" and result.attention.shape == (0, 0)
            continue
        # Ids within the vocabularies (tokens are shown NFC-composed).
        for tokens, vocabulary in (
            (result.source_tokens, processor.source_vocabulary),
            (result.target_tokens, processor.target_vocabulary),
        ):
            assert set(tokens) <= {_nfc(t) for t in vocabulary}
        assert len(result.source_tokens) <= processor.max_length
        attention = result.attention
        assert attention.shape == (
            len(result.target_tokens),
            len(result.source_tokens),
        )
        assert np.isfinite(attention).all() and (attention >= 0).all()
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
