import math
from fractions import Fraction

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from tests.decoding.toy import allowed as allowed_tokens

START, END = 1, 2


def _model(style="bahdanau", attention="bahdanau", vocab=20, units=16):
    return build_seq2seq(
        vocab,
        vocab,
        embedding_dim=8,
        units=units,
        attention=attention,
        style=style,
    )


def _sources(rng, batch=4, length=6, vocab=20):
    source = rng.integers(3, vocab, size=(batch, length)).astype("int32")
    source[1, 2:] = 0
    source[-1, 4:] = 0
    return source


def _limits(source, max_length, ratio):
    """`min(max_length, ceil(ratio * source length))`, ratio read as the
    decimal it is written as (`Fraction("1.1") * 10 == 11`)."""
    if ratio is None:
        return [max_length] * source.shape[0]
    lengths = (source != 0).sum(axis=1)
    ratio = Fraction(str(ratio))
    return [max(1, min(max_length, math.ceil(ratio * n))) for n in lengths]


def _python_greedy(
    model, source, max_length, min_length=0, ngram=0, ratio=None
):
    """Reference: a Python loop of eager decoder steps; each row takes the
    most probable token that keeps its tokens `toy.allowed` and stops at
    END, at its length limit or when no token is allowed."""
    encoder = model.get_layer("encoder")
    decoder = model.get_layer("decoder")
    outputs, mask, final = encoder(source)
    state = decoder.initial_state(final)
    constants = decoder.constants(outputs, mask)
    tokens = np.full((source.shape[0],), START, "int32")
    limits = _limits(source, max_length, ratio)
    done = np.zeros(source.shape[0], bool)
    result = np.zeros((source.shape[0], max_length), "int32")
    for t in range(max_length):
        logits, _, state = decoder.step(
            ops.convert_to_tensor(tokens), state, constants
        )
        logits = ops.convert_to_numpy(logits)
        for row in range(source.shape[0]):
            if done[row]:
                continue
            sequence = list(result[row, :t])
            allowed = [
                v
                for v in np.argsort(-logits[row], kind="stable")
                if allowed_tokens([*sequence, v], START, END, min_length, ngram)
            ]
            if not allowed:
                done[row] = True
                continue
            tokens[row] = result[row, t] = allowed[0]
            done[row] = allowed[0] == END or t + 1 == limits[row]
    return result


@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_compiled_greedy_equals_python_loop(style, rng):
    model = _model(style)
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=7
    )
    out = inference.greedy(source)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(out.tokens), _python_greedy(model, source, 7)
    )
    weights = ops.convert_to_numpy(out.attention)
    lengths = ops.convert_to_numpy(out.lengths)
    for row in range(source.shape[0]):
        generated = weights[row, : lengths[row]]
        np.testing.assert_allclose(generated.sum(-1), 1.0, atol=1e-5)
        assert np.all(generated[:, source[row] == 0] == 0)
        assert np.all(weights[row, lengths[row] :] == 0)


def test_greedy_options_equal_python_loop(rng):
    # Source lengths 6, 2, 6 and 4: with ratio 0.7 the rows stop after at
    # most 5, 2, 5 and 3 tokens; no END before 2 tokens, no bigram twice.
    model = _model("luong", "general")
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=7
    )
    options = {"min_length": 2, "no_repeat_ngram_size": 2}
    out = inference.greedy(source, max_length_ratio=0.7, **options)
    expected = _python_greedy(
        model, source, 7, min_length=2, ngram=2, ratio=0.7
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(out.tokens), expected)
    lengths = ops.convert_to_numpy(out.lengths)
    assert np.all(lengths <= [5, 2, 5, 3])
    # Without the ratio the rows run longer: the limit did cut them.
    free = ops.convert_to_numpy(inference.greedy(source, **options).lengths)
    assert np.any(free > lengths)


