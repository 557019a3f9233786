import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import additive_score
from tests.layers import numpy_reference as ref
from tests.layers.backend_utils import function_gradients
from tests.layers.backend_utils import layer_gradients
from tests.layers.backend_utils import to_numpy

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def set_by_name(layer, **values):
    """Assigns the layer's weights by their names (`v`, `g`, `b`, ...)."""
    variables = {
        "wq": layer.query_dense.kernel,
        "wk": layer.key_dense.kernel,
        "v": layer.v,
    }
    if layer.normalize:
        variables.update({"g": layer.g, "b": layer.b})
    for name, value in values.items():
        variables[name].assign(np.asarray(value, "float32"))


def test_hand_computed_two_queries_two_keys():
    # W_q = W_k = I, v = (1, 2); tanh(ln x) = (x^2 - 1) / (x^2 + 1), so
    # tanh(ln 2) = 0.6, tanh(ln 3) = 0.8, tanh(2 ln 3) = 80 / 82.
    #   q0 = (ln 2, 0), q1 = (0, ln 3); k0 = (0, ln 3), k1 = (0, 0).
    #   s00 = v . tanh(ln 2, ln 3)  = 0.6 + 1.6       = 2.2
    #   s01 = v . tanh(ln 2, 0)     = 0.6
    #   s10 = v . tanh(0, 2 ln 3)   = 2 * 80 / 82     = 80 / 41
    #   s11 = v . tanh(0, ln 3)     = 1.6
    # Row 0: softmax(2.2, 0.6) = (sigmoid(1.6), 1 - sigmoid(1.6))
    #      = (0.832018, 0.167982).
    # Row 1: s10 - s11 = 80/41 - 65.6/41 = 72/205 = 0.351220,
    #      softmax = (sigmoid(0.351220), ...) = (0.586913, 0.413087).
    # Values (2, 0) and (0, 4): context = (2 w0, 4 w1).
    layer = BahdanauAttention(units=2)
    query = np.array([[[LN2, 0.0], [0.0, LN3]]], "float32")
    key = np.array([[[0.0, LN3], [0.0, 0.0]]], "float32")
    value = np.array([[[2.0, 0.0], [0.0, 4.0]]], "float32")
    layer(query, value, key=key)
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "v",
        "query_dense/kernel",
        "key_dense/kernel",
    ]
    layer.set_weights([np.array([1.0, 2.0]), np.eye(2), np.eye(2)])
    context, weights = layer(
        query, value, key=key, return_attention_scores=True
    )
    np.testing.assert_allclose(
        to_numpy(weights),
        [[[0.832018, 0.167982], [0.586913, 0.413087]]],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(context),
        [[[1.664037, 0.671926], [1.173827, 1.652347]]],
        atol=1e-6,
    )


