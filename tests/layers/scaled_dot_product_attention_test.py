import math

import keras
import numpy as np
import pytest

from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from tests.layers import numpy_reference as ref
from tests.layers.backend_utils import to_numpy

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def attend(layer, query, value, **kwargs):
    context, weights = layer(
        query, value, return_attention_scores=True, **kwargs
    )
    return to_numpy(context), to_numpy(weights)


def test_hand_computed_two_queries_two_keys():
    # d_k = 4, so the scores are q . k / 2.
    #   q0 = (2, 0, 0, 0), q1 = (0, 2, 0, 0);
    #   k0 = (ln 3, 0, 0, 0), k1 = (0, ln 2, 0, 0); values (4, 0), (0, 12).
    # Scaled: s00 = 2 ln 3 / 2 = ln 3, s01 = 0, s10 = 0, s11 = ln 2:
    #   weights (3/4, 1/4) and (1/3, 2/3);
    #   context (3, 3) and (4/3, 8).
    # Unscaled dot, for contrast: scores twice as large:
    #   weights (9/10, 1/10) and (1/5, 4/5); context (3.6, 1.2), (0.8, 9.6).
    query = np.array([[[2, 0, 0, 0], [0, 2, 0, 0]]], "float32")
    key = np.array([[[LN3, 0, 0, 0], [0, LN2, 0, 0]]], "float32")
    value = np.array([[[4.0, 0.0], [0.0, 12.0]]], "float32")
    context, weights = attend(
        ScaledDotProductAttention(), query, value, key=key
    )
    np.testing.assert_allclose(
        weights, [[[0.75, 0.25], [1 / 3, 2 / 3]]], atol=1e-6
    )
    np.testing.assert_allclose(context, [[[3.0, 3.0], [4 / 3, 8.0]]], atol=1e-5)
    context, weights = attend(DotProductAttention(), query, value, key=key)
    np.testing.assert_allclose(weights, [[[0.9, 0.1], [0.2, 0.8]]], atol=1e-6)
    np.testing.assert_allclose(context, [[[3.6, 1.2], [0.8, 9.6]]], atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
def test_matches_numpy_reference(rank, rng):
    query = rng.normal(size=(3, 4, 9)).astype("float32") * 2
    key = rng.normal(size=(3, 6, 9)).astype("float32") * 2
    value = rng.normal(size=(3, 6, 2)).astype("float32")
    value_mask = rng.random((3, 6)) < 0.6
    value_mask[0] = False
    query_mask = rng.random((3, 4)) < 0.7
    if rank == 2:
        query, query_mask = query[:, 0], query_mask[:, 0]
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    layer = ScaledDotProductAttention()
    context, weights = attend(layer, query, value, key=key, **masks)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_equals_dot_product_on_queries_divided_by_sqrt_depth(rng):
    query = rng.normal(size=(2, 3, 16)).astype("float32")
    value = rng.normal(size=(2, 5, 16)).astype("float32")
    scaled = attend(ScaledDotProductAttention(), query, value)
    dot = attend(DotProductAttention(), query / 4, value)
    np.testing.assert_allclose(scaled[1], dot[1], atol=1e-6)
    np.testing.assert_allclose(scaled[0], dot[0], atol=1e-5)


def test_has_no_weights():
    layer = ScaledDotProductAttention()
    layer(np.ones((1, 2, 3), "float32"), np.ones((1, 4, 3), "float32"))
    assert layer.weights == []


def test_depth_unknown_until_run(rng):
    """The 1/sqrt(d_k) of a depth only known when the layer runs."""
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    value = rng.normal(size=(2, 5, 4)).astype("float32")
    layer = ScaledDotProductAttention()
    query_in = keras.Input((None, None))
    value_in = keras.Input((None, None))
    outputs = layer(query_in, value_in, return_attention_scores=True)
    assert tuple(outputs[1].shape) == (None, None, None)
    model = keras.Model([query_in, value_in], outputs)
    expected = ref.layer_attention(layer, query, value)
    got = to_numpy(model.predict([query, value], verbose=0))
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        # Only TensorFlow graphs can leave d_k unknown while running.
        import tensorflow as tf

        spec = tf.TensorSpec((None, None, None), "float32")
        run = tf.function(
            lambda q, v: layer(q, v, return_attention_scores=True),
            input_signature=[spec, spec],
        )
        got = to_numpy(run(query, value))
        np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
        np.testing.assert_allclose(got[0], expected[0], atol=1e-5)


def test_depth_mismatch_raises_and_suggests_a_fix():
    message = (
        r"ScaledDotProductAttention layer 'att' needs queries and keys of the "
        r"same depth d_k\. Received query depth 4 and key depth 3\. Project "
        r"queries or keys with a Dense layer first, or use "
        r"DotProductAttention\(score='general'\)\."
    )
    with pytest.raises(ValueError, match=message):
        ScaledDotProductAttention(name="att")(
            np.ones((2, 3, 4), "float32"), np.ones((2, 5, 3), "float32")
        )
    with pytest.raises(ValueError, match=message):
        ScaledDotProductAttention(name="att")(
            keras.Input((3, 4)), keras.Input((5, 3))
        )
    with pytest.raises(ValueError, match=message):
        ScaledDotProductAttention(name="att")(
            keras.Input((4,)), keras.Input((5, 8)), key=keras.Input((5, 3))
        )


def test_get_config_round_trip():
    layer = ScaledDotProductAttention(dropout=0.1, seed=2, name="att")
    config = layer.get_config()
    assert config["dropout"] == 0.1 and config["seed"] == 2
    clone = ScaledDotProductAttention.from_config(config)
    assert clone.get_config() == config