def test_beam_search_options(rng):
    model = _model()
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=7
    )
    alpha, beta = 0.6, 0.4
    out = inference.beam_search(
        source,
        beam_width=3,
        length_penalty=alpha,
        coverage_penalty=beta,
        min_length=1,
        no_repeat_ngram_size=2,
        max_length_ratio=1.5,
    )
    tokens = ops.convert_to_numpy(out.tokens)
    lengths = ops.convert_to_numpy(out.lengths)
    scores = ops.convert_to_numpy(out.scores)
    log_probs = ops.convert_to_numpy(out.log_probs)
    attention = ops.convert_to_numpy(out.attention)
    limits = _limits(source, 7, 1.5)
    assert np.all(np.isfinite(scores)), "padding is left out of coverage"
    for b in range(source.shape[0]):
        for k in range(3):
            n = lengths[b, k]
            hypothesis = tokens[b, k, :n]
            assert n <= limits[b]
            assert allowed_tokens(hypothesis, START, END, 1, 2)
            expected = log_probs[b, k] / ((5.0 + n) / 6.0) ** alpha
            if hypothesis[-1] == END:
                coverage = attention[b, k, :n].sum(axis=0)
                assert np.all(coverage[source[b] == 0] == 0)
                coverage = coverage[source[b] != 0]
                expected += beta * np.log(np.minimum(coverage, 1.0)).sum()
            np.testing.assert_allclose(scores[b, k], expected, rtol=1e-4)


def test_beam_n_best_keeps_the_best_exact(rng):
    model = _model("luong", "dot")
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=8
    )
    full = inference.beam_search(source, beam_width=4, length_penalty=1.0)
    for n in (1, 2):
        early = inference.beam_search(
            source, beam_width=4, length_penalty=1.0, n_best=n
        )
        for field in ("tokens", "lengths", "scores"):
            np.testing.assert_allclose(
                ops.convert_to_numpy(getattr(early, field))[:, :n],
                ops.convert_to_numpy(getattr(full, field))[:, :n],
                rtol=1e-6,
            )


def test_sample_never_draws_pad_or_start_and_tiny_top_p_is_greedy(rng):
    model = _model()
    source = _sources(rng, batch=16)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=6, seed=1
    )
    out = inference.sample(source, temperature=3.0, top_k=10, top_p=0.9)
    tokens = ops.convert_to_numpy(out.tokens)
    lengths = ops.convert_to_numpy(out.lengths)
    for row in range(16):
        assert allowed_tokens(tokens[row, : lengths[row]], START, END)
    # The nucleus of a tiny mass is the most probable token alone.
    nucleus = inference.sample(source, top_p=1e-6)
    greedy = inference.greedy(source)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(nucleus.tokens),
        ops.convert_to_numpy(greedy.tokens),
    )


def test_beam_width_one_equals_greedy(rng):
    model = _model("luong", "general")
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=7
    )
    greedy = inference.greedy(source)
    beam = inference.beam_search(source, beam_width=1)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(beam.tokens)[:, 0],
        ops.convert_to_numpy(greedy.tokens),
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(beam.log_probs)[:, 0],
        ops.convert_to_numpy(greedy.log_probs),
        atol=1e-4,
    )


def test_beam_hypotheses_are_sorted_and_scored_by_the_model(rng):
    model = _model()
    source = _sources(rng, batch=2)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=5
    )
    out = inference.beam_search(source, beam_width=3)
    scores = ops.convert_to_numpy(out.scores)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    # Re-score every hypothesis with a teacher-forced pass.
    tokens = ops.convert_to_numpy(out.tokens)
    lengths = ops.convert_to_numpy(out.lengths)
    log_probs = ops.convert_to_numpy(out.log_probs)
    for b in range(2):
        for k in range(3):
            hyp = tokens[b, k, : lengths[b, k]]
            target_in = np.concatenate([[START], hyp[:-1]])[None].astype(
                "int32"
            )
            logits = ops.convert_to_numpy(
                model((source[b : b + 1], target_in))
            )[0]
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            expected = logp[np.arange(len(hyp)), hyp].sum()
            np.testing.assert_allclose(log_probs[b, k], expected, atol=1e-3)


