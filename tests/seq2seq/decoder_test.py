import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt import BahdanauAttention
from keras_nmt import DotProductAttention
from keras_nmt import ScaledDotProductAttention
from keras_nmt.layers import BahdanauMonotonicAttention
from keras_nmt.layers import LuongMonotonicAttention
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
        ({"attentional": "residual"}, "attentional='residual'.*Luong"),
        (
            {"style": "luong", "attentional": "relu"},
            "attentional.*tanh.*residual",
        ),
        (
            {
                "style": "luong",
                "attentional": "residual",
                "attention_layer_size": 5,
            },
            "units.*wide.*attention_layer_size=5",
        ),
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


# ---- the AttentionWrapper-level options, coverage, monotonic attention,
# ---- scheduled sampling -----------------------------------------------


def _options_model(vocab=20, **options):
    return build_seq2seq(vocab, vocab, embedding_dim=8, units=12, **options)


def _steps(model, source, target, feed_predictions=False, training=False):
    """Logits, weights and the states after each step, from a Python loop of
    one-token steps (`feed_predictions`: each step after the first is fed
    the argmax of the previous logits instead of the target token)."""
    encoder = model.get_layer("encoder")
    decoder = model.get_layer("decoder")
    outputs, mask, final = encoder(source)
    state = decoder.initial_state(final, mask)
    constants = decoder.constants(outputs, mask)
    logits, weights, states = [], [], []
    tokens = ops.convert_to_tensor(target[:, 0])
    for t in range(target.shape[1]):
        if t and not feed_predictions:
            tokens = ops.convert_to_tensor(target[:, t])
        step_logits, step_weights, state = decoder.step(
            tokens, state, constants, training=training
        )
        tokens = ops.argmax(step_logits, axis=-1)
        logits.append(ops.convert_to_numpy(step_logits))
        weights.append(ops.convert_to_numpy(step_weights))
        states.append([ops.convert_to_numpy(s) for s in state])
    return np.stack(logits, 1), np.stack(weights, 1), states


def _teacher_forced(model, source, target, training=False):
    decoder = model.get_layer("decoder")
    outputs, mask, final = model.get_layer("encoder")(source)
    logits, weights = decoder(target, outputs, mask, final, training=training)
    return ops.convert_to_numpy(logits), ops.convert_to_numpy(weights)


def _copy_weights(source, target):
    """`target`'s trainable weights from `source`'s, in order, leaving out
    the coverage weight `w_c` that only a coverage model has."""
    values = [
        v for v in source.trainable_variables if not v.path.endswith("/w_c")
    ]
    for variable, value in zip(target.trainable_variables, values, strict=True):
        variable.assign(value)


def _monotonic(kind, name="attention", **options):
    if kind == "bahdanau":
        return BahdanauMonotonicAttention(12, name=name, **options)
    return LuongMonotonicAttention(score="general", name=name, **options)


# name -> (build_seq2seq options, number of state tensors)
OPTIONS = {
    "extra_attention": (
        {"attention": "dot", "extra_attention": ("general", "bahdanau")},
        2,
    ),
    "extra_attention_luong": (
        {
            "style": "luong",
            "attention": "general",
            "extra_attention": ("scaled_dot",),
        },
        2,
    ),
    "layers_3_gru": ({"layers": 3, "cell": "gru"}, 3),
    "layers_2_luong": ({"layers": 2, "style": "luong", "attention": "dot"}, 4),
    "layers_2_luong_feeding": (
        {
            "layers": 2,
            "style": "luong",
            "attention": "general",
            "input_feeding": True,
        },
        5,
    ),
    "attention_layer_size": (
        {
            "style": "luong",
            "attention": "general",
            "input_feeding": True,
            "attention_layer_size": 7,
        },
        3,
    ),
    "output_cell": (
        {
            "style": "luong",
            "attention": "bahdanau",
            "input_feeding": True,
            "output_attention": False,
        },
        3,
    ),
    "coverage": ({"coverage": True, "coverage_loss_weight": 0.5}, 3),
    "coverage_luong_gru": (
        {"coverage": True, "style": "luong", "cell": "gru"},
        2,
    ),
    "monotonic_bahdanau": ({"attention": "monotonic_bahdanau"}, 3),
    "monotonic_luong_two": (
        {
            "style": "luong",
            "attention": "monotonic_luong",
            "extra_attention": ("general", "monotonic_bahdanau"),
        },
        4,
    ),
    "scheduled_sampling": ({"scheduled_sampling": 0.5, "seed": 3}, 2),
    "readout_encoder_layers": ({"readout_units": 5, "encoder_layers": 2}, 2),
    "residual_gru": (
        {"style": "luong", "cell": "gru", "attentional": "residual"},
        1,
    ),
    "residual_feeding_two": (
        {
            "style": "luong",
            "attention": "general",
            "extra_attention": ("bahdanau",),
            "input_feeding": True,
            "attentional": "residual",
        },
        3,
    ),
}


