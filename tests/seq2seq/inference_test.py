import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq

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


def _python_greedy(model, source, max_length):
    """Reference: a Python loop of eager decoder steps and NumPy argmax."""
    encoder = model.get_layer("encoder")
    decoder = model.get_layer("decoder")
    outputs, mask, final = encoder(source)
    state = decoder.initial_state(final)
    constants = decoder.constants(outputs, mask)
    tokens = np.full((source.shape[0],), START, "int32")
    done = np.zeros(source.shape[0], bool)
    result = np.zeros((source.shape[0], max_length), "int32")
    for t in range(max_length):
        logits, _, state = decoder.step(
            ops.convert_to_tensor(tokens), state, constants
        )
        tokens = np.argmax(ops.convert_to_numpy(logits), -1).astype("int32")
        result[:, t] = np.where(done, 0, tokens)
        done |= tokens == END
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
