"""The probability functions, alone and as every layer's `probability_fn`.

Sparsemax is checked against a bisection solver of the simplex projection
(`numpy_reference.sparsemax`), hardmax against `np.argmax`, and the softmax
against the reference the layers were always tested with.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from keras_nmt.layers import masked_softmax
from keras_nmt.layers import probability
from tests.layers import numpy_reference as ref
from tests.layers.backend_utils import function_gradients
from tests.layers.backend_utils import layer_gradients
from tests.layers.backend_utils import to_numpy

LAYERS = {
    "bahdanau": lambda **kw: BahdanauAttention(units=6, **kw),
    "dot": lambda **kw: DotProductAttention(**kw),
    "general": lambda **kw: DotProductAttention(
        score="general", use_scale=True, **kw
    ),
    "scaled": lambda **kw: ScaledDotProductAttention(**kw),
}
NAMES = list(LAYERS)
FNS = list(probability.PROBABILITY_FNS)


@keras.saving.register_keras_serializable(package="keras_nmt_tests")
def sharpened_softmax(scores, mask):
    """A probability function of one's own: the softmax of twice the scores."""
    return probability.softmax(2.0 * scores, mask)


def make_layer(kind, **kwargs):
    return LAYERS[kind](**kwargs)


def built_layer(name, query, value, key, **kwargs):
    """A layer built on these inputs, its learned scale (if any) moved off 1
    so that the reference sees it."""
    layer = make_layer(name, **kwargs)
    layer(query, value, key=key)
    if getattr(layer, "use_scale", False):
        layer.scale.assign(0.7)
    return layer


def random_inputs(rng, batch=3, tq=4, tk=5, dq=4, dk=4, dv=3):
    """Query, key, value and masks; sample 1 has every key masked."""
    query = rng.normal(size=(batch, tq, dq)).astype("float32") * 2
    key = rng.normal(size=(batch, tk, dk)).astype("float32") * 2
    value = rng.normal(size=(batch, tk, dv)).astype("float32")
    value_mask = rng.random((batch, tk)) < 0.7
    value_mask[0, :2] = True
    value_mask[0, -1] = False
    value_mask[1] = False
    query_mask = rng.random((batch, tq)) < 0.7
    query_mask[0, 0] = True
    query_mask[0, -1] = False
    return query, key, value, value_mask, query_mask


def call(layer, query, value, **kwargs):
    context, weights = layer(
        query, value, return_attention_scores=True, **kwargs
    )
    return to_numpy(context), to_numpy(weights)


def random_masks(rng, kind, shape):
    """None, a per-key mask `(B, 1, Tk)` or a full `(B, Tq, Tk)` mask, with
    fully masked rows in the last two."""
    batch, tq, tk = shape
    if kind == "none":
        return None
    if kind == "keys":
        mask = rng.random((batch, 1, tk)) < 0.6
        mask[0] = False
        mask[1, 0, 0] = True
        return mask
    mask = rng.random(shape) < 0.6
    mask[0, 1] = False
    mask[1, :, 0] = True
    return mask


# ---- the registry ------------------------------------------------------


def test_get_returns_the_function_for_a_name_or_a_callable():
    assert probability.PROBABILITY_FNS == ("softmax", "sparsemax", "hardmax")
    for name in probability.PROBABILITY_FNS:
        assert probability.get(name) is getattr(probability, name)
    assert probability.get(sharpened_softmax) is sharpened_softmax
    config = probability.serialize(sharpened_softmax)
    assert isinstance(config, dict)
    assert probability.get(config) is sharpened_softmax
    for name in probability.PROBABILITY_FNS:
        assert probability.serialize(probability.get(name)) == name
    # The old name of the softmax is the same function.
    assert masked_softmax is probability.softmax


@pytest.mark.parametrize(
    "identifier, message",
    [
        (
            "entmax",
            r"Unknown probability function 'entmax'\. Expected one of "
            r"\('softmax', 'sparsemax', 'hardmax'\), or a callable",
        ),
        (
            3,
            r"must be one of \('softmax', 'sparsemax', 'hardmax'\) or a "
            r"callable `fn\(scores, mask\) -> weights`\. Received: 3\.",
        ),
        (None, r"Received: None\."),
    ],
)
def test_get_refuses_what_is_not_a_probability_function(identifier, message):
    with pytest.raises(ValueError, match=message):
        probability.get(identifier)
    with pytest.raises(ValueError, match=message):
        DotProductAttention(probability_fn=identifier)