def test_hand_computed_normalized_single_step():
    # normalize=True: v_eff = g v / ||v|| = 5 (3, 4) / 5 = (3, 4); the bias
    # b = (ln 2, 0) is added to the projected keys. W_q = W_k = I.
    #   q = (0, 0) (one decoder step); k0 = (0, ln 3), k1 = (0, 0).
    #   s0 = v_eff . tanh(ln 2, ln 3) = 3 * 0.6 + 4 * 0.8 = 5.0
    #   s1 = v_eff . tanh(ln 2, 0)    = 1.8
    #   weights = (sigmoid(3.2), 1 - sigmoid(3.2)) = (0.960834, 0.039166)
    # Values (2, 0) and (0, 4): context = (1.921669, 0.156663).
    layer = BahdanauAttention(units=2, normalize=True)
    query = np.zeros((1, 2), "float32")
    key = np.array([[[0.0, LN3], [0.0, 0.0]]], "float32")
    value = np.array([[[2.0, 0.0], [0.0, 4.0]]], "float32")
    layer(query, value, key=key)
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "v",
        "g",
        "b",
        "query_dense/kernel",
        "key_dense/kernel",
    ]
    layer.set_weights(
        [
            np.array([3.0, 4.0]),
            np.array(5.0),
            np.array([LN2, 0.0]),
            np.eye(2),
            np.eye(2),
        ]
    )
    context, weights = layer(
        query, value, key=key, return_attention_scores=True
    )
    np.testing.assert_allclose(
        to_numpy(weights), [[0.960834, 0.039166]], atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(context), [[1.921669, 0.156663]], atol=1e-6
    )


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("normalize", [False, True])
def test_matches_numpy_reference_with_different_depths(normalize, rank, rng):
    query = rng.normal(size=(3, 4, 5)).astype("float32")
    key = rng.normal(size=(3, 6, 3)).astype("float32")
    value = rng.normal(size=(3, 6, 2)).astype("float32")
    value_mask = rng.random((3, 6)) < 0.6
    value_mask[1] = False
    query_mask = rng.random((3, 4)) < 0.7
    if rank == 2:
        query, query_mask = query[:, 0], query_mask[:, 0]
    layer = BahdanauAttention(units=7, normalize=normalize)
    layer(query, value, key=key)
    if normalize:  # away from their initial values
        set_by_name(layer, g=1.3, b=rng.normal(size=7))
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = layer(
        query, value, key=key, return_attention_scores=True, **masks
    )
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    np.testing.assert_allclose(to_numpy(weights), ref_weights, atol=1e-5)
    np.testing.assert_allclose(to_numpy(context), ref_context, atol=1e-5)


# ---- finite differences ------------------------------------------------


