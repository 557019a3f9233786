import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt import BahdanauAttention
from keras_nmt import DotProductAttention
from keras_nmt import ScaledDotProductAttention
from keras_nmt.seq2seq import AttentionDecoder
from keras_nmt.seq2seq import Encoder
from keras_nmt.seq2seq import build_seq2seq

CONFIGS = [
    # (style, attention, cell, input_feeding)
    ("bahdanau", "bahdanau", "lstm", False),
    ("bahdanau", "dot", "gru", False),
    ("bahdanau", "general", "lstm", False),
    ("bahdanau", "scaled_dot", "gru", False),
    ("luong", "bahdanau", "gru", False),
    ("luong", "dot", "lstm", False),
    ("luong", "general", "gru", True),
    ("luong", "scaled_dot", "lstm", True),
]


def _batch(rng, batch=3, source_length=7, target_length=5, vocab=20):
    source = rng.integers(1, vocab, size=(batch, source_length))
    source[0, 4:] = 0  # padded source
    source[1, 1:] = 0  # a single real source token
    target = rng.integers(1, vocab, size=(batch, target_length))
    target[2, 3:] = 0
    return source.astype("int32"), target.astype("int32")


def _model(style, attention, cell, input_feeding, vocab=20):
    return build_seq2seq(
        vocab,
        vocab,
        embedding_dim=8,
        units=12,
        attention=attention,
        style=style,
        cell=cell,
        input_feeding=input_feeding,
    )


def _step_through(model, source, target):
    """Logits and weights from a Python loop of one-token steps."""
    encoder = model.get_layer("encoder")
    decoder = model.get_layer("decoder")
    outputs, mask, final = encoder(source)
    state = decoder.initial_state(final)
    constants = decoder.constants(outputs, mask)
    logits, weights = [], []
    for t in range(target.shape[1]):
        step_logits, step_weights, state = decoder.step(
            ops.convert_to_tensor(target[:, t]), state, constants
        )
        logits.append(ops.convert_to_numpy(step_logits))
        weights.append(ops.convert_to_numpy(step_weights))
    return np.stack(logits, 1), np.stack(weights, 1)


@pytest.mark.parametrize("style,attention,cell,input_feeding", CONFIGS)
def test_step_equals_teacher_forcing(
    style, attention, cell, input_feeding, rng
):
    model = _model(style, attention, cell, input_feeding)
    source, target = _batch(rng)
    decoder = model.get_layer("decoder")
    encoder_outputs, mask, final = model.get_layer("encoder")(source)
    logits, weights = decoder(target, encoder_outputs, mask, final)
    step_logits, step_weights = _step_through(model, source, target)
    np.testing.assert_allclose(
        step_logits, ops.convert_to_numpy(logits), atol=1e-5
    )
    np.testing.assert_allclose(
        step_weights, ops.convert_to_numpy(weights), atol=1e-6
    )
    # The weights are distributions over the real source tokens only.
    source_mask = source != 0
    weights = ops.convert_to_numpy(weights)
    assert np.all(
        weights[~np.broadcast_to(source_mask[:, None], weights.shape)] == 0
    )
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_padding_in_the_source_changes_nothing(style, rng):
    model = _model(style, "bahdanau", "lstm", False)
    source, target = _batch(rng)
    noisy = source.copy()
    noisy[0, 4:] = 0
    # Extra padding columns: same sentence, longer batch.
    wider = np.concatenate([source, np.zeros((3, 4), "int32")], axis=1)
    a = ops.convert_to_numpy(model((source, target)))
    b = ops.convert_to_numpy(model((wider, target)))
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "style,input_feeding",
    [("bahdanau", False), ("luong", False), ("luong", True)],
)
def test_keys_are_projected_once_per_source(
    style, input_feeding, rng, monkeypatch
):
    model = _model(style, "bahdanau", "lstm", input_feeding)
    source, target = _batch(rng, target_length=6)
    attention = model.get_layer("decoder").attention
    calls = []
    original = attention.project_keys

    def counting(key):
        calls.append(1)
        return original(key)

    monkeypatch.setattr(attention, "project_keys", counting)
    model((source, target))
    assert len(calls) == 1
    # The decoder's own projection of the query happens at every step, so
    # the per-step work is only the query side.
    _step_through(model, source, target)
    assert len(calls) == 2  # once more, for the new source


def _attention(kind, dropout):
    """An attention layer of `kind` with attention dropout `dropout`."""
    options = {"dropout": dropout, "seed": 3, "name": "attention"}
    if kind == "bahdanau":
        return BahdanauAttention(12, **options)
    if kind == "general":
        return DotProductAttention(score="general", **options)
    return ScaledDotProductAttention(**options)


