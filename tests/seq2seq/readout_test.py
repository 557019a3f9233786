"""The deep-output readout (`readout_units`) and the stacked encoder
(`encoder_layers`)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import AttentionDecoder
from keras_nmt.seq2seq import Encoder
from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.seq2seq import build_seq2seq
from keras_nmt.seq2seq import compile_seq2seq
from tests.seq2seq.inference_test import _python_greedy


def _batch(rng, batch=3, source_length=6, target_length=5, vocab=13):
    source = rng.integers(3, vocab, size=(batch, source_length))
    source[0, 4:] = 0
    source[1, 1:] = 0
    target = rng.integers(1, vocab, size=(batch, target_length))
    target[-1, 3:] = 0
    return source.astype("int32"), target.astype("int32")


def _model(vocab=13, **options):
    return build_seq2seq(vocab, vocab, embedding_dim=6, units=8, **options)


def _numpy(x):
    return ops.convert_to_numpy(x).astype(np.float64)


def _teacher_forced(model, encoded, target, training=False):
    """Logits of the decoder's `call` on the encoder's `encoded` output
    (the encoder runs once per test: on JAX every call compiles)."""
    outputs, mask, final = encoded
    decoder = model.get_layer("decoder")
    logits, _ = decoder(target, outputs, mask, final, training=training)
    return ops.convert_to_numpy(logits)


def _steps(model, encoded, target, feed_predictions=False):
    """Logits from a Python loop of one-token `step`s (`feed_predictions`:
    each step after the first reads the argmax of the previous logits)."""
    decoder = model.get_layer("decoder")
    outputs, mask, final = encoded
    state = decoder.initial_state(final, mask)
    constants = decoder.constants(outputs, mask)
    tokens, logits = ops.convert_to_tensor(target[:, 0]), []
    for t in range(target.shape[1]):
        if t and not feed_predictions:
            tokens = ops.convert_to_tensor(target[:, t])
        step_logits, _, state = decoder.step(tokens, state, constants)
        tokens = ops.argmax(step_logits, axis=-1)
        logits.append(ops.convert_to_numpy(step_logits))
    return np.stack(logits, 1)


def test_readout_is_the_maxout_of_the_paper(rng):
    """Bahdanau et al. (2014), A.2.2, with the state after the step:
    `t~ = U_o s_t + V_o E y_{t-1} + C_o c_t`, `t_j = max(t~_2j-1, t~_2j)`,
    logits `W_o t`, against NumPy from the layer's weights."""
    model = _model(readout_units=3)
    decoder = model.get_layer("decoder")
    source, target = _batch(rng, batch=2, target_length=3)
    teacher_forced = _numpy(model((source, target)))
    outputs, mask, final = model.get_layer("encoder")(source)
    state = decoder.initial_state(final)
    constants = decoder.constants(outputs, mask)
    embeddings = _numpy(decoder.embedding.embeddings)
    readout_kernel = _numpy(decoder.readout_dense.kernel)
    readout_bias = _numpy(decoder.readout_dense.bias)
    output_kernel = _numpy(decoder.output_dense.kernel)
    output_bias = _numpy(decoder.output_dense.bias)
    assert readout_kernel.shape == (8 + 8 + 6, 6)
    assert output_kernel.shape == (3, 13)
    u_o, c_o, v_o = np.split(readout_kernel, [8, 16])
    for t in range(target.shape[1]):
        logits, weights, state = decoder.step(
            ops.convert_to_tensor(target[:, t]), state, constants
        )
        s = _numpy(state[0])  # the LSTM's new h
        c = np.einsum("bs,bsd->bd", _numpy(weights), _numpy(outputs))
        e = embeddings[target[:, t]]
        t_tilde = s @ u_o + e @ v_o + c @ c_o + readout_bias
        maxout = t_tilde.reshape(2, 3, 2).max(axis=-1)
        expected = maxout @ output_kernel + output_bias
        np.testing.assert_allclose(_numpy(logits), expected, atol=1e-5)
        np.testing.assert_allclose(teacher_forced[:, t], expected, atol=1e-5)


def test_steps_equal_teacher_forcing_and_save_load(rng, tmp_path):
    model = _model(readout_units=4, encoder_layers=2, layers=2, cell="gru")
    source, target = _batch(rng)
    encoded = model.get_layer("encoder")(source)
    logits = _teacher_forced(model, encoded, target)
    np.testing.assert_allclose(
        _steps(model, encoded, target), logits, atol=1e-5
    )
    logits = ops.convert_to_numpy(model((source, target)))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded((source, target))), logits
    )
    for layer, cls in (("decoder", AttentionDecoder), ("encoder", Encoder)):
        config = model.get_layer(layer).get_config()
        assert cls.from_config(config).get_config() == config