def _numeric_gradient(loss, array, eps=1e-6):
    """Central differences of `loss()` with respect to `array`, in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = loss()
        array[index] = original - eps
        minus = loss()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


FD_CASES = [
    pytest.param(3, False, False, id="rank3"),
    pytest.param(3, True, False, id="rank3_normalize"),
    pytest.param(3, True, True, id="rank3_normalize_chunked"),
    pytest.param(2, False, False, id="single_step"),
]


@pytest.mark.parametrize("rank, normalize, chunked", FD_CASES)
def test_gradient_matches_finite_differences(
    rank, normalize, chunked, rng, monkeypatch
):
    batch, tq, tk, units = 2, 3, 4, 3
    if chunked:
        # 48 elements per chunk / (B * Tk * units = 24) = 2 queries per
        # chunk: Tq = 3 gives two chunks, the last one padded.
        monkeypatch.setattr(additive_score, "_CHUNK_ELEMENTS", 48)
        assert additive_score._chunk_size(batch, tq, tk, units) == 2
    query = rng.normal(size=(batch, tq, 3)).astype("float32")
    key = rng.normal(size=(batch, tk, 2)).astype("float32")
    value = rng.normal(size=(batch, tk, 2)).astype("float32")
    value_mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)
    query_mask = np.array([[1, 0, 1], [1, 1, 1]], bool)
    if rank == 2:
        query, query_mask = query[:, 0], query_mask[:, 0]
    layer = BahdanauAttention(units=units, normalize=normalize)
    layer(query, value, key=key)
    if normalize:
        set_by_name(layer, g=0.8, b=rng.normal(size=units) * 0.5)
    c_coef = rng.normal(size=(*query.shape[:-1], 2))
    w_coef = rng.normal(size=(*query.shape[:-1], tk))
    c_tensor = ops.convert_to_tensor(c_coef, "float32")
    w_tensor = ops.convert_to_tensor(w_coef, "float32")

    def layer_loss(outputs):
        context, weights = outputs
        return ops.sum(context * c_tensor) + ops.sum(weights * w_tensor)

    loss, input_grads, weight_grads = layer_gradients(
        layer,
        [query, value, key],
        layer_loss,
        value_mask=value_mask,
        query_mask=query_mask,
        return_attention_scores=True,
    )

    # The same loss in float64 NumPy, from the formulas.
    params = {
        "wq": layer.query_dense.kernel,
        "wk": layer.key_dense.kernel,
        "v": layer.v,
    }
    if normalize:
        params.update({"g": layer.g, "b": layer.b})
    names = {id(variable): name for name, variable in params.items()}
    arrays = {name: to_numpy(variable) for name, variable in params.items()}
    arrays["g"] = np.atleast_1d(arrays.get("g", 0.0))
    arrays.update(
        query=query.astype(np.float64),
        value=value.astype(np.float64),
        key=key.astype(np.float64),
    )

    def numpy_loss():
        single_step = rank == 2
        scores = ref.bahdanau_scores(
            arrays["query"][:, None] if single_step else arrays["query"],
            arrays["key"],
            arrays["wq"],
            arrays["wk"],
            arrays["v"],
            g=arrays["g"][0] if normalize else None,
            b=arrays["b"] if normalize else None,
        )
        context, weights = ref.attention(
            scores,
            arrays["value"],
            value_mask=value_mask,
            query_mask=query_mask[:, None] if single_step else query_mask,
        )
        if single_step:
            context, weights = context[:, 0], weights[:, 0]
        return np.sum(context * c_coef) + np.sum(weights * w_coef)

    assert loss == pytest.approx(numpy_loss(), rel=1e-5, abs=1e-5)
    for name, grad in zip(("query", "value", "key"), input_grads, strict=True):
        np.testing.assert_allclose(
            grad,
            _numeric_gradient(numpy_loss, arrays[name]),
            rtol=1e-3,
            atol=1e-4,
            err_msg=f"d loss / d {name}",
        )
    assert len(weight_grads) == len(params)
    for variable, grad in zip(
        layer.trainable_variables, weight_grads, strict=True
    ):
        name = names[id(variable)]
        numeric = _numeric_gradient(numpy_loss, arrays[name])
        np.testing.assert_allclose(
            grad,
            numeric.reshape(grad.shape),
            rtol=1e-3,
            atol=1e-4,
            err_msg=f"d loss / d {name}",
        )
    # Masked query rows and masked keys get no gradient.
    if rank == 3:
        np.testing.assert_array_equal(input_grads[0][0, 1], 0.0)
    np.testing.assert_array_equal(input_grads[1][~value_mask], 0.0)


# ---- weights, configuration, errors ------------------------------------


@pytest.mark.parametrize("normalize", [False, True])
def test_weights_shapes_and_initializers(normalize):
    layer = BahdanauAttention(
        units=5, normalize=normalize, kernel_initializer="ones"
    )
    layer(np.ones((2, 3, 4), "float32"), np.ones((2, 6, 2), "float32"))
    assert layer.query_dense.kernel.shape == (4, 5)
    assert layer.key_dense.kernel.shape == (2, 5)
    assert layer.v.shape == (5,)
    np.testing.assert_array_equal(to_numpy(layer.query_dense.kernel), 1.0)
    np.testing.assert_array_equal(to_numpy(layer.key_dense.kernel), 1.0)
    np.testing.assert_array_equal(to_numpy(layer.v), 1.0)
    assert len(layer.trainable_variables) == (5 if normalize else 3)
    if normalize:
        assert layer.g.shape == () and layer.b.shape == (5,)
        np.testing.assert_allclose(to_numpy(layer.g), math.sqrt(1 / 5))
        np.testing.assert_array_equal(to_numpy(layer.b), 0.0)


def test_glorot_v_has_a_sensible_scale():
    layer = BahdanauAttention(units=400)
    layer(np.ones((1, 1, 4), "float32"), np.ones((1, 2, 4), "float32"))
    v = to_numpy(layer.v)
    limit = math.sqrt(6 / (400 + 1))  # Glorot on (units, 1)
    assert np.all(np.abs(v) <= limit)
    assert np.std(v) > limit / 3


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "8", None])
def test_units_must_be_a_positive_integer(units):
    with pytest.raises(
        ValueError,
        match=r"BahdanauAttention: `units` must be a positive integer.*"
        rf"Received: units={re_repr(units)}\.",
    ):
        BahdanauAttention(units=units)


def re_repr(value):
    import re

    return re.escape(repr(value))


def test_reusing_with_other_depths_raises(rng):
    layer = BahdanauAttention(units=4, name="att")
    layer(np.ones((2, 3, 4), "float32"), np.ones((2, 5, 3), "float32"))
    with pytest.raises(
        ValueError,
        match=r"BahdanauAttention layer 'att' was built for query depth 4 "
        r"and key depth 3\. Received query depth 5 and key depth 3\. Use a "
        r"new layer",
    ):
        layer(np.ones((2, 3, 5), "float32"), np.ones((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"Received query depth 4 and key "):
        layer(
            keras.Input((3, 4)),
            keras.Input((5, 2)),
        )


def test_get_config_round_trip_keeps_every_argument():
    layer = BahdanauAttention(
        units=9,
        normalize=True,
        dropout=0.3,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2),
        seed=4,
        name="att",
    )
    config = layer.get_config()
    assert config["units"] == 9
    assert config["normalize"] is True
    assert config["dropout"] == 0.3 and config["seed"] == 4
    clone = BahdanauAttention.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.kernel_initializer, keras.initializers.RandomNormal)
    assert clone.kernel_initializer.stddev == 0.2


# ---- coverage (Tu et al., 2016; See et al., 2017) ----------------------


def numpy_coverage_attention(layer, query, key, value, coverage, value_mask):
    """See et al. (2017), eq. 11: `v . tanh(W_q q + W_k k + w_c c)`, then
    the masked softmax and the context, in float64."""
    wq, wk, v, w_c = (
        to_numpy(x)
        for x in (
            layer.query_dense.kernel,
            layer.key_dense.kernel,
            layer.v,
            layer.w_c,
        )
    )
    hidden = np.tanh(
        (query @ wq)[:, :, None, :]
        + (key @ wk)[:, None, :, :]
        + coverage[..., None] * w_c
    )
    scores = np.einsum("bqku,u->bqk", hidden, v)
    return ref.attention(scores, value, value_mask=value_mask)


@pytest.mark.parametrize("rank", [2, 3])
def test_coverage_score_matches_see_et_al(rank, rng):
    query = rng.normal(size=(3, 4, 5)).astype("float32")
    key = rng.normal(size=(3, 6, 3)).astype("float32")
    value = rng.normal(size=(3, 6, 2)).astype("float32")
    coverage = rng.uniform(0, 3, size=(3, 4, 6)).astype("float32")
    value_mask = rng.random((3, 6)) < 0.7
    value_mask[:, 0] = True
    layer = BahdanauAttention(units=7, use_coverage=True)
    layer(query, value, key=key)
    assert layer.w_c.shape == (7,)
    ref_context, ref_weights = numpy_coverage_attention(
        layer, query, key, value, coverage, value_mask
    )
    if rank == 2:
        query, coverage = query[:, 0], coverage[:, 0]
        ref_context, ref_weights = ref_context[:, 0], ref_weights[:, 0]
    context, weights = layer(
        query,
        value,
        key=key,
        value_mask=value_mask,
        coverage=coverage,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(to_numpy(weights), ref_weights, atol=1e-5)
    np.testing.assert_allclose(to_numpy(context), ref_context, atol=1e-5)
    # `attend` with projected keys gives the same.
    context, weights = layer.attend(
        query,
        value,
        layer.project_keys(key),
        value_mask=value_mask,
        coverage=coverage,
    )
    np.testing.assert_allclose(to_numpy(weights), ref_weights, atol=1e-5)


def test_no_coverage_is_a_zero_coverage_and_the_plain_layer(rng):
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    value = rng.normal(size=(2, 5, 4)).astype("float32")
    lengths = np.array([5, 3], "int32")
    layer = BahdanauAttention(units=6, use_coverage=True)
    plain = BahdanauAttention(units=6)
    layer(query, value)
    plain(query, value)
    # The plain layer's weights are the coverage layer's without `w_c`.
    v, _, w_q, w_k = layer.get_weights()  # v, w_c, W_q, W_k
    plain.set_weights([v, w_q, w_k])
    outputs = [
        to_numpy(layer(query, value, value_lengths=lengths)),
        to_numpy(
            layer(
                query,
                value,
                value_lengths=lengths,
                coverage=np.zeros((2, 3, 5), "float32"),
            )
        ),
        to_numpy(plain(query, value, value_lengths=lengths)),
    ]
    np.testing.assert_array_equal(outputs[0], outputs[2])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-6)
    # And the coverage changes the output.
    covered = to_numpy(
        layer(query, value, coverage=np.ones((2, 3, 5), "float32"))
    )
    assert np.abs(covered - to_numpy(layer(query, value))).max() > 1e-4


def test_coverage_gradient_reaches_w_c_and_the_coverage(rng):
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    value = rng.normal(size=(2, 5, 4)).astype("float32")
    coverage = rng.uniform(0, 2, size=(2, 3, 5)).astype("float32")
    layer = BahdanauAttention(units=6, use_coverage=True)
    layer(query, value)
    coef = ops.convert_to_tensor(rng.normal(size=(2, 3, 5)), "float32")

    def loss(outputs):
        return ops.sum(outputs[1] * coef)

    _, _, weight_grads = layer_gradients(
        layer,
        [query, value],
        loss,
        coverage=coverage,
        return_attention_scores=True,
    )
    names = [w.path.split("/", 1)[1] for w in layer.trainable_variables]
    assert "w_c" in names
    assert np.abs(weight_grads[names.index("w_c")]).max() > 0
    _, (d_coverage,) = function_gradients(
        lambda c: loss(
            layer(query, value, coverage=c, return_attention_scores=True)
        ),
        [coverage],
    )
    assert np.abs(d_coverage).max() > 0


def test_coverage_errors_say_what_to_do(rng):
    query = np.ones((2, 3, 4), "float32")
    value = np.ones((2, 5, 4), "float32")
    with pytest.raises(ValueError, match=r"use_coverage=True"):
        BahdanauAttention(units=4)(
            query, value, coverage=np.zeros((2, 3, 5), "float32")
        )
    with pytest.raises(
        ValueError,
        match=r"`coverage` must have shape \(2, 3, 5\).*Received coverage "
        r"shape \(2, 5\)",
    ):
        BahdanauAttention(units=4, use_coverage=True)(
            query, value, coverage=np.zeros((2, 5), "float32")
        )


def test_coverage_in_a_functional_model_and_config(tmp_path, rng):
    query = keras.Input((3, 4))
    value = keras.Input((5, 2))
    coverage = keras.Input((3, 5))
    layer = BahdanauAttention(units=4, use_coverage=True, name="att")
    context = layer(query, value, coverage=coverage)
    assert tuple(context.shape) == (None, 3, 2)
    model = keras.Model([query, value, coverage], context)
    inputs = [
        rng.normal(size=(2, 3, 4)).astype("float32"),
        rng.normal(size=(2, 5, 2)).astype("float32"),
        rng.uniform(size=(2, 3, 5)).astype("float32"),
    ]
    model.save(tmp_path / "coverage.keras")
    loaded = keras.saving.load_model(tmp_path / "coverage.keras")
    np.testing.assert_array_equal(
        to_numpy(loaded(inputs)), to_numpy(model(inputs))
    )
    config = layer.get_config()
    assert config["use_coverage"] is True
    assert BahdanauAttention.from_config(config).get_config() == config