@pytest.mark.parametrize(
    "style,input_feeding,attention",
    [
        ("bahdanau", False, "bahdanau"),
        ("luong", False, "general"),
        ("luong", True, "scaled_dot"),
    ],
)
def test_attention_dropout_acts_in_training_only(
    style, input_feeding, attention, rng
):
    source, target = _batch(rng)
    inputs = (source, target)
    model = _model(style, _attention(attention, 0.5), "lstm", input_feeding)
    logits = ops.convert_to_numpy(model(inputs, training=False))
    # Inference is deterministic.
    for training in (False, None):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(model(inputs, training=training)), logits
        )
    dropped = ops.convert_to_numpy(model(inputs, training=True))
    assert np.all(np.isfinite(dropped))
    assert np.abs(dropped - logits).max() > 1e-3
    # A second training call draws other masks.
    again = ops.convert_to_numpy(model(inputs, training=True))
    assert np.abs(again - dropped).max() > 1e-3
    # The attention's dropout is the model's only one: the same weights
    # without it give the inference logits in training too.
    plain = _model(style, _attention(attention, 0.0), "lstm", input_feeding)
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(plain(inputs, training=True)), logits, atol=1e-6
    )
    # One decoding step drops too, in training only.
    decoder = model.get_layer("decoder")
    outputs, mask, final = model.get_layer("encoder")(source)
    state = decoder.initial_state(final)
    constants = decoder.constants(outputs, mask)
    tokens = ops.convert_to_tensor(target[:, 0])
    step = decoder.step(tokens, state, constants)[0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(step), logits[:, 0], atol=1e-5
    )
    step_dropped = decoder.step(tokens, state, constants, training=True)[0]
    assert np.abs(ops.convert_to_numpy(step_dropped - step)).max() > 1e-3


def test_save_and_load_keras_file(tmp_path, rng):
    model = _model("bahdanau", "bahdanau", "gru", False)
    source, target = _batch(rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded((source, target))),
        ops.convert_to_numpy(model((source, target))),
    )
    a, _ = _step_through(model, source, target)
    b, _ = _step_through(loaded, source, target)
    np.testing.assert_array_equal(a, b)
    assert isinstance(loaded.get_layer("decoder").attention, BahdanauAttention)


def test_get_config_round_trip():
    decoder = AttentionDecoder(
        30,
        8,
        12,
        attention="general",
        style="luong",
        cell="gru",
        input_feeding=True,
    )
    clone = AttentionDecoder.from_config(decoder.get_config())
    assert clone.get_config() == decoder.get_config()
    encoder = Encoder(30, 8, 12, cell="gru")
    assert (
        Encoder.from_config(encoder.get_config()).get_config()
        == encoder.get_config()
    )


def test_mixed_precision_logits_are_float32_and_finite(rng):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _model("luong", "general", "lstm", True)
    source, target = _batch(rng)
    logits = model((source, target))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"style": "transformer"}, "style.*bahdanau.*luong"),
        ({"cell": "rnn"}, "cell.*lstm.*gru"),
        (
            {"attention": "cosine"},
            "attention.*bahdanau.*dot.*general.*scaled_dot",
        ),
        ({"style": "bahdanau", "input_feeding": True}, "input_feeding.*Luong"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionDecoder(30, 8, 12, **kwargs)


def test_odd_encoder_units_raise():
    with pytest.raises(ValueError, match="units.*even.*Received: units=7"):
        Encoder(30, 8, 7)


@pytest.mark.parametrize(
    "style,cell,input_feeding",
    [("bahdanau", "lstm", False), ("luong", "gru", True)],
)
def test_mixed_precision_steps_match_teacher_forcing(
    style, cell, input_feeding, rng
):
    """One-token steps run outside the decoder's `call`, where Keras does not
    autocast the cell's float32 variables: they must still compute in the
    policy's dtype, as the teacher-forced pass does."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _model(style, "bahdanau", cell, input_feeding)
    source, target = _batch(rng)
    decoder = model.get_layer("decoder")
    encoder_outputs, mask, final = model.get_layer("encoder")(source)
    logits, _ = decoder(target, encoder_outputs, mask, final)
    step_logits, _ = _step_through(model, source, target)
    # bfloat16 keeps 8 bits of mantissa: compare at that precision.
    np.testing.assert_allclose(
        step_logits, ops.convert_to_numpy(logits), atol=0.05
    )


def test_mixed_precision_model_loads_with_its_policy_everywhere(tmp_path, rng):
    """Loaded under another global policy, every sublayer keeps the saved
    model's policy (sublayers made in `__init__` must not take the global
    one), so the loaded model computes exactly as the saved one."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _model("luong", "general", "gru", True)
    source, target = _batch(rng)
    expected = ops.convert_to_numpy(model((source, target)))
    model.save(tmp_path / "mixed.keras")
    keras.config.set_dtype_policy("float32")
    loaded = keras.saving.load_model(tmp_path / "mixed.keras")

    encoder = loaded.get_layer("encoder")
    decoder = loaded.get_layer("decoder")
    sublayers = [
        encoder.embedding,
        encoder.rnn.forward_layer,
        encoder.rnn.backward_layer,
        encoder.dropout_layer,
        decoder.embedding,
        decoder.cell,
        *decoder.bridges,
        decoder.attention,
        decoder.attention.key_dense,
        decoder.attentional_dense,
        decoder.output_dense,
        decoder.dropout_layer,
    ]
    for sub in sublayers:
        assert sub.dtype_policy.name == "mixed_bfloat16", sub.name
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded((source, target))), expected
    )
    a, _ = _step_through(model, source, target)
    b, _ = _step_through(loaded, source, target)
    np.testing.assert_array_equal(a, b)