def _build_options(name):
    """`build_seq2seq` options of `OPTIONS[name]`, the monotonic layers
    made fresh."""
    options, _ = OPTIONS[name]
    options = dict(options)
    if options.get("attention", "").startswith("monotonic_"):
        options["attention"] = _monotonic(options["attention"][10:])
    extras = options.get("extra_attention", ())
    options["extra_attention"] = tuple(
        _monotonic(a[10:], name=f"monotonic_{i}")
        if a.startswith("monotonic_")
        else a
        for i, a in enumerate(extras)
    )
    return options


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_options_step_equals_teacher_forcing_and_save_load(name, rng, tmp_path):
    model = _options_model(**_build_options(name))
    source, target = _batch(rng)
    logits, weights = _teacher_forced(model, source, target)
    step_logits, step_weights, states = _steps(model, source, target)
    np.testing.assert_allclose(step_logits, logits, atol=1e-5)
    np.testing.assert_allclose(step_weights, weights, atol=1e-6)
    assert len(states[-1]) == OPTIONS[name][1]
    # Every state tensor has the batch as leading axis (beam search reorders
    # its rows).
    assert all(s.shape[0] == 3 for s in states[-1])
    # Saved and loaded: the same model.
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded((source, target))),
        ops.convert_to_numpy(model((source, target))),
    )
    np.testing.assert_array_equal(
        _steps(loaded, source, target)[0], step_logits
    )
    # The configuration alone rebuilds it.
    config = model.get_layer("decoder").get_config()
    clone = AttentionDecoder.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_options_under_mixed_precision(name, rng):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _options_model(**_build_options(name))
    source, target = _batch(rng)
    for training in (False, True):
        logits = model((source, target), training=training)
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    logits, _ = _teacher_forced(model, source, target)
    step_logits, _, _ = _steps(model, source, target)
    np.testing.assert_allclose(step_logits, logits, atol=0.05)


def test_attention_layer_size_of_units_is_the_default(rng):
    source, target = _batch(rng)
    options = {"style": "luong", "attention": "general", "input_feeding": True}
    default = _options_model(**options)
    sized = _options_model(attention_layer_size=12, **options)
    sized.set_weights(default.get_weights())
    np.testing.assert_array_equal(
        ops.convert_to_numpy(sized((source, target))),
        ops.convert_to_numpy(default((source, target))),
    )
    # Another size: the attentional vector and what reads it change width.
    decoder = _options_model(attention_layer_size=5, **options).get_layer(
        "decoder"
    )
    assert decoder.attentional_dense.kernel.shape == (12 + 12, 5)
    assert decoder.output_dense.kernel.shape == (5, 20)
    assert decoder.cell.kernel.shape == (8 + 5, 4 * 12)


def test_output_attention_false_reads_the_rnn_output(rng):
    model = _options_model(
        style="luong",
        attention="general",
        input_feeding=True,
        output_attention=False,
        attention_layer_size=7,
    )
    decoder = model.get_layer("decoder")
    assert decoder.output_dense.kernel.shape == (12, 20)
    source, target = _batch(rng)
    outputs, mask, final = model.get_layer("encoder")(source)
    state = decoder.initial_state(final, mask)
    constants = decoder.constants(outputs, mask)
    logits, _, new_state = decoder.step(
        ops.convert_to_tensor(target[:, 0]), state, constants
    )
    # The logits are the output layer of the new h (state[0] of the LSTM).
    expected = decoder.output_dense(new_state[0])
    np.testing.assert_allclose(
        ops.convert_to_numpy(logits), ops.convert_to_numpy(expected), atol=1e-6
    )
    assert tuple(new_state[-1].shape) == (3, 7)  # h~_t, fed to the next step