def test_readout_in_scheduled_sampling_reads_the_fed_token(rng):
    model = _model(readout_units=4, scheduled_sampling=1.0, seed=1)
    source, target = _batch(rng)
    encoded = model.get_layer("encoder")(source)
    got = _teacher_forced(model, encoded, target, training=True)
    fed = _steps(model, encoded, target, feed_predictions=True)
    np.testing.assert_allclose(got, fed, atol=1e-5)
    model.get_layer("decoder").sampling_probability.assign(0.0)
    got = _teacher_forced(model, encoded, target, training=True)
    np.testing.assert_allclose(got, _steps(model, encoded, target), atol=1e-5)


def test_readout_dropout_acts_in_training_only(rng):
    model = _model(readout_units=4, dropout=0.5)
    source, target = _batch(rng)
    encoded = model.get_layer("encoder")(source)
    a = _teacher_forced(model, encoded, target)
    b = _teacher_forced(model, encoded, target, training=True)
    assert np.all(np.isfinite(b)) and np.abs(a - b).max() > 1e-3


def _slow_on_jax(test):
    """JAX compiles the gradient of every scan, eagerly too: ~30 s."""
    if keras.backend.backend() == "jax":
        return pytest.mark.slow(test)
    return test


@_slow_on_jax
def test_readout_and_stacked_encoder_train(rng):
    """Gradients reach the readout and the upper encoder layer, with
    dropout and the scheduled sampling's loop."""
    model = _model(
        readout_units=4,
        encoder_layers=2,
        dropout=0.1,
        scheduled_sampling=0.3,
        seed=2,
    )
    source, target = _batch(rng, batch=4, target_length=6)
    watched = [
        model.get_layer("decoder").readout_dense.kernel,
        *model.get_layer("encoder").upper_rnns[0].trainable_weights,
    ]
    before = [ops.convert_to_numpy(w) for w in watched]
    # Eagerly: compiling the training step would take most of the test's
    # time (tens of seconds on JAX).
    compile_seq2seq(model, learning_rate=0.01, run_eagerly=True)
    history = model.fit(
        (source, target[:, :-1]), target[:, 1:], batch_size=2, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    for old, new in zip(before, watched, strict=True):
        assert not np.array_equal(old, ops.convert_to_numpy(new))


def test_greedy_with_readout_and_stacked_encoder(rng):
    model = _model(vocab=20, readout_units=4, encoder_layers=2)
    source = rng.integers(3, 20, size=(3, 5)).astype("int32")
    source[1, 2:] = 0
    inference = Seq2SeqInference(
        model, start_token=1, end_token=2, max_length=6
    )
    out = inference.greedy(source)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(out.tokens), _python_greedy(model, source, 6)
    )


def test_stacked_encoder_feeds_each_layer_the_one_below(rng):
    encoder = Encoder(13, 6, 8, cell="gru", layers=3)
    source, _ = _batch(rng)
    outputs, mask, final = encoder(source)
    x = encoder.embedding(source)
    for rnn in (encoder.rnn, *encoder.upper_rnns):
        x, forward, backward = rnn(x, mask=mask)
    np.testing.assert_allclose(_numpy(outputs), _numpy(x), atol=1e-6)
    np.testing.assert_allclose(
        _numpy(final[0]),
        np.concatenate([_numpy(forward), _numpy(backward)], -1),
        atol=1e-6,
    )


def test_defaults_add_no_weights():
    """Without the options the weights are those of a model built before
    them, so its saved files still load."""
    paths = [v.path for v in _model().weights]
    assert not [p for p in paths if "readout" in p or "bidirectional_" in p]
    assert "decoder/logits/kernel" in paths
    model = _model(readout_units=5, encoder_layers=2)
    decoder = model.get_layer("decoder")
    assert tuple(decoder.readout_dense.kernel.shape) == (8 + 8 + 6, 10)
    assert len(model.get_layer("encoder").upper_rnns) == 1


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "256"])
def test_bad_readout_units_raise(value):
    with pytest.raises(
        ValueError, match=r"`readout_units` must be a positive integer"
    ):
        AttentionDecoder(30, 8, 12, readout_units=value)


def test_readout_units_is_refused_in_the_luong_style():
    with pytest.raises(
        ValueError, match=r"readout_units=8.*Bahdanau style.*attention_layer"
    ):
        build_seq2seq(30, 30, style="luong", attention="dot", readout_units=8)


@pytest.mark.parametrize("value", [0, 1.5, False])
def test_bad_encoder_layers_raise(value):
    with pytest.raises(ValueError, match=r"encoder_layers.*positive integer"):
        build_seq2seq(30, 30, encoder_layers=value)
