import math

import keras
import numpy as np
import pytest

from keras_nmt.layers import DotProductAttention
from tests.layers import numpy_reference as ref
from tests.layers.backend_utils import to_numpy

LN2 = math.log(2.0)
LN3 = math.log(3.0)

# Two queries, two keys, values (4, 0) and (0, 12), used by the hand cases:
#   q0 = (1, 0), q1 = (0, 2); k0 = (ln 3, 0), k1 = (0, ln 2 / 2).
QUERY = np.array([[[1.0, 0.0], [0.0, 2.0]]], "float32")
KEY = np.array([[[LN3, 0.0], [0.0, LN2 / 2]]], "float32")
VALUE = np.array([[[4.0, 0.0], [0.0, 12.0]]], "float32")


def attend(layer, query, value, **kwargs):
    context, weights = layer(
        query, value, return_attention_scores=True, **kwargs
    )
    return to_numpy(context), to_numpy(weights)


def test_hand_computed_dot():
    # Scores q . k: s00 = ln 3, s01 = 0, s10 = 0, s11 = 2 * ln 2 / 2 = ln 2.
    # Row 0: softmax(ln 3, 0) = (3, 1) / 4 = (0.75, 0.25).
    # Row 1: softmax(0, ln 2) = (1, 2) / 3 = (1/3, 2/3).
    # Context: row 0 = 0.75 (4, 0) + 0.25 (0, 12) = (3, 3);
    #          row 1 = (4, 0) / 3 + 2 (0, 12) / 3 = (4/3, 8).
    context, weights = attend(DotProductAttention(), QUERY, VALUE, key=KEY)
    np.testing.assert_allclose(
        weights, [[[0.75, 0.25], [1 / 3, 2 / 3]]], atol=1e-6
    )
    np.testing.assert_allclose(context, [[[3.0, 3.0], [4 / 3, 8.0]]], atol=1e-5)


def test_hand_computed_general_and_scale():
    # "general" with W = 2 I doubles every score:
    #   row 0: softmax(2 ln 3, 0) = (9, 1) / 10; row 1: softmax(0, 2 ln 2)
    #   = (1, 4) / 5. Context: row 0 = (3.6, 1.2), row 1 = (0.8, 9.6).
    layer = DotProductAttention(score="general")
    layer(QUERY, VALUE, key=KEY)
    layer.set_weights([2 * np.eye(2)])
    context, weights = attend(layer, QUERY, VALUE, key=KEY)
    np.testing.assert_allclose(weights, [[[0.9, 0.1], [0.2, 0.8]]], atol=1e-6)
    np.testing.assert_allclose(context, [[[3.6, 1.2], [0.8, 9.6]]], atol=1e-5)
    # A learned scale of 1/2 undoes the doubling: back to the "dot" case.
    scaled = DotProductAttention(score="general", use_scale=True)
    scaled(QUERY, VALUE, key=KEY)
    assert [w.path.split("/", 1)[1] for w in scaled.weights] == [
        "scale",
        "key_dense/kernel",
    ]
    scaled.set_weights([np.array(0.5), 2 * np.eye(2)])
    context, weights = attend(scaled, QUERY, VALUE, key=KEY)
    np.testing.assert_allclose(
        weights, [[[0.75, 0.25], [1 / 3, 2 / 3]]], atol=1e-6
    )


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("score", ["dot", "general"])
def test_matches_numpy_reference(score, use_scale, rank, rng):
    # "general" lets the query depth (5) differ from the key depth (3).
    dq = 5 if score == "general" else 3
    query = rng.normal(size=(3, 4, dq)).astype("float32")
    key = rng.normal(size=(3, 6, 3)).astype("float32")
    value = rng.normal(size=(3, 6, 2)).astype("float32")
    value_mask = rng.random((3, 6)) < 0.6
    value_mask[2] = False
    query_mask = rng.random((3, 4)) < 0.7
    if rank == 2:
        query, query_mask = query[:, 0], query_mask[:, 0]
    layer = DotProductAttention(score=score, use_scale=use_scale)
    layer(query, value, key=key)
    if use_scale:
        layer.scale.assign(1.8)
    if score == "general":
        assert layer.key_dense.kernel.shape == (3, dq)
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = attend(layer, query, value, key=key, **masks)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_general_with_identity_equals_dot(rng):
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    value = rng.normal(size=(2, 5, 4)).astype("float32")
    general = DotProductAttention(score="general")
    general(query, value)
    general.set_weights([np.eye(4)])
    expected = attend(DotProductAttention(), query, value)
    got = attend(general, query, value)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)


@pytest.mark.parametrize(
    "score, use_scale, expected",
    [
        ("dot", False, []),
        ("dot", True, ["scale"]),
        ("general", False, ["key_dense/kernel"]),
    ],
)
def test_trainable_weights(score, use_scale, expected):
    layer = DotProductAttention(score=score, use_scale=use_scale)
    layer(np.ones((1, 2, 3), "float32"), np.ones((1, 4, 3), "float32"))
    names = [w.path.split("/", 1)[1] for w in layer.trainable_weights]
    assert names == expected
    if use_scale:
        assert to_numpy(layer.scale) == 1.0  # initialised to 1


def test_dot_depth_mismatch_raises_and_suggests_general():
    message = (
        r"DotProductAttention layer 'att' with score='dot' needs queries and "
        r"keys of the same depth\. Received query depth 4 and key depth 3\. "
        r"Use score='general' .*or project queries or keys with a Dense layer"
    )
    with pytest.raises(ValueError, match=message):
        DotProductAttention(name="att")(
            np.ones((2, 3, 4), "float32"), np.ones((2, 5, 3), "float32")
        )
    # Symbolic inputs: the error comes before any computation.
    with pytest.raises(ValueError, match=message):
        DotProductAttention(name="att")(
            keras.Input((3, 4)), keras.Input((5, 3))
        )
    # A separate key sets the depth, not the value.
    with pytest.raises(ValueError, match=message):
        DotProductAttention(name="att")(
            keras.Input((3, 4)), keras.Input((5, 4)), key=keras.Input((5, 3))
        )


def test_general_reused_with_other_depths_raises():
    layer = DotProductAttention(score="general", name="att")
    layer(np.ones((2, 3, 4), "float32"), np.ones((2, 5, 3), "float32"))
    with pytest.raises(
        ValueError,
        match=r"DotProductAttention layer 'att' was built for keys of depth 3 "
        r"and queries of depth 4\. Received key depth 2 and query depth 4\.",
    ):
        layer(np.ones((2, 3, 4), "float32"), np.ones((2, 5, 2), "float32"))


@pytest.mark.parametrize("score", ["concat", "Dot", "", None])
def test_unknown_score_raises(score):
    with pytest.raises(
        ValueError,
        match=r"DotProductAttention: `score` must be one of \('dot', "
        rf"'general'\)\. Received: score={score!r}\.",
    ):
        DotProductAttention(score=score)


def test_get_config_round_trip():
    layer = DotProductAttention(
        score="general", use_scale=True, dropout=0.2, seed=1, name="att"
    )
    config = layer.get_config()
    assert config["score"] == "general" and config["use_scale"] is True
    clone = DotProductAttention.from_config(config)
    assert clone.get_config() == config
    assert clone.score_mode == "general" and clone.use_scale
