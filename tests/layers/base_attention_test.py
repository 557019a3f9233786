"""Behaviour shared by the three attention layers, tested on each of them.

Every number is checked against the float64 NumPy reference in
`numpy_reference.py`, written from the formulas.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import BaseAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from keras_nmt.layers import masked_softmax
from tests.layers import numpy_reference as ref
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
CLASS_NAMES = {
    "bahdanau": "BahdanauAttention",
    "dot": "DotProductAttention",
    "general": "DotProductAttention",
    "scaled": "ScaledDotProductAttention",
}

# The autouse fixture only resets Keras' global state; it is safe to share
# between the examples of one test.
property_settings = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def make_layer(kind, **kwargs):
    return LAYERS[kind](**kwargs)


def perturb_scale(layer):
    """Moves a learned score scale off its initial 1 so the test sees it."""
    if getattr(layer, "use_scale", False):
        layer.scale.assign(0.7)


def random_inputs(rng, batch=3, tq=4, tk=5, dq=4, dk=4, dv=3):
    """Query, key, value and masks; sample 1 has every key masked."""
    query = rng.normal(size=(batch, tq, dq)).astype("float32")
    key = rng.normal(size=(batch, tk, dk)).astype("float32")
    value = rng.normal(size=(batch, tk, dv)).astype("float32")
    value_mask = rng.random((batch, tk)) < 0.6
    value_mask[0, 0] = True
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


# ---- numbers against the NumPy reference -------------------------------


@pytest.mark.parametrize("with_masks", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("name", NAMES)
def test_rank3_matches_numpy_reference(name, with_masks, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    masks = (
        {"value_mask": value_mask, "query_mask": query_mask}
        if with_masks
        else {}
    )
    context, weights = call(layer, query, value, key=key, **masks)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    assert context.shape == (3, 4, 3) and weights.shape == (3, 4, 5)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


@pytest.mark.parametrize("with_masks", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("name", NAMES)
def test_single_step_matches_numpy_reference(name, with_masks, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    query, query_mask = query[:, 0], query_mask[:, 0]
    query_mask[2] = False
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    masks = (
        {"value_mask": value_mask, "query_mask": query_mask}
        if with_masks
        else {}
    )
    context, weights = call(layer, query, value, key=key, **masks)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    assert context.shape == (3, 3) and weights.shape == (3, 5)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # One step is the rank-3 call with Tq = 1.
    step_context, step_weights = call(
        layer, query[:, None], value, key=key, **_expand_query_mask(masks)
    )
    np.testing.assert_allclose(context, step_context[:, 0], atol=1e-6)
    np.testing.assert_allclose(weights, step_weights[:, 0], atol=1e-6)


def _expand_query_mask(masks):
    if "query_mask" in masks:
        masks = {**masks, "query_mask": masks["query_mask"][:, None]}
    return masks


@pytest.mark.parametrize("name", NAMES)
def test_key_defaults_to_value(name, rng):
    query, _, value, value_mask, _ = random_inputs(rng, dv=4)
    layer = make_layer(name)
    implicit = call(layer, query, value, value_mask=value_mask)
    explicit = call(layer, query, value, key=value, value_mask=value_mask)
    np.testing.assert_array_equal(implicit[0], explicit[0])
    np.testing.assert_array_equal(implicit[1], explicit[1])
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, value_mask=value_mask
    )
    np.testing.assert_allclose(implicit[1], ref_weights, atol=1e-5)
    np.testing.assert_allclose(implicit[0], ref_context, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_attend_on_projected_keys_equals_call(name, rank, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    if rank == 2:
        query, query_mask = query[:, 1], query_mask[:, 1]
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = call(layer, query, value, key=key, **masks)
    projected = layer.project_keys(key)
    attended = layer.attend(query, value, projected, **masks)
    np.testing.assert_array_equal(to_numpy(attended[0]), context)
    np.testing.assert_array_equal(to_numpy(attended[1]), weights)


def test_numpy_reference_softmax_by_hand():
    # softmax(0, ln 3, 5) with the last entry masked = (1, 3) / 4, 0;
    # an all-masked row stays 0.
    scores = np.array([[0.0, np.log(3.0), 5.0], [1.0, 2.0, 3.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(
        ref.masked_softmax(scores, mask), [[0.25, 0.75, 0.0], [0, 0, 0]]
    )


def test_masked_softmax_matches_reference(rng):
    scores = rng.normal(size=(3, 4, 5)).astype("float32") * 3
    mask = rng.random((3, 4, 5)) < 0.5
    mask[1, 2] = False
    got = to_numpy(masked_softmax(scores, mask))
    np.testing.assert_allclose(got, ref.masked_softmax(scores, mask), atol=1e-6)
    assert np.all(got[~mask] == 0.0)
    np.testing.assert_array_equal(got[1, 2], np.zeros(5))
    unmasked = to_numpy(masked_softmax(scores))
    np.testing.assert_allclose(unmasked, ref.masked_softmax(scores), atol=1e-6)
    # Half-precision scores are normalised in float32.
    half = masked_softmax(ops.cast(scores, "float16"), mask)
    assert keras.backend.standardize_dtype(half.dtype) == "float32"


class NegativeSquaredDistance(BaseAttention):
    """A score the package does not ship: `-||q - k||^2`."""

    def score(self, query, projected_keys):
        query = ops.cast(query, "float32")
        difference = ops.expand_dims(query, 2) - ops.expand_dims(
            projected_keys, 1
        )
        return -ops.sum(ops.square(difference), axis=-1)


def test_a_subclass_only_says_how_to_score(rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = call(
        NegativeSquaredDistance(), query, value, key=key, **masks
    )
    scores = -np.sum(
        (query[:, :, None].astype(np.float64) - key[:, None]) ** 2, axis=-1
    )
    ref_context, ref_weights = ref.attention(scores, value, **masks)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_base_attention_without_a_score_raises():
    with pytest.raises(
        NotImplementedError, match=r"BaseAttention must implement `score`"
    ):
        BaseAttention()(np.ones((1, 2, 3)), np.ones((1, 4, 3)))


# ---- masks -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_masked_keys_get_exactly_zero_weight(name, rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    # Huge scores must not leak through the mask either.
    value = value * 100
    key = key * 30
    context, weights = call(
        make_layer(name), query, value, key=key, value_mask=value_mask
    )
    masked = np.broadcast_to(~value_mask[:, None, :], weights.shape)
    assert np.all(weights[masked] == 0.0)
    # Rows with at least one key sum to 1 over the unmasked keys.
    np.testing.assert_allclose(weights[[0, 2]].sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_all_masked_row_gives_zero_weights_context_and_no_nan(name, rng):
    query, key, value, value_mask, _ = random_inputs(rng)
    layer = make_layer(name)
    context, weights = call(layer, query, value, key=key, value_mask=value_mask)
    # Sample 1 has no key to attend to: zeros, not a uniform average.
    np.testing.assert_array_equal(weights[1], np.zeros((4, 5)))
    np.testing.assert_array_equal(context[1], np.zeros((4, 3)))
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))

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
    for grad in (d_query, d_value, d_key, *d_weights):
        assert np.all(np.isfinite(grad))
    assert np.isfinite(loss)
    # Nothing of sample 1 reaches the output, so nothing flows back to it;
    # masked values receive no gradient anywhere.
    np.testing.assert_array_equal(d_query[1], 0.0)
    np.testing.assert_array_equal(d_key[1], 0.0)
    assert np.all(d_value[~value_mask] == 0.0)
    assert np.any(d_query[0] != 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_query_mask_zeroes_context_rows(name, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer(name)
    context, weights = call(layer, query, value, key=key, query_mask=query_mask)
    np.testing.assert_array_equal(context[~query_mask], 0.0)
    np.testing.assert_array_equal(weights[~query_mask], 0.0)
    # Unmasked queries are untouched by the query mask.
    free_context, free_weights = call(layer, query, value, key=key)
    np.testing.assert_array_equal(context[query_mask], free_context[query_mask])
    np.testing.assert_array_equal(weights[query_mask], free_weights[query_mask])


@pytest.mark.parametrize("tk", [3, 4, 6])
@pytest.mark.parametrize("name", NAMES)
def test_causal_mask_is_lower_triangular(name, tk, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng, tk=tk)
    value_mask[0, 0] = True
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    context, weights = call(layer, query, value, key=key, use_causal_mask=True)
    upper = ~np.tril(np.ones((4, tk), bool))
    assert np.all(weights[:, upper] == 0.0)
    # The first query sees only the first key.
    np.testing.assert_allclose(weights[:, 0, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(context[:, 0], value[:, 0], atol=1e-6)
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, use_causal_mask=True
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # Combined with the key and query masks.
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = call(
        layer, query, value, key=key, use_causal_mask=True, **masks
    )
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, use_causal_mask=True, **masks
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_causal_mask_with_single_step_query_raises(name, rng):
    query, key, value, _, _ = random_inputs(rng)
    with pytest.raises(ValueError, match=r"`use_causal_mask=True` needs a"):
        make_layer(name)(query[:, 0], value, key=key, use_causal_mask=True)


def _token_model(layer, dq=4, dv=4):
    """Embedding(mask_zero=True) for queries and values, then `layer`."""
    query_tokens = keras.Input((None,), dtype="int32", name="query_tokens")
    value_tokens = keras.Input((None,), dtype="int32", name="value_tokens")
    query_embedding = keras.layers.Embedding(
        10, dq, mask_zero=True, name="query_embedding"
    )
    value_embedding = keras.layers.Embedding(
        10, dv, mask_zero=True, name="value_embedding"
    )
    context, weights = layer(
        query_embedding(query_tokens),
        value_embedding(value_tokens),
        return_attention_scores=True,
    )
    return keras.Model([query_tokens, value_tokens], [context, weights])


# Query row 2 and value row 1 are all padding.
QUERY_TOKENS = np.array([[3, 1, 4, 0], [2, 7, 0, 0], [0, 0, 0, 0]], "int32")
VALUE_TOKENS = np.array(
    [[5, 9, 2, 6, 0], [0, 0, 0, 0, 0], [8, 3, 0, 0, 0]], "int32"
)


@pytest.mark.parametrize("name", NAMES)
def test_embedding_mask_equals_explicit_masks(name):
    layer = make_layer(name, name="attention")
    model = _token_model(layer)
    context, weights = to_numpy(
        model.predict([QUERY_TOKENS, VALUE_TOKENS], verbose=0)
    )
    # Plain arrays: no Keras mask travels with them.
    query = keras.ops.convert_to_numpy(
        model.get_layer("query_embedding")(QUERY_TOKENS)
    )
    value = keras.ops.convert_to_numpy(
        model.get_layer("value_embedding")(VALUE_TOKENS)
    )
    explicit = call(
        layer,
        query,
        value,
        query_mask=QUERY_TOKENS != 0,
        value_mask=VALUE_TOKENS != 0,
    )
    np.testing.assert_allclose(context, explicit[0], atol=1e-6)
    np.testing.assert_allclose(weights, explicit[1], atol=1e-6)
    # The masks were really applied.
    assert np.all(
        weights[np.broadcast_to(VALUE_TOKENS[:, None] == 0, weights.shape)] == 0
    )
    np.testing.assert_array_equal(context[QUERY_TOKENS == 0], 0.0)
    unmasked = call(layer, query, value)
    assert not np.allclose(unmasked[1], weights)


def _key_token_model(layer):
    """Keys from `Embedding(mask_zero=True)`; values from a plain input that
    carries no Keras mask."""
    query = keras.Input((None, 4), name="query")
    key_tokens = keras.Input((None,), dtype="int32", name="key_tokens")
    value = keras.Input((None, 3), name="value")
    key = keras.layers.Embedding(10, 4, mask_zero=True, name="key_embedding")(
        key_tokens
    )
    context, weights = layer(
        query, value, key=key, return_attention_scores=True
    )
    return keras.Model([query, key_tokens, value], [context, weights])


@pytest.mark.parametrize("name", NAMES)
def test_key_embedding_mask_masks_padded_keys(name, rng):
    layer = make_layer(name, name="attention")
    model = _key_token_model(layer)
    query = rng.normal(size=(3, 4, 4)).astype("float32")
    value = rng.normal(size=(3, 5, 3)).astype("float32")
    context, weights = to_numpy(
        model.predict([query, VALUE_TOKENS, value], verbose=0)
    )
    real = VALUE_TOKENS != 0
    assert np.all(weights[np.broadcast_to(~real[:, None], weights.shape)] == 0)
    np.testing.assert_array_equal(context[1], 0.0)  # sample 1: no real key
    key = keras.ops.convert_to_numpy(
        model.get_layer("key_embedding")(VALUE_TOKENS)
    )
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, value_mask=real
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # The implicit key mask is the explicit one.
    explicit = call(layer, query, value, key=key, key_mask=real)
    np.testing.assert_allclose(context, explicit[0], atol=1e-6)
    np.testing.assert_allclose(weights, explicit[1], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_key_mask_equals_value_mask_and_combines_with_it(name, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    key_mask = rng.random((3, 5)) < 0.7
    key_mask[0, :2] = True
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    kwargs = {"key": key, "query_mask": query_mask}
    as_key = call(layer, query, value, key_mask=value_mask, **kwargs)
    as_value = call(layer, query, value, value_mask=value_mask, **kwargs)
    np.testing.assert_array_equal(as_key[0], as_value[0])
    np.testing.assert_array_equal(as_key[1], as_value[1])
    # Both masks: a key takes part where both are True.
    both = value_mask & key_mask
    assert both.any() and not np.array_equal(both, value_mask)
    context, weights = call(
        layer, query, value, value_mask=value_mask, key_mask=key_mask, **kwargs
    )
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, value_mask=both, **kwargs
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # `attend` (one decoder step here) takes `key_mask` too.
    step_context, step_weights = layer.attend(
        query[:, 0],
        value,
        layer.project_keys(key),
        query_mask=query_mask[:, 0],
        value_mask=value_mask,
        key_mask=key_mask,
    )
    np.testing.assert_allclose(to_numpy(step_weights), ref_weights[:, 0], 1e-5)
    np.testing.assert_allclose(to_numpy(step_context), ref_context[:, 0], 1e-5)


def _fill_masked(x, mask, fill):
    """`x` with its rows `x[b, j]` where `mask[b, j]` is False set to `fill`."""
    x = np.array(x, copy=True)
    x[~mask] = fill
    return x


@pytest.mark.parametrize("mask_arg", ["value_mask", "key_mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_masked_values_and_keys_do_not_reach_the_output(
    name, causal, mask_arg, rng
):
    query, key, value, mask, query_mask = random_inputs(rng)
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    kwargs = {mask_arg: mask, "query_mask": query_mask}
    kwargs["use_causal_mask"] = causal
    # Finite garbage in the masked rows: the reference's answer.
    garbage = rng.normal(size=(3, 5, 4)).astype("float32") * 1e3
    finite_key = np.where(mask[..., None], key, garbage)
    finite_value = np.where(mask[..., None], value, garbage[..., :3])
    expected = call(layer, query, finite_value, key=finite_key, **kwargs)
    ref_context, ref_weights = ref.layer_attention(
        layer,
        query,
        value,
        key=key,
        value_mask=mask,
        query_mask=query_mask,
        use_causal_mask=causal,
    )
    np.testing.assert_allclose(expected[1], ref_weights, atol=1e-5)
    np.testing.assert_allclose(expected[0], ref_context, atol=1e-5)
    for fill in (np.nan, np.inf, -np.inf):
        bad_key = _fill_masked(key, mask, fill)
        bad_value = _fill_masked(value, mask, fill)
        for args in ((value, bad_key), (bad_value, key), (bad_value, bad_key)):
            got = call(layer, query, args[0], key=args[1], **kwargs)
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])
            context = layer(query, args[0], key=args[1], **kwargs)
            np.testing.assert_array_equal(to_numpy(context), expected[0])


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_masked_inputs_give_the_gradients_of_finite_ones(name, rng):
    query, key, value, value_mask, query_mask = random_inputs(rng)
    layer = make_layer(name)
    layer(query, value, key=key)
    perturb_scale(layer)
    c_coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 3)), "float32")
    w_coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 5)), "float32")

    def loss_fn(outputs):
        context, weights = outputs
        return ops.sum(context * c_coef) + ops.sum(weights * w_coef)

    kwargs = {
        "key_mask": value_mask,
        "query_mask": query_mask,
        "return_attention_scores": True,
    }
    results = [
        layer_gradients(
            layer,
            [
                query,
                _fill_masked(value, value_mask, fill),
                _fill_masked(key, value_mask, fill),
            ],
            loss_fn,
            **kwargs,
        )
        for fill in (7.0, np.nan, np.inf)
    ]
    finite = results[0]
    for loss, input_grads, weight_grads in results[1:]:
        assert loss == finite[0]
        for got, expected in zip(
            [*input_grads, *weight_grads], [*finite[1], *finite[2]], strict=True
        ):
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(finite[1][1][~value_mask], 0.0)
    np.testing.assert_array_equal(finite[1][2][~value_mask], 0.0)


# ---- properties --------------------------------------------------------


# A few fixed shapes, edge cases included (one query, one key, depth 1):
# JAX compiles every operation anew for each new shape, so the examples vary
# the layer, the masks and the numbers rather than the shapes.
CASE_SHAPES = [(1, 1, 1, 1), (2, 3, 5, 3), (3, 2, 4, 2)]


@st.composite
def attention_cases(draw):
    """(layer name, (B, Tq, Tk, depth), value mask, seed for the numbers)."""
    name = draw(st.sampled_from(NAMES))
    batch, tq, tk, depth = draw(st.sampled_from(CASE_SHAPES))
    value_mask = draw(
        st.lists(
            st.lists(st.booleans(), min_size=tk, max_size=tk),
            min_size=batch,
            max_size=batch,
        )
    )
    seed = draw(st.integers(0, 2**16))
    return name, (batch, tq, tk, depth), np.array(value_mask, bool), seed


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@property_settings
@given(case=attention_cases(), single_step=st.booleans())
def test_weights_are_a_distribution_over_unmasked_keys(case, single_step):
    name, (batch, tq, tk, depth), value_mask, seed = case
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, tq, depth)).astype("float32") * 3
    value = rng.normal(size=(batch, tk, depth)).astype("float32") * 3
    if single_step:
        query = query[:, 0]
    _, weights = call(make_layer(name), query, value, value_mask=value_mask)
    if single_step:
        weights = weights[:, None]
    assert np.all(weights >= 0.0)
    sums = weights.sum(-1)
    has_key = value_mask.any(-1)
    np.testing.assert_allclose(sums[has_key], 1.0, atol=1e-5)
    np.testing.assert_array_equal(sums[~has_key], 0.0)
    masked = np.broadcast_to(~value_mask[:, None], weights.shape)
    assert np.all(weights[masked] == 0)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@property_settings
@given(case=attention_cases())
def test_permuting_keys_permutes_weights_and_keeps_context(case):
    name, (batch, tq, tk, depth), value_mask, seed = case
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, tq, depth)).astype("float32")
    key = rng.normal(size=(batch, tk, depth)).astype("float32")
    value = rng.normal(size=(batch, tk, 3)).astype("float32")
    permutation = rng.permutation(tk)
    layer = make_layer(name)
    context, weights = call(layer, query, value, key=key, value_mask=value_mask)
    permuted_context, permuted_weights = call(
        layer,
        query,
        value[:, permutation],
        key=key[:, permutation],
        value_mask=value_mask[:, permutation],
    )
    np.testing.assert_allclose(
        permuted_weights, weights[..., permutation], atol=1e-6
    )
    np.testing.assert_allclose(permuted_context, context, atol=1e-5)


# ---- dropout -----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_dropout_only_in_training_and_weights_stay_undropped(name, rng):
    query, key, _, value_mask, _ = random_inputs(rng, batch=4, tk=6)
    # Identity values: the context *is* the (dropped) mixing weights.
    value = np.broadcast_to(np.eye(6, dtype="float32"), (4, 6, 6)).copy()
    layer = make_layer(name, dropout=0.5, seed=7)
    kwargs = {"key": key, "value_mask": value_mask}
    context, weights = call(layer, query, value, **kwargs)
    np.testing.assert_allclose(context, weights, atol=1e-7)
    for training in (None, False):
        again = call(layer, query, value, training=training, **kwargs)
        np.testing.assert_array_equal(again[0], context)

    dropped_context, train_weights = call(
        layer, query, value, training=True, **kwargs
    )
    # The returned weights are the distribution, never the dropped mix.
    np.testing.assert_allclose(train_weights, weights, atol=1e-7)
    positive = weights > 0
    kept = dropped_context != 0
    assert np.any(positive & kept) and np.any(positive & ~kept)
    # Kept weights are rescaled by 1 / (1 - rate), dropped ones are 0.
    np.testing.assert_allclose(
        dropped_context[kept], weights[kept] / 0.5, rtol=1e-6
    )
    assert np.all(dropped_context[~positive] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_dropout_is_reproducible_with_a_seed(name, rng):
    query, key, value, _, _ = random_inputs(rng, batch=4, tk=6)
    layers = [make_layer(name, dropout=0.4, seed=11) for _ in range(2)]
    other = make_layer(name, dropout=0.4, seed=12)
    for layer in (*layers, other):
        layer(query, value, key=key)  # build; inference does not draw
    for layer in (layers[1], other):
        for target, source in zip(
            layer.trainable_variables,
            layers[0].trainable_variables,
            strict=True,
        ):
            target.assign(source)
    first, second, third = (
        call(layer, query, value, key=key, training=True)[0]
        for layer in (*layers, other)
    )
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, third)
    # The seed generator advances: a second training call drops others.
    assert not np.allclose(
        call(layers[0], query, value, key=key, training=True)[0], first
    )


@pytest.mark.parametrize("name", NAMES)
def test_dropout_drawn_ahead_equals_dropout_drawn_by_attend(name, rng):
    query, key, _, value_mask, _ = random_inputs(rng, batch=4, tk=6)
    value = np.broadcast_to(np.eye(6, dtype="float32"), (4, 6, 6)).copy()
    inside, ahead = (make_layer(name, dropout=0.5, seed=7) for _ in range(2))
    for layer in (inside, ahead):
        layer(query, value, key=key)  # build; inference does not draw
    ahead.set_weights(inside.get_weights())
    projected = inside.project_keys(key)
    expected = inside.attend(
        query, value, projected, value_mask=value_mask, training=True
    )
    mask = ahead.dropout_mask((4, 4, 6), training=True)
    assert set(np.unique(to_numpy(mask))) == {0.0, 2.0}
    got = ahead.attend(
        query, value, projected, value_mask=value_mask, dropout_mask=mask
    )
    np.testing.assert_allclose(to_numpy(got[0]), to_numpy(expected[0]), 1e-6)
    np.testing.assert_array_equal(to_numpy(got[1]), to_numpy(expected[1]))
    # One decoder step takes a `(batch, Tk)` mask.
    step = ahead.attend(
        query[:, 1],
        value,
        projected,
        value_mask=value_mask,
        dropout_mask=mask[:, 1],
    )
    np.testing.assert_allclose(to_numpy(step[0]), to_numpy(got[0])[:, 1], 1e-6)
    # Nothing to draw outside training or without dropout.
    assert ahead.dropout_mask((4, 4, 6), training=False) is None
    assert make_layer(name).dropout_mask((4, 4, 6), training=True) is None


# ---- mixed precision ---------------------------------------------------


def _large_score_inputs(rng, name):
    """Integer inputs (exact in float16 and bfloat16) with scores ~1e4.

    The weights of the first query of sample 0 hinge on a score difference
    that half precision would erase:

    - dot scores: its keys score 10000, 10001 and -10000, a difference of 1
      that float16 arithmetic (spacing 8 near 1e4) would lose, turning the
      weights (0.27, 0.73, 0) into (0.5, 0.5, 0);
    - Bahdanau (weights set by `_set_large_score_weights`): a zero query and
      keys projected onto unit 0 and unit 1 score `v[0] tanh(2)` and
      `v[1] tanh(2)`, with `v[0] - v[1] = 0.25`, which a `v` rounded to
      float16 (spacing 2 near 2500) or bfloat16 (spacing 16) would lose:
      weights (0.56, 0.44, 0) instead of (0.5, 0.5, 0).
    """
    high = 4 if name == "bahdanau" else 100
    query = rng.integers(-high, high + 1, size=(3, 4, 4)).astype("float32")
    key = rng.integers(-high, high + 1, size=(3, 3, 4)).astype("float32")
    if name == "bahdanau":
        query[0, 0] = 0
        key[0] = [[2, 0, 0, 0], [0, 2, 0, 0], [-4, -4, -4, -4]]
    else:
        query[0, 0] = [100, 1, 0, 0]
        key[0] = [[100, 0, 0, 0], [100, 1, 0, 0], [-100, 0, 0, 0]]
    value = rng.integers(-3, 4, size=(3, 3, 2)).astype("float32")
    value_mask = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 1]], bool)
    return query, key, value, value_mask


def _set_large_score_weights(layer, rng):
    if isinstance(layer, BahdanauAttention):
        # Projections exact in half precision (W_q entries n / 4, W_k copies
        # the key into units 0-3), then a large score vector whose entries
        # half precision cannot represent: |score| up to ~1e4.
        units = layer.units
        layer.query_dense.kernel.assign(
            rng.integers(-1, 2, size=(4, units)).astype("float32") / 4
        )
        layer.key_dense.kernel.assign(np.eye(4, units, dtype="float32"))
        v = np.full((units,), 2500.0, "float32")
        v[0] = 2500.25
        v[4:] = [2500.75, 2499.5]
        layer.v.assign(v)
    elif getattr(layer, "key_dense", None) is not None:
        layer.key_dense.kernel.assign(np.eye(4, dtype="float32"))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_large_scores(name, policy, rng):
    query, key, value, value_mask = _large_score_inputs(rng, name)
    keras.config.set_dtype_policy(policy)
    layer = make_layer(name)
    reference = make_layer(name, dtype="float32")
    for each in (layer, reference):
        each(query, value, key=key)
    _set_large_score_weights(layer, np.random.default_rng(0))
    for target, source in zip(reference.weights, layer.weights, strict=True):
        target.assign(source)

    scores = ref.layer_scores(reference, query, key)
    assert np.abs(scores).max() > 5e3  # the premise of the test

    context, weights = layer(
        query,
        value,
        key=key,
        value_mask=value_mask,
        return_attention_scores=True,
    )
    compute_dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(context.dtype) == compute_dtype
    context, weights = to_numpy(context), to_numpy(weights)
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
    ref_context, ref_weights = call(
        reference, query, value, key=key, value_mask=value_mask
    )
    tol = 1e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(weights, ref_weights, atol=tol)
    np.testing.assert_allclose(context, ref_context, atol=tol * 10)
    np.testing.assert_array_equal(weights[1], 0.0)
    expected = ref.layer_attention(
        reference, query, value, key=key, value_mask=value_mask
    )[1]
    np.testing.assert_allclose(weights, expected, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_gradients_match_float32(name, rng):
    # bfloat16 shares the code path; its forward pass is tested above.
    policy = "mixed_float16"
    query, key, value, value_mask, query_mask = random_inputs(rng)
    # Multiples of 1/8 (inputs) and 1/16 (weights): exact in half precision.
    query, key, value = (np.round(x * 8) / 8 for x in (query, key, value))
    keras.config.set_dtype_policy(policy)
    layer = make_layer(name)
    reference = make_layer(name, dtype="float32")
    for each in (layer, reference):
        each(query, value, key=key)
    perturb_scale(layer)
    for target, source in zip(reference.weights, layer.weights, strict=True):
        value_16 = np.round(to_numpy(source) * 16) / 16
        source.assign(value_16)
        target.assign(value_16)
    c_coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 3)), "float32")
    w_coef = ops.convert_to_tensor(rng.normal(size=(3, 4, 5)), "float32")

    def loss_fn(outputs):
        context, weights = (ops.cast(x, "float32") for x in outputs)
        return ops.sum(context * c_coef) + ops.sum(weights * w_coef)

    kwargs = {
        "value_mask": value_mask,
        "query_mask": query_mask,
        "return_attention_scores": True,
    }
    mixed = layer_gradients(layer, [query, value, key], loss_fn, **kwargs)
    full = layer_gradients(reference, [query, value, key], loss_fn, **kwargs)
    tol = 5e-2 if policy == "mixed_bfloat16" else 1e-2
    assert mixed[0] == pytest.approx(full[0], rel=tol, abs=tol)
    for got, expected in zip(
        [*mixed[1], *mixed[2]], [*full[1], *full[2]], strict=True
    ):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


# ---- errors ------------------------------------------------------------

SHAPE_ERRORS = [
    pytest.param(
        (2, 3, 4, 4),
        (2, 5, 4),
        None,
        {},
        r"`query` must have rank 3 `\(batch, Tq, dim\)` or rank 2 .*"
        r"Received query shape \(2, 3, 4, 4\)",
        id="query_rank_4",
    ),
    pytest.param(
        (4,),
        (2, 5, 4),
        None,
        {},
        r"`query` must have rank 3 .*Received query shape \(4\)",
        id="query_rank_1",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5),
        None,
        {},
        r"`value` must have rank 3 .*Received value shape \(2, 5\)",
        id="value_rank_2",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4, 1),
        None,
        {},
        r"`value` must have rank 3 .*Received value shape \(2, 5, 4, 1\)",
        id="value_rank_4",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        (2, 4),
        {},
        r"`key` must have rank 3 .*Received key shape \(2, 4\)",
        id="key_rank_2",
    ),
    pytest.param(
        (2, 3, 4),
        (3, 5, 4),
        None,
        {},
        r"same batch size\. Received batch sizes: query 2, value 3",
        id="batch_mismatch",
    ),
    pytest.param(
        (2, 4),
        (2, 5, 4),
        (3, 5, 4),
        {},
        r"same batch size\. Received batch sizes: query 2, value 2, key 3",
        id="key_batch_mismatch",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        (2, 6, 4),
        {},
        r"`key` and `value` must have the same length Tk .*Received key "
        r"shape \(2, 6, 4\) and value shape \(2, 5, 4\)",
        id="key_value_length_mismatch",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        None,
        {"value_mask": (2, 4)},
        r"`value_mask` must have shape \(2, 5\) .*Received value_mask shape "
        r"\(2, 4\)",
        id="value_mask_length",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        None,
        {"value_mask": (2, 3, 5)},
        r"`value_mask` must have shape \(2, 5\)",
        id="value_mask_rank",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        (2, 5, 4),
        {"key_mask": (2, 4)},
        r"`key_mask` must have shape \(2, 5\) to match key shape "
        r"\(2, 5, 4\)\. Received key_mask shape \(2, 4\)\. Pass one boolean "
        r"per key, `True` where it takes part\.",
        id="key_mask_length",
    ),
    pytest.param(
        (2, 3, 4),
        (2, 5, 4),
        None,
        {"query_mask": (2, 5)},
        r"`query_mask` must have shape \(2, 3\) .*Received query_mask shape "
        r"\(2, 5\)",
        id="query_mask_length",
    ),
    pytest.param(
        (2, 4),
        (2, 5, 4),
        None,
        {"query_mask": (2, 3)},
        r"`query_mask` must have shape \(2\) .*Received query_mask shape "
        r"\(2, 3\)",
        id="single_step_query_mask",
    ),
    pytest.param(
        (2, 4),
        (2, 5, 4),
        None,
        {"use_causal_mask": True},
        r"`use_causal_mask=True` needs a rank-3 query .*Received query shape "
        r"\(2, 4\)",
        id="causal_single_step",
    ),
]


MASK_ARGS = ("query_mask", "value_mask", "key_mask")


def _error_kwargs(kwargs, make_mask):
    return {
        arg: make_mask(value) if arg in MASK_ARGS else value
        for arg, value in kwargs.items()
    }


@pytest.mark.parametrize(
    "query_shape, value_shape, key_shape, kwargs, message", SHAPE_ERRORS
)
@pytest.mark.parametrize("name", NAMES)
def test_shape_errors_eager(
    name, query_shape, value_shape, key_shape, kwargs, message
):
    layer = make_layer(name, name="att")
    key = None if key_shape is None else np.zeros(key_shape, "float32")
    kwargs = _error_kwargs(kwargs, lambda shape: np.ones(shape, bool))
    with pytest.raises(ValueError, match=message) as error:
        layer(
            np.zeros(query_shape, "float32"),
            np.zeros(value_shape, "float32"),
            key=key,
            **kwargs,
        )
    assert f"{CLASS_NAMES[name]} layer 'att'" in str(error.value)


@pytest.mark.parametrize(
    "query_shape, value_shape, key_shape, kwargs, message", SHAPE_ERRORS
)
@pytest.mark.parametrize("name", NAMES)
def test_shape_errors_functional(
    name, query_shape, value_shape, key_shape, kwargs, message
):
    layer = make_layer(name, name="att")
    key = None if key_shape is None else keras.Input(batch_shape=key_shape)
    kwargs = _error_kwargs(
        kwargs, lambda shape: keras.Input(batch_shape=shape, dtype="bool")
    )
    with pytest.raises(ValueError, match=message) as error:
        layer(
            keras.Input(batch_shape=query_shape),
            keras.Input(batch_shape=value_shape),
            key=key,
            **kwargs,
        )
    assert f"{CLASS_NAMES[name]} layer 'att'" in str(error.value)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize("name", NAMES)
def test_dropout_out_of_range_raises(name, dropout):
    with pytest.raises(
        ValueError,
        match=rf"{CLASS_NAMES[name]}: `dropout` must be in \[0, 1\)\. "
        rf"Received: dropout={dropout}",
    ):
        make_layer(name, dropout=dropout)


# ---- shapes ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_compute_output_shape_and_symbolic_shapes(name):
    layer = make_layer(name)
    assert layer.compute_output_shape((2, 5, 4), (2, 7, 3)) == (2, 5, 3)
    assert layer.compute_output_shape((2, 4), (2, 7, 3)) == (2, 3)
    assert layer.compute_output_shape((None, None, 4), (None, 7, 3)) == (
        None,
        None,
        3,
    )

    query = keras.Input((None, 4))
    step = keras.Input((4,))
    value = keras.Input((7, 3))
    key = keras.Input((7, 4))
    context = layer(query, value, key=key)
    assert tuple(context.shape) == (None, None, 3)
    context, weights = layer(
        query, value, key=key, return_attention_scores=True
    )
    assert tuple(context.shape) == (None, None, 3)
    assert tuple(weights.shape) == (None, None, 7)
    context, weights = layer(step, value, key=key, return_attention_scores=True)
    assert tuple(context.shape) == (None, 3)
    assert tuple(weights.shape) == (None, 7)

    # The eager shapes agree.
    context, weights = layer(
        np.ones((2, 5, 4), "float32"),
        np.ones((2, 7, 3), "float32"),
        key=np.ones((2, 7, 4), "float32"),
        return_attention_scores=True,
    )
    assert tuple(context.shape) == (2, 5, 3)
    assert tuple(weights.shape) == (2, 5, 7)


@pytest.mark.parametrize("dtype", ["int32", "bool"])
@pytest.mark.parametrize("name", NAMES)
def test_integer_and_boolean_inputs_compute_in_floating_point(name, dtype, rng):
    _, _, _, value_mask, query_mask = random_inputs(rng)
    low, high = (0, 2) if dtype == "bool" else (-3, 4)
    query, key, value = (
        rng.integers(low, high, size=shape).astype(dtype)
        for shape in ((3, 4, 4), (3, 5, 4), (3, 5, 3))
    )
    floats = [x.astype("float32") for x in (query, key, value)]
    layer = make_layer(name)
    layer(floats[0], floats[2], key=floats[1])
    perturb_scale(layer)
    masks = {"value_mask": value_mask, "query_mask": query_mask}
    context, weights = layer(
        query, value, key=key, return_attention_scores=True, **masks
    )
    assert keras.backend.standardize_dtype(context.dtype) == "float32"
    expected = call(layer, floats[0], floats[2], key=floats[1], **masks)
    np.testing.assert_array_equal(to_numpy(context), expected[0])
    np.testing.assert_array_equal(to_numpy(weights), expected[1])
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, key=key, **masks
    )
    np.testing.assert_allclose(expected[1], ref_weights, atol=1e-5)
    np.testing.assert_allclose(expected[0], ref_context, atol=1e-5)
    assert np.abs(ref_context).max() > 0.1  # not the all-zero answer
    # `attend` (one decoder step here) casts too.
    step_context, _ = layer.attend(
        query[:, 0],
        value,
        layer.project_keys(floats[1]),
        query_mask=query_mask[:, 0],
        value_mask=value_mask,
    )
    np.testing.assert_allclose(
        to_numpy(step_context), expected[0][:, 0], atol=1e-6
    )


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize(
    "batch, tk",
    [pytest.param(0, 5, id="no_batch"), pytest.param(3, 0, id="no_keys")],
)
@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_or_no_keys_give_empty_or_zero_outputs(
    name, batch, tk, rank, rng
):
    query = rng.normal(size=(batch, 4, 4)).astype("float32")
    key = rng.normal(size=(batch, tk, 4)).astype("float32")
    value = rng.normal(size=(batch, tk, 3)).astype("float32")
    if rank == 2:
        query = query[:, 0]
    queries = query.shape[:-1]
    layer = make_layer(name)
    for masks in (
        {},
        {
            "value_mask": np.ones((batch, tk), bool),
            "key_mask": np.ones((batch, tk), bool),
            "query_mask": np.ones(queries, bool),
        },
    ):
        context, weights = call(layer, query, value, key=key, **masks)
        # With no key, a query attends to nothing: a zero context.
        assert context.shape == (*queries, 3)
        assert weights.shape == (*queries, tk)
        np.testing.assert_array_equal(context, np.zeros((*queries, 3)))
        context = layer(query, value, key=key, **masks)
        assert tuple(context.shape) == (*queries, 3)


# ---- serialisation, saving, compilation --------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_get_config_from_config_round_trip(name, rng):
    layer = make_layer(name, dropout=0.25, seed=3, name="att")
    config = layer.get_config()
    assert config["dropout"] == 0.25 and config["seed"] == 3
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config

    query, key, value, value_mask, _ = random_inputs(rng)
    for each in (layer, clone):
        each(query, value, key=key)
    perturb_scale(layer)
    clone.set_weights(layer.get_weights())
    expected = call(layer, query, value, key=key, value_mask=value_mask)
    got = call(clone, query, value, key=key, value_mask=value_mask)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("name", NAMES)
def test_saved_keras_file_loads_without_custom_objects(name, tmp_path):
    layer = make_layer(name, dropout=0.1, seed=5, name="attention")
    model = _token_model(layer)
    perturb_scale(layer)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    expected = to_numpy(model.predict(inputs, verbose=0))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("attention")) is type(layer)
    assert loaded.get_layer("attention").get_config() == layer.get_config()
    got = to_numpy(loaded.predict(inputs, verbose=0))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_jit_compiled_predict_matches_eager(name):
    if keras.backend.backend() == "torch":
        pytest.skip("torch.compile takes ~1 min on CPU; see the slow test")
    model = _token_model(make_layer(name))
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    model.compile(jit_compile=False)
    eager = to_numpy(model.predict(inputs, verbose=0))
    model.compile(jit_compile=True)
    compiled = to_numpy(model.predict(inputs, verbose=0))
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_jit_compiled_predict_matches_eager_all_layers():
    """All three layers in one model, so PyTorch compiles once."""
    query_tokens = keras.Input((None,), dtype="int32")
    value_tokens = keras.Input((None,), dtype="int32")
    query = keras.layers.Embedding(10, 4, mask_zero=True)(query_tokens)
    value = keras.layers.Embedding(10, 4, mask_zero=True)(value_tokens)
    outputs = []
    for name in NAMES:
        outputs.extend(
            make_layer(name)(query, value, return_attention_scores=True)
        )
    model = keras.Model([query_tokens, value_tokens], outputs)
    inputs = [QUERY_TOKENS, VALUE_TOKENS]
    model.compile(jit_compile=False)
    eager = to_numpy(model.predict(inputs, verbose=0))
    model.compile(jit_compile=True)
    compiled = to_numpy(model.predict(inputs, verbose=0))
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# ---- training ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fit_decreases_loss_with_padded_samples(name, rng):
    """A tiny model trains; fully padded samples make no NaN."""
    query_tokens = keras.Input((None,), dtype="int32")
    value_tokens = keras.Input((None,), dtype="int32")
    query = keras.layers.Embedding(12, 4, mask_zero=True)(query_tokens)
    query = keras.layers.Dense(4, name="query_projection")(query)
    value = keras.layers.Embedding(12, 4, mask_zero=True)(value_tokens)
    # Dropout in one of them: a compiled train step with random numbers
    # (which costs JAX a few seconds more to compile).
    dropout = 0.1 if name == "scaled" else 0.0
    attention = make_layer(name, dropout=dropout, seed=3, name="attention")
    context = attention(query, value)
    logits = keras.layers.Dense(12)(context)
    model = keras.Model([query_tokens, value_tokens], logits)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    query_x = rng.integers(1, 12, size=(32, 5)).astype("int32")
    value_x = rng.integers(1, 12, size=(32, 6)).astype("int32")
    query_x[:, 3:] = 0
    value_x[:, 4:] = 0
    query_x[0] = 0  # a sample with no queries
    value_x[1] = 0  # a sample with no keys
    # Target: the first key's token, which attention has to fetch.
    target = np.repeat(value_x[:, :1], 5, axis=1)
    attention_before = [to_numpy(w) for w in attention.trainable_weights]
    projection_before = np.array(
        model.get_layer("query_projection").get_weights()[0]
    )
    history = model.fit(
        [query_x, value_x], target, batch_size=16, epochs=4, verbose=0
    )
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    for weight in model.get_weights():
        assert np.all(np.isfinite(weight))
    # Gradients flowed through the attention into what feeds its queries.
    projection_after = model.get_layer("query_projection").get_weights()[0]
    assert not np.allclose(projection_after, projection_before)
    for before, after in zip(
        attention_before, attention.trainable_weights, strict=True
    ):
        assert not np.allclose(before, to_numpy(after))