# ---- the functions against NumPy ---------------------------------------


@pytest.mark.parametrize("mask_kind", ["none", "keys", "full"])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_sparsemax_is_the_projection_onto_the_simplex(scale, mask_kind, rng):
    scores = rng.normal(size=(3, 4, 7)).astype("float32") * scale
    mask = random_masks(rng, mask_kind, scores.shape)
    got = to_numpy(probability.sparsemax(scores, mask))
    expected = ref.sparsemax(scores, mask)
    assert got.dtype == np.float64 and got.shape == scores.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Exact zeros: where the projection has none, and where masked.
    np.testing.assert_array_equal(got[expected == 0], 0.0)
    allowed = np.ones(scores.shape, bool) if mask is None else mask
    allowed = np.broadcast_to(allowed, scores.shape)
    np.testing.assert_array_equal(got[~allowed], 0.0)
    assert np.all(got >= 0)
    sums = got.sum(-1)
    has_key = allowed.any(-1)
    np.testing.assert_allclose(sums[has_key], 1.0, atol=1e-6)
    np.testing.assert_array_equal(sums[~has_key], 0.0)
    if scale == 10.0:
        # Widely spread scores: most rows keep one or two keys.
        assert (got[has_key] == 0).sum() > (got[has_key] > 0).sum()


def test_sparsemax_by_hand():
    # (3, 1, 0.2): 1 + 2 * 1 = 3 is not > 3 + 1, so only the first key
    # remains. (0.5, 0.3, -1): tau = (0.5 + 0.3 - 1) / 2 = -0.1, weights
    # (0.6, 0.4, 0). Equal scores: uniform. Shifting the scores changes
    # nothing.
    scores = np.array(
        [[3.0, 1.0, 0.2], [0.5, 0.3, -1.0], [2.0, 2.0, 2.0], [1e4, 1e4, 0.0]],
        "float32",
    )
    expected = [[1, 0, 0], [0.6, 0.4, 0], [1 / 3] * 3, [0.5, 0.5, 0]]
    np.testing.assert_allclose(
        to_numpy(probability.sparsemax(scores)), expected, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(probability.sparsemax(scores + 50.0)), expected, atol=1e-5
    )
    # Masked: the best key masked, the rest renormalised by the projection.
    mask = np.array([[False, True, True]] * 4)
    np.testing.assert_allclose(
        to_numpy(probability.sparsemax(scores, mask))[:2],
        [[0, 0.9, 0.1], [0, 1, 0]],
        atol=1e-6,
    )