def test_loaded_model_decodes_identically(tmp_path, rng):
    model = _model("bahdanau", "general")
    source = _sources(rng)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    a = Seq2SeqInference(model, start_token=START, end_token=END, max_length=6)
    b = Seq2SeqInference(loaded, start_token=START, end_token=END, max_length=6)
    for method, kwargs in (("greedy", {}), ("beam_search", {"beam_width": 3})):
        x = getattr(a, method)(source, **kwargs)
        y = getattr(b, method)(source, **kwargs)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(x.tokens), ops.convert_to_numpy(y.tokens)
        )


def test_inference_reads_current_weights(rng):
    """Decoding after more training uses the new weights (no stale copy)."""
    model = _model()
    source = _sources(rng)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=6
    )
    before = ops.convert_to_numpy(inference.greedy(source).log_probs)
    for variable in model.get_layer("decoder").output_dense.trainable_variables:
        variable.assign(variable * 3.0)
    after = ops.convert_to_numpy(inference.greedy(source).log_probs)
    assert not np.allclose(before, after)


def test_bad_source_shape_raises():
    inference = Seq2SeqInference(_model(), start_token=START, end_token=END)
    with pytest.raises(
        ValueError, match=r"\(batch_size, source_length\).*\(5,\)"
    ):
        inference.greedy(np.ones((5,), "int32"))


def _reversal_data(rng, n, vocab=20):
    """Random sequences of 3-10 tokens (3..vocab-1) and their reversal."""
    source = np.zeros((n, 10), "int32")
    target = np.zeros((n, 12), "int32")
    for i in range(n):
        length = rng.integers(3, 11)
        seq = rng.integers(3, vocab, size=length)
        source[i, :length] = seq
        target[i, : length + 2] = np.concatenate([[START], seq[::-1], [END]])
    return source, target


@pytest.mark.slow
@pytest.mark.parametrize(
    "style,attention", [("bahdanau", "bahdanau"), ("luong", "dot")]
)
def test_learns_to_reverse_sequences(style, attention):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    source, target = _reversal_data(rng, 16000)
    valid_source, valid_target = _reversal_data(rng, 500)
    model = build_seq2seq(
        20, 20, embedding_dim=32, units=128, attention=attention, style=style
    )
    compile_seq2seq(model, learning_rate=3e-3)
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            ((source, target[:, :-1]), target[:, 1:])
        )
        .shuffle(16000, seed=0)
        .batch(64)
    )
    model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=11
    )
    tokens = ops.convert_to_numpy(inference.greedy(valid_source).tokens)
    lengths = (valid_source > 0).sum(1)
    exact = [
        np.array_equal(
            tokens[i, : lengths[i] + 1], valid_target[i, 1 : lengths[i] + 2]
        )
        for i in range(len(valid_source))
    ]
    assert np.mean(exact) >= 0.95


def test_decodes_inside_a_graph_with_unknown_source_length(rng):
    """What a SavedModel signature with a `[None, None]` input traces."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function with a None input dimension")
    import tensorflow as tf

    from keras_nmt import decoding

    model = _model("luong", "general")
    inference = Seq2SeqInference(
        model, start_token=START, end_token=END, max_length=6
    )

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def run(source):
        state, constants = inference.encode(source)
        start = tf.fill([tf.shape(source)[0]], START)
        greedy = decoding.greedy_search(
            inference.step, start, state, constants, max_length=6, end_token=END
        )
        beam = decoding.beam_search(
            inference.step,
            start,
            state,
            constants,
            max_length=6,
            end_token=END,
            beam_width=3,
        )
        return greedy.tokens, beam.tokens

    for length in (4, 6):
        source = _sources(rng, length=length)
        greedy, beam = run(source)
        np.testing.assert_array_equal(
            greedy, ops.convert_to_numpy(inference.greedy(source).tokens)
        )
        np.testing.assert_array_equal(
            beam,
            ops.convert_to_numpy(
                inference.beam_search(source, beam_width=3).tokens
            ),
        )
