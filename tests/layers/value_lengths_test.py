"""`value_lengths`: the number of valid keys per row, instead of a mask.

TensorFlow Addons' `memory_sequence_length`. Every check is an equivalence:
the lengths give exactly what the mask `arange(Tk) < value_lengths[:, None]`
gives as `value_mask`.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
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
# Every key, none (that row attends to nothing), some, and more than Tk.
LENGTHS = np.array([5, 0, 2, 7], "int32")


def make_layer(kind, **kwargs):
    return LAYERS[kind](**kwargs)


def lengths_to_mask(lengths, tk):
    return np.arange(tk)[None, :] < np.asarray(lengths)[:, None]


def random_inputs(rng, batch=4, tq=4, tk=5, dv=3):
    query = rng.normal(size=(batch, tq, 4)).astype("float32")
    key = rng.normal(size=(batch, tk, 4)).astype("float32")
    value = rng.normal(size=(batch, tk, dv)).astype("float32")
    query_mask = rng.random((batch, tq)) < 0.8
    query_mask[:, 0] = True
    return query, key, value, query_mask


def built_layer(name, query, value, key, **kwargs):
    layer = make_layer(name, **kwargs)
    layer(query, value, key=key)
    if getattr(layer, "use_scale", False):
        layer.scale.assign(0.7)
    return layer


def call(layer, query, value, **kwargs):
    context, weights = layer(
        query, value, return_attention_scores=True, **kwargs
    )
    return to_numpy(context), to_numpy(weights)


def assert_same(got, expected):
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn", ["softmax", "sparsemax"])
@pytest.mark.parametrize("mode", ["rank3", "rank2", "causal"])
@pytest.mark.parametrize("name", NAMES)
def test_lengths_equal_the_mask_they_stand_for(name, mode, fn, rng):
    query, key, value, query_mask = random_inputs(rng)
    if mode == "rank2":
        query, query_mask = query[:, 1], query_mask[:, 1]
    layer = built_layer(name, query, value, key, probability_fn=fn)
    kwargs = {
        "key": key,
        "query_mask": query_mask,
        "use_causal_mask": mode == "causal",
    }
    mask = lengths_to_mask(LENGTHS, 5)
    expected = call(layer, query, value, value_mask=mask, **kwargs)
    for lengths in (LENGTHS, LENGTHS.astype("int64"), list(LENGTHS)):
        got = call(layer, query, value, value_lengths=lengths, **kwargs)
        assert_same(got, expected)
    context, weights = got
    # Length 0: nothing to attend to; length >= Tk: every key.
    np.testing.assert_array_equal(weights[1], 0.0)
    np.testing.assert_array_equal(context[1], 0.0)
    assert np.all(weights[2, ..., 2:] == 0.0)
    unmasked = call(layer, query, value, **kwargs)
    np.testing.assert_array_equal(weights[[0, 3]], unmasked[1][[0, 3]])
    np.testing.assert_array_equal(context[[0, 3]], unmasked[0][[0, 3]])
    ref_context, ref_weights = ref.layer_attention(
        layer, query, value, value_mask=mask, probability_fn=fn, **kwargs
    )
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # `attend` takes them too (a decoder step in the rank-2 mode).
    attended = layer.attend(
        query,
        value,
        layer.project_keys(key),
        value_lengths=LENGTHS,
        query_mask=query_mask,
        use_causal_mask=mode == "causal",
    )
    assert_same(to_numpy(attended), expected)


@pytest.mark.parametrize("name", NAMES)
def test_lengths_combine_with_value_and_key_masks(name, rng):
    query, key, value, query_mask = random_inputs(rng)
    value_mask = rng.random((4, 5)) < 0.7
    key_mask = rng.random((4, 5)) < 0.8
    value_mask[2, :2] = key_mask[2, :2] = True
    layer = built_layer(name, query, value, key)
    both = value_mask & key_mask & lengths_to_mask(LENGTHS, 5)
    assert not np.array_equal(both, value_mask & key_mask)
    expected = call(
        layer, query, value, key=key, value_mask=both, query_mask=query_mask
    )
    got = call(
        layer,
        query,
        value,
        key=key,
        value_mask=value_mask,
        key_mask=key_mask,
        value_lengths=LENGTHS,
        query_mask=query_mask,
    )
    assert_same(got, expected)


@pytest.mark.parametrize("name", NAMES)
def test_keys_past_the_length_do_not_reach_output_or_gradients(name, rng):
    query, key, value, query_mask = random_inputs(rng)
    layer = built_layer(name, query, value, key)
    past = ~lengths_to_mask(LENGTHS, 5)
    kwargs = {"value_lengths": LENGTHS, "return_attention_scores": True}
    c_coef = ops.convert_to_tensor(rng.normal(size=(4, 4, 3)), "float32")
    w_coef = ops.convert_to_tensor(rng.normal(size=(4, 4, 5)), "float32")

    def loss_fn(outputs):
        context, weights = outputs
        return ops.sum(context * c_coef) + ops.sum(weights * w_coef)

    results = []
    for fill in (7.0, np.nan, np.inf):
        bad_key, bad_value = key.copy(), value.copy()
        bad_key[past], bad_value[past] = fill, fill
        outputs = call(
            layer, query, bad_value, key=bad_key, value_lengths=LENGTHS
        )
        if not results:
            expected = outputs
        assert_same(outputs, expected)
        results.append(
            layer_gradients(
                layer, [query, bad_value, bad_key], loss_fn, **kwargs
            )
        )
    loss, grads, weight_grads = results[0]
    np.testing.assert_array_equal(grads[1][past], 0.0)
    np.testing.assert_array_equal(grads[2][past], 0.0)
    np.testing.assert_array_equal(grads[0][1], 0.0)  # length 0
    for other in results[1:]:
        assert other[0] == loss
        for a, b in zip(
            [*other[1], *other[2]], [*grads, *weight_grads], strict=True
        ):
            np.testing.assert_array_equal(a, b)


def _lengths_model(layer):
    query = keras.Input((None, 4), name="query")
    value = keras.Input((None, 4), name="value")
    lengths = keras.Input((), dtype="int32", name="lengths")
    context, weights = layer(
        query, value, value_lengths=lengths, return_attention_scores=True
    )
    return keras.Model([query, value, lengths], [context, weights])


@pytest.mark.parametrize("name", NAMES)
def test_symbolic_lengths_in_the_functional_api(name, rng, tmp_path):
    query, _, value, _ = random_inputs(rng, dv=4)
    layer = make_layer(name, name="attention")
    model = _lengths_model(layer)
    context, weights = model.outputs
    assert tuple(context.shape) == (None, None, 4)
    assert tuple(weights.shape) == (None, None, None)
    got = to_numpy(model.predict([query, value, LENGTHS], verbose=0))
    expected = call(
        layer, query, value, key=value, value_mask=lengths_to_mask(LENGTHS, 5)
    )
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(got[1][1], 0.0)
    # Saved and loaded, and compiled where that is quick.
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_same(
        to_numpy(loaded.predict([query, value, LENGTHS], verbose=0)), got
    )
    if keras.backend.backend() != "torch":
        model.compile(jit_compile=True)
        compiled = to_numpy(model.predict([query, value, LENGTHS], verbose=0))
        for a, b in zip(compiled, got, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "lengths_shape, dtype, message",
    [
        pytest.param(
            (2, 1),
            "int32",
            r"`value_lengths` must have shape \(2\), one length per batch "
            r"row \(value shape \(2, 5, 4\)\)\. Received value_lengths shape "
            r"\(2, 1\)\. Pass the number of valid keys of each row as a "
            r"vector \(squeeze a `\(batch, 1\)` tensor\), or a boolean "
            r"`\(batch, Tk\)` mask as `value_mask` instead\.",
            id="rank2",
        ),
        pytest.param(
            (3,),
            "int32",
            r"`value_lengths` must have shape \(2\).*Received value_lengths "
            r"shape \(3\)",
            id="batch",
        ),
        pytest.param(
            (),
            "int32",
            r"`value_lengths` must have shape \(2\).*Received value_lengths "
            r"shape \(\)",
            id="scalar",
        ),
        pytest.param(
            (2,),
            "float32",
            r"`value_lengths` must be integers, the number of valid keys of "
            r"each batch row\. Received dtype float32\. Cast it to int32",
            id="float",
        ),
        pytest.param(
            (2,),
            "bool",
            r"`value_lengths` must be integers.*Received dtype bool",
            id="bool",
        ),
    ],
)
@pytest.mark.parametrize("functional", [False, True], ids=["eager", "symbolic"])
@pytest.mark.parametrize("name", NAMES)
def test_bad_lengths_are_refused(
    name, functional, lengths_shape, dtype, message
):
    layer = make_layer(name, name="att")
    if functional:
        query = keras.Input(batch_shape=(2, 3, 4))
        value = keras.Input(batch_shape=(2, 5, 4))
        lengths = keras.Input(batch_shape=lengths_shape, dtype=dtype)
    else:
        query = np.zeros((2, 3, 4), "float32")
        value = np.zeros((2, 5, 4), "float32")
        lengths = np.ones(lengths_shape, dtype)
    with pytest.raises(ValueError, match=message) as error:
        layer(query, value, value_lengths=lengths)
    assert f"{CLASS_NAMES[name]} layer 'att'" in str(error.value)