def test_hardmax_is_the_one_hot_of_the_argmax(rng):
    # Small integers: many ties, which go to the first best key.
    scores = rng.integers(-2, 3, size=(3, 4, 6)).astype("float32")
    for mask in (
        None,
        *(random_masks(rng, k, (3, 4, 6)) for k in ("keys", "full")),
    ):
        got = to_numpy(probability.hardmax(scores, mask))
        np.testing.assert_array_equal(got, ref.hardmax(scores, mask))
    ties = np.array([[1.0, 3.0, 3.0, 3.0]], "float32")
    np.testing.assert_array_equal(
        to_numpy(probability.hardmax(ties)), [[0, 1, 0, 0]]
    )
    mask = np.array([[True, False, True, True]])
    np.testing.assert_array_equal(
        to_numpy(probability.hardmax(ties, mask)), [[0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(
        to_numpy(probability.hardmax(ties, np.zeros((1, 4), bool))), 0.0
    )


@pytest.mark.parametrize("mask_kind", ["none", "full"])
def test_softmax_is_the_masked_softmax(mask_kind, rng):
    scores = rng.normal(size=(3, 4, 7)).astype("float32") * 3
    mask = random_masks(rng, mask_kind, scores.shape)
    got = to_numpy(probability.softmax(scores, mask))
    np.testing.assert_allclose(got, ref.masked_softmax(scores, mask), atol=1e-6)
    if mask is not None:
        assert np.all(got[~mask] == 0.0)
        np.testing.assert_array_equal(got[0, 1], 0.0)


@pytest.mark.parametrize("fn", FNS)
def test_half_precision_scores_give_float32_weights(fn, rng):
    scores = rng.normal(size=(2, 3, 5)).astype("float32")
    mask = random_masks(rng, "full", scores.shape)
    for dtype in ("float16", "bfloat16"):
        weights = probability.get(fn)(ops.cast(scores, dtype), mask)
        assert keras.backend.standardize_dtype(weights.dtype) == "float32"
        expected = ref.PROBABILITY_FNS[fn](
            to_numpy(ops.cast(ops.cast(scores, dtype), "float32")), mask
        )
        np.testing.assert_allclose(to_numpy(weights), expected, atol=1e-6)


@pytest.mark.parametrize("fn", FNS)
def test_no_keys_give_empty_weights(fn):
    weights = probability.get(fn)(np.zeros((2, 3, 0), "float32"))
    assert tuple(weights.shape) == (2, 3, 0)
    weights = probability.get(fn)(
        np.zeros((2, 3, 0), "float32"), np.zeros((2, 1, 0), bool)
    )
    assert tuple(weights.shape) == (2, 3, 0)


# ---- gradients ---------------------------------------------------------


def test_sparsemax_gradient_is_the_closed_form_jacobian(rng):
    """On the support S, d sparsemax / dz = diag(s) - s s^T / |S|.

    The gradient of `sum(c * sparsemax(z))` is then `s * (c - (s . c) / |S|)`
    for every row; 0 off the support, on masked keys and on all-masked rows.
    """
    scores = rng.normal(size=(3, 4, 6)) * 1.5
    mask = random_masks(rng, "full", scores.shape)
    coef = rng.normal(size=scores.shape)
    coef_tensor = ops.convert_to_tensor(coef, "float32")

    def loss(z):
        return ops.sum(coef_tensor * probability.sparsemax(z, mask))

    value, (grad,) = function_gradients(loss, [scores.astype("float32")])
    support = (ref.sparsemax(scores, mask) > 0).astype(np.float64)
    size = np.maximum(support.sum(-1, keepdims=True), 1)
    expected = support * (coef - (support * coef).sum(-1, keepdims=True) / size)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    np.testing.assert_array_equal(grad[~mask], 0.0)
    np.testing.assert_array_equal(grad[0, 1], 0.0)  # all masked
    assert np.any(grad != 0)
    assert np.isfinite(value)
    # The Jacobian row by row, against the closed form, for one row.
    z = scores[2, 0].astype("float32")
    s = (ref.sparsemax(z, mask[2, 0]) > 0).astype(np.float64)
    jacobian = np.diag(s) - np.outer(s, s) / s.sum()
    for i in range(6):
        _, (row,) = function_gradients(
            lambda z, i=i: probability.sparsemax(z, mask[2, 0])[i], [z]
        )
        np.testing.assert_allclose(row, jacobian[i], atol=1e-6)


@pytest.mark.parametrize("fn", ["sparsemax", "hardmax"])
@pytest.mark.parametrize("name", NAMES)
def test_all_masked_rows_give_zeros_and_finite_gradients(name, fn, rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    # Scores close enough for sparsemax to keep several keys: with one,
    # its gradient is 0.
    query, key = query / 4, key / 4
    layer = built_layer(name, query, value, key, probability_fn=fn)
    context, weights = call(layer, query, value, key=key, value_mask=value_mask)
    if fn == "sparsemax":
        assert np.any((weights[0] > 0).sum(-1) > 1)
    np.testing.assert_array_equal(weights[1], 0.0)
    np.testing.assert_array_equal(context[1], 0.0)
    c_coef = ops.convert_to_tensor(rng.normal(size=context.shape), "float32")
    w_coef = ops.convert_to_tensor(rng.normal(size=weights.shape), "float32")

    def loss_fn(outputs):
        context, weights = outputs
        return ops.sum(context * c_coef) + ops.sum(weights * w_coef)

    loss, (d_query, d_value, d_key), d_weights = layer_gradients(
        layer,
        [query, value, key],
        loss_fn,
        value_mask=value_mask,
        return_attention_scores=True,
    )
    assert np.isfinite(loss)
    for grad in (d_query, d_value, d_key, *d_weights):
        assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(d_query[1], 0.0)
    np.testing.assert_array_equal(d_key[1], 0.0)
    assert np.all(d_value[~value_mask] == 0.0)
    # The values always learn; the scores only through sparsemax.
    assert np.any(d_value[0] != 0.0)
    if fn == "hardmax":
        np.testing.assert_array_equal(d_query, 0.0)
    else:
        assert np.any(d_query[0] != 0.0)


# ---- every layer -------------------------------------------------------


@pytest.mark.parametrize("mode", ["rank3", "rank2", "causal"])
@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("name", NAMES)
def test_every_layer_matches_the_reference(name, fn, mode, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    if mode == "rank2":
        query, query_mask = query[:, 1], query_mask[:, 1]
    layer = built_layer(name, query, value, key, probability_fn=fn)
    kwargs = {
        "value_mask": value_mask,
        "query_mask": query_mask,
        "use_causal_mask": mode == "causal",
    }
    context, weights = call(layer, query, value, key=key, **kwargs)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, probability_fn=fn, **kwargs
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # `attend` on projected keys is the call.
    step = layer.attend(query, value, layer.project_keys(key), **kwargs)
    np.testing.assert_array_equal(to_numpy(step[0]), context)
    np.testing.assert_array_equal(to_numpy(step[1]), weights)
    # Masked keys get exactly 0; rows with a key and a query sum to 1.
    weights = weights[:, None] if mode == "rank2" else weights
    ref_weights = ref_weights[:, None] if mode == "rank2" else ref_weights
    np.testing.assert_array_equal(
        weights[np.broadcast_to(~value_mask[:, None], weights.shape)], 0.0
    )
    np.testing.assert_array_equal(weights[ref_weights == 0], 0.0)
    attended = ref_weights.sum(-1) > 0
    assert attended.any()
    np.testing.assert_allclose(weights.sum(-1)[attended], 1.0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_softmax_is_the_default_bit_for_bit(name, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    kwargs = {"key": key, "value_mask": value_mask, "query_mask": query_mask}
    default = built_layer(name, query, value, key)
    expected = call(default, query, value, **kwargs)
    assert default.probability_fn is probability.softmax
    for identifier in (
        "softmax",
        probability.softmax,
        # Through the path a callable of one's own takes.
        lambda scores, mask: probability.softmax(scores, mask),
    ):
        layer = built_layer(name, query, value, key, probability_fn=identifier)
        layer.set_weights(default.get_weights())
        got = call(layer, query, value, **kwargs)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    ref_context, ref_weights = ref.layer_attention(
        default, query, value, **kwargs
    )
    np.testing.assert_allclose(expected[1], ref_weights, atol=1e-5)
    np.testing.assert_allclose(expected[0], ref_context, atol=1e-5)


def test_a_callable_of_ones_own_gets_float32_scores_and_the_mask(rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    seen = []

    def recording(scores, mask):
        seen.append((scores, mask))
        return sharpened_softmax(scores, mask)

    keras.config.set_dtype_policy("mixed_float16")
    layer = DotProductAttention(probability_fn=recording)
    context, weights = call(layer, query, value, key=key, value_mask=value_mask)
    scores, mask = seen[-1]
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert tuple(scores.shape) == (3, 4, 5)
    assert tuple(mask.shape) == (3, 1, 5)
    np.testing.assert_array_equal(to_numpy(mask)[:, 0], value_mask)
    call(layer, query, value, key=key)
    assert seen[-1][1] is None
    call(layer, query, value, key=key, use_causal_mask=True)
    assert tuple(seen[-1][1].shape) == (1, 4, 5)
    # Its weights are used as they come (up to the compute dtype).
    ref_context, ref_weights = ref.layer_attention(
        layer,
        query,
        value,
        key=key,
        value_mask=value_mask,
        probability_fn=lambda s, m: ref.masked_softmax(2 * s, m),
    )
    np.testing.assert_allclose(weights, ref_weights, atol=2e-3)
    np.testing.assert_allclose(context, ref_context, atol=5e-3)


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_weights_are_computed_in_float32(name, policy, fn, rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    outputs = []

    def recording(scores, mask):
        weights = probability.get(fn)(scores, mask)
        outputs.append((scores, weights))
        return weights

    keras.config.set_dtype_policy(policy)
    layer = built_layer(name, query, value, key, probability_fn=recording)
    context, weights = layer(
        query,
        value,
        key=key,
        value_mask=value_mask,
        return_attention_scores=True,
    )
    scores, float32_weights = outputs[-1]
    for tensor in (scores, float32_weights):
        assert keras.backend.standardize_dtype(tensor.dtype) == "float32"
    float32_weights = to_numpy(float32_weights)
    has_key = value_mask.any(-1)
    np.testing.assert_allclose(float32_weights.sum(-1)[has_key], 1.0, atol=1e-6)
    np.testing.assert_array_equal(float32_weights[~has_key], 0.0)
    # The layer hands them back in its compute dtype.
    compute_dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(weights.dtype) == compute_dtype
    assert keras.backend.standardize_dtype(context.dtype) == compute_dtype
    context, weights = to_numpy(context), to_numpy(weights)
    np.testing.assert_allclose(weights, float32_weights, atol=1e-2)
    np.testing.assert_allclose(weights.sum(-1)[has_key], 1.0, atol=2e-2)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(context))


# ---- serialisation, saving, compilation --------------------------------


@pytest.mark.parametrize("fn", [*FNS, "sharpened_softmax"])
@pytest.mark.parametrize("name", NAMES)
def test_get_config_from_config_round_trip(name, fn, rng):
    identifier = sharpened_softmax if fn == "sharpened_softmax" else fn
    layer = make_layer(name, probability_fn=identifier, name="att")
    config = layer.get_config()
    if fn in FNS:
        assert config["probability_fn"] == fn
    else:
        assert config["probability_fn"] == keras.saving.serialize_keras_object(
            sharpened_softmax
        )
    clone = type(layer).from_config(config)
    assert clone.probability_fn is layer.probability_fn
    assert clone.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert revived.probability_fn is layer.probability_fn


def _token_model(layer):
    """Embeddings of standard deviation 2: scores spread enough for
    sparsemax to leave keys out."""
    query_tokens = keras.Input((None,), dtype="int32")
    value_tokens = keras.Input((None,), dtype="int32")
    query, value = (
        keras.layers.Embedding(
            10, 4, mask_zero=True, embeddings_initializer=_SPREAD
        )(tokens)
        for tokens in (query_tokens, value_tokens)
    )
    context, weights = layer(query, value, return_attention_scores=True)
    return keras.Model([query_tokens, value_tokens], [context, weights])


_SPREAD = keras.initializers.RandomNormal(stddev=2.0)
QUERY_TOKENS = np.array([[3, 1, 4, 0], [2, 7, 0, 0], [0, 0, 0, 0]], "int32")
VALUE_TOKENS = np.array(
    [[5, 9, 2, 6, 0], [0, 0, 0, 0, 0], [8, 3, 0, 0, 0]], "int32"
)


@pytest.mark.parametrize("fn", ["sparsemax", "sharpened_softmax"])
@pytest.mark.parametrize("name", NAMES)
def test_saved_keras_file_keeps_the_probability_function(name, fn, tmp_path):
    identifier = sharpened_softmax if fn == "sharpened_softmax" else fn
    layer = make_layer(name, probability_fn=identifier, name="attention")
    model = _token_model(layer)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    expected = to_numpy(model.predict(inputs, verbose=0))
    if fn == "sparsemax":
        assert np.any(expected[1][0, :3, :4] == 0)  # sparse on real keys
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    attention = loaded.get_layer("attention")
    assert attention.probability_fn is layer.probability_fn
    got = to_numpy(loaded.predict(inputs, verbose=0))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn", ["sparsemax", "hardmax"])
def test_jit_compiled_predict_matches_eager(fn):
    if keras.backend.backend() == "torch":
        pytest.skip("torch.compile takes ~1 min on CPU")
    query_tokens = keras.Input((None,), dtype="int32")
    value_tokens = keras.Input((None,), dtype="int32")
    query = keras.layers.Embedding(10, 4, mask_zero=True)(query_tokens)
    value = keras.layers.Embedding(10, 4, mask_zero=True)(value_tokens)
    outputs = []
    for name in NAMES:
        outputs.extend(
            make_layer(name, probability_fn=fn)(
                query, value, return_attention_scores=True
            )
        )
    model = keras.Model([query_tokens, value_tokens], outputs)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    model.compile(jit_compile=False)
    eager = to_numpy(model.predict(inputs, verbose=0))
    model.compile(jit_compile=True)
    compiled = to_numpy(model.predict(inputs, verbose=0))
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for weights in eager[1::2]:
        np.testing.assert_array_equal(weights[1], 0.0)  # no real key
        np.testing.assert_array_equal(weights[2], 0.0)  # no real query
        np.testing.assert_allclose(weights[0, :3].sum(-1), 1.0, atol=1e-6)