def test_stacked_layers_shapes():
    model = _options_model(layers=3, style="luong", attention="general")
    decoder = model.get_layer("decoder")
    assert [c.name for c in [decoder.cell, *decoder.upper_cells]] == [
        "cell",
        "cell_2",
        "cell_3",
    ]
    assert decoder.cell.kernel.shape == (8, 4 * 12)
    for cell in decoder.upper_cells:
        assert cell.kernel.shape == (12, 4 * 12)
    # Every layer starts from its own bridge of (h, c).
    assert len(decoder.bridges) == 2 and len(decoder.upper_bridges) == 4


def test_several_mechanisms_concatenate_their_contexts(rng):
    model = _options_model(
        attention="bahdanau", extra_attention=("general", "scaled_dot")
    )
    decoder = model.get_layer("decoder")
    assert [a.name for a in decoder._attentions()] == [
        "attention",
        "attention_2",
        "attention_3",
    ]
    # Encoder states of 12: three contexts of 12 in the RNN input and in
    # the features of the output layer.
    assert decoder.cell.kernel.shape == (8 + 3 * 12, 4 * 12)
    assert decoder.output_dense.kernel.shape == (12 + 3 * 12, 20)
    source, _ = _batch(rng)
    outputs, mask, final = model.get_layer("encoder")(source)
    constants = decoder.constants(outputs, mask)
    query = ops.convert_to_tensor(rng.normal(size=(3, 12)), "float32")
    context, weights, _, _ = decoder._attend(query, constants, None, (), False)
    assert tuple(context.shape) == (3, 36)
    keys = [constants[1], *constants[3:]]
    for i, (attention, projected) in enumerate(
        zip(decoder._attentions(), keys, strict=True)
    ):
        alone, alone_weights = attention.attend(
            query, outputs, projected, value_mask=mask
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(context[:, 12 * i : 12 * (i + 1)]),
            ops.convert_to_numpy(alone),
            atol=1e-6,
        )
        if i == 0:  # the decoder returns the first mechanism's weights
            np.testing.assert_array_equal(
                ops.convert_to_numpy(weights),
                ops.convert_to_numpy(alone_weights),
            )


# ---- coverage -----------------------------------------------------------


def test_coverage_is_the_cumulative_sum_of_the_attention(rng):
    model = _options_model(coverage=True)
    source, target = _batch(rng)
    _, weights = _teacher_forced(model, source, target)
    _, _, states = _steps(model, source, target)
    carried = np.stack([s[2] for s in states], 1)  # (h, c, coverage)
    np.testing.assert_allclose(carried, np.cumsum(weights, axis=1), atol=1e-6)
    # Padding never gets any.
    assert np.all(np.moveaxis(carried, 1, 2)[source == 0] == 0)


def test_coverage_enters_the_score(rng, monkeypatch):
    """Each step's attention gets the coverage so far: the sum of the
    previous steps' weights (zero at the first)."""
    model = _options_model(coverage=True)
    source, target = _batch(rng)
    attention = model.get_layer("decoder").attention
    seen = []
    original = attention.attend

    def spy(*args, coverage=None, **kwargs):
        seen.append(ops.convert_to_numpy(coverage))
        return original(*args, coverage=coverage, **kwargs)

    monkeypatch.setattr(attention, "attend", spy)
    _, weights, _ = _steps(model, source, target)
    monkeypatch.undo()  # (the teacher-forced loop below traces on JAX)
    expected = np.cumsum(weights, axis=1) - weights
    np.testing.assert_allclose(np.stack(seen, 1), expected, atol=1e-6)
    # A zero w_c gives the decoder without coverage.
    plain = _options_model()
    _copy_weights(model, plain)
    attention.w_c.assign(np.zeros(12, "float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(model((source, target))),
        ops.convert_to_numpy(plain((source, target))),
        atol=1e-6,
    )


def test_coverage_loss_is_the_sum_of_minima(rng):
    model = _options_model(coverage=True, coverage_loss_weight=0.7)
    decoder = model.get_layer("decoder")
    source, target = _batch(rng)
    outputs, mask, final = model.get_layer("encoder")(source)
    _, weights = decoder(target, outputs, mask, final, training=True)
    assert len(decoder.losses) == 1
    weights = ops.convert_to_numpy(weights).astype(np.float64)
    coverage = np.cumsum(weights, axis=1) - weights  # before each step
    per_token = np.minimum(weights, coverage).sum(-1)  # (B, Tt)
    real = target != 0
    expected = 0.7 * per_token[real].sum() / real.sum()
    assert expected > 0.01
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(decoder.losses[0])), expected, rtol=1e-5
    )
    # Inference adds no loss; neither does a weight of 0.
    decoder(target, outputs, mask, final, training=False)
    assert decoder.losses == []
    unweighted = _options_model(coverage=True).get_layer("decoder")
    unweighted(target, outputs, mask, final, training=True)
    assert unweighted.losses == []


# ---- monotonic attention ----------------------------------------------


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_monotonic_alignment_is_carried(kind, rng, monkeypatch):
    attention = _monotonic(kind, mode="recursive", score_bias_init=1.0)
    style = "bahdanau" if kind == "bahdanau" else "luong"
    model = _options_model(attention=attention, style=style)
    source, target = _batch(rng)
    seen = []
    original = attention.attend

    def spy(*args, previous_alignment=None, **kwargs):
        seen.append(ops.convert_to_numpy(previous_alignment))
        return original(*args, previous_alignment=previous_alignment, **kwargs)

    # Soft (expected) alignments in training, without noise: the steps
    # equal teacher forcing there too.
    logits, weights = _teacher_forced(model, source, target, training=True)
    monkeypatch.setattr(attention, "attend", spy)
    step_logits, step_weights, states = _steps(
        model, source, target, training=True
    )
    np.testing.assert_allclose(step_logits, logits, atol=1e-5)
    np.testing.assert_allclose(step_weights, weights, atol=1e-6)
    one_hot = np.zeros((3, 7))
    one_hot[:, 0] = 1.0
    np.testing.assert_array_equal(seen[0], one_hot)
    for t in range(1, target.shape[1]):
        np.testing.assert_allclose(seen[t], step_weights[:, t - 1], atol=1e-7)
    np.testing.assert_allclose(states[-1][-1], step_weights[:, -1], atol=1e-7)
    assert np.any(np.abs(step_weights[:, 1:] - step_weights[:, :-1]) > 1e-3)


def test_monotonic_noise_is_drawn_ahead_in_training(rng):
    attention = _monotonic("bahdanau", sigmoid_noise=1.0, seed=2)
    model = _options_model(attention=attention)
    source, target = _batch(rng)
    a = ops.convert_to_numpy(model((source, target), training=True))
    b = ops.convert_to_numpy(model((source, target), training=True))
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() > 1e-4
    # Inference: hard and deterministic.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(model((source, target))),
        ops.convert_to_numpy(model((source, target))),
    )


def test_state_with_source_positions_needs_the_source_mask(rng):
    model = _options_model(coverage=True)
    source, _ = _batch(rng)
    _, _, final = model.get_layer("encoder")(source)
    with pytest.raises(ValueError, match="needs `source_mask`"):
        model.get_layer("decoder").initial_state(final)


# ---- scheduled sampling -------------------------------------------------


def _set_probability(model, probability):
    model.get_layer("decoder").sampling_probability.assign(probability)


def test_scheduled_sampling_with_probability_zero_is_teacher_forcing(rng):
    source, target = _batch(rng)
    plain = _options_model()
    sampled = _options_model(scheduled_sampling=0.5, seed=1)
    _copy_weights(plain, sampled)
    _set_probability(sampled, 0.0)
    expected = ops.convert_to_numpy(plain((source, target), training=True))
    got = ops.convert_to_numpy(sampled((source, target), training=True))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Inference never samples.
    _set_probability(sampled, 1.0)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(sampled((source, target))),
        ops.convert_to_numpy(plain((source, target))),
    )


def test_scheduled_sampling_with_probability_one_feeds_the_predictions(rng):
    model = _options_model(scheduled_sampling=1.0, seed=1)
    source, target = _batch(rng)
    got = ops.convert_to_numpy(model((source, target), training=True))
    expected, _, _ = _steps(model, source, target, feed_predictions=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    teacher_forced, _, _ = _steps(model, source, target)
    assert np.abs(expected - teacher_forced).max() > 1e-3
    # The first step always reads the target's first token ([START]).
    np.testing.assert_allclose(got[:, 0], teacher_forced[:, 0], atol=1e-5)


def test_scheduled_sampling_mixes_per_token_and_draws_anew(rng):
    model = _options_model(scheduled_sampling=0.5, seed=1, dropout=0.3)
    source, target = _batch(rng, target_length=8)
    a = ops.convert_to_numpy(model((source, target), training=True))
    b = ops.convert_to_numpy(model((source, target), training=True))
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"extra_attention": "general"}, r"tuple.*Received: extra_attention="),
        ({"attention_layer_size": 8}, r"attention_layer_size=8.*Luong"),
        ({"output_attention": False}, r"output_attention=False.*Luong"),
        (
            {"style": "luong", "output_attention": False},
            r"never reach the logits.*input_feeding=True",
        ),
        (
            {"style": "luong", "attention_layer_size": 0},
            r"positive integer.*attention_layer_size=0",
        ),
        ({"layers": 0}, r"`layers` must be a positive integer.*layers=0"),
        ({"coverage": True, "attention": "dot"}, r"coverage=True.*bahdanau"),
        (
            {"coverage": True, "attention": BahdanauAttention(4)},
            r"use_coverage=True\).*use_coverage=False",
        ),
        (
            {"attention": BahdanauAttention(4, use_coverage=True)},
            r"no coverage.*Pass coverage=True",
        ),
        (
            {
                "coverage": True,
                "extra_attention": (BahdanauAttention(4, use_coverage=True),),
            },
            r"for `attention` only",
        ),
        (
            {"coverage": True, "attention": BahdanauMonotonicAttention(4)},
            r"coverage=True",
        ),
        ({"coverage_loss_weight": 0.1}, r"needs `coverage=True`"),
        ({"coverage_loss_weight": -1.0}, r"coverage_loss_weight.*>= 0"),
        ({"scheduled_sampling": 1.5}, r"probability in \[0, 1\]"),
    ],
)
def test_bad_new_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionDecoder(30, 8, 12, **kwargs)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_residual_attentional_is_layer_norm_of_h_plus_projected_context(
    input_feeding, rng
):
    """`h~_t = LayerNorm(h_t + W_c c_t)`, the logits `W_o h~_t + b_o`:
    one step recomputed in NumPy from the step's own RNN output and
    attention weights (the attention itself is tested elsewhere)."""
    model = _options_model(
        style="luong",
        cell="gru",
        attention="general",
        input_feeding=input_feeding,
        attentional="residual",
    )
    decoder = model.get_layer("decoder")
    norm = decoder.attentional_norm
    # Not the initial (1, 0): the scale and the shift must be applied.
    norm.gamma.assign(rng.uniform(0.5, 1.5, 12).astype("float32"))
    norm.beta.assign(rng.normal(size=12).astype("float32"))
    source, target = _batch(rng)
    outputs, mask, final = model.get_layer("encoder")(source)
    state = decoder.initial_state(final, mask)
    constants = decoder.constants(outputs, mask)
    for t in range(2):  # the second step reads the fed h~ (input feeding)
        logits, weights, state = decoder.step(
            ops.convert_to_tensor(target[:, t]), state, constants
        )
    h = ops.convert_to_numpy(state[0])  # the GRU's new h
    context = np.einsum(
        "bs,bsd->bd",
        ops.convert_to_numpy(weights),
        ops.convert_to_numpy(outputs),
    )
    x = h + context @ ops.convert_to_numpy(decoder.attentional_dense.kernel)
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    attentional = (x - mean) / np.sqrt(variance + norm.epsilon)
    attentional = attentional * ops.convert_to_numpy(
        norm.gamma
    ) + ops.convert_to_numpy(norm.beta)
    expected = attentional @ ops.convert_to_numpy(
        decoder.output_dense.kernel
    ) + ops.convert_to_numpy(decoder.output_dense.bias)
    np.testing.assert_allclose(
        ops.convert_to_numpy(logits), expected, atol=1e-5
    )
    if input_feeding:
        np.testing.assert_allclose(
            ops.convert_to_numpy(state[-1]), attentional, atol=1e-5
        )
    # The residual form has no tanh over [c; h]: its projection reads the
    # context only.
    assert decoder.attentional_dense.kernel.shape == (12, 12)
