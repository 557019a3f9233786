"""The hand-written additive score and its custom, chunked gradient."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import additive_score
from keras_nmt.layers.additive_score import additive_scores
from tests.layers.backend_utils import function_gradients
from tests.layers.backend_utils import to_numpy


def numpy_scores(query, keys, v):
    """`s[b, i, j] = sum_u v[u] tanh(q[b, i, u] + k[b, j, u])`, in float64."""
    batch, tq, _ = query.shape
    tk = keys.shape[1]
    scores = np.zeros((batch, tq, tk))
    for b in range(batch):
        for i in range(tq):
            for j in range(tk):
                scores[b, i, j] = np.dot(
                    np.asarray(v, np.float64),
                    np.tanh(np.float64(query[b, i]) + keys[b, j]),
                )
    return scores


def plain_scores(query, keys, v):
    """The obvious expression, differentiated by the backend's autodiff."""
    hidden = ops.tanh(ops.expand_dims(query, 2) + ops.expand_dims(keys, 1))
    return ops.matmul(hidden, v)


@pytest.fixture
def chunk_calls(monkeypatch):
    """Counts the calls into the chunked path of `additive_scores`."""
    calls = []
    to_chunks = additive_score._to_chunks

    def spy(x, size):
        calls.append(size)
        return to_chunks(x, size)

    monkeypatch.setattr(additive_score, "_to_chunks", spy)
    return calls


def random_case(rng, batch=2, tq=5, tk=3, units=4):
    query = rng.normal(size=(batch, tq, units)).astype("float32")
    keys = rng.normal(size=(batch, tk, units)).astype("float32")
    v = rng.normal(size=(units,)).astype("float32")
    coef = rng.normal(size=(batch, tq, tk)).astype("float32")
    return query, keys, v, coef


def scores_and_grads(query, keys, v, coef, fn=additive_scores):
    """Scores, and the gradients of `sum(coef * scores)`."""
    coef_tensor = ops.convert_to_tensor(coef)
    scores = to_numpy(fn(*(ops.convert_to_tensor(x) for x in (query, keys, v))))
    _, grads = function_gradients(
        lambda q, k, v: ops.sum(coef_tensor * fn(q, k, v)), [query, keys, v]
    )
    return scores, grads


def test_forward_matches_formula(rng):
    query, keys, v, _ = random_case(rng)
    assert additive_score._chunk_size(2, 5, 3, 4) is None  # unchunked
    scores = additive_scores(
        ops.convert_to_tensor(query),
        ops.convert_to_tensor(keys),
        ops.convert_to_tensor(v),
    )
    assert tuple(scores.shape) == (2, 5, 3)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(scores), numpy_scores(query, keys, v), atol=1e-5
    )


def test_gradient_equals_autodiff_of_the_plain_expression(rng):
    query, keys, v, coef = random_case(rng)
    scores, grads = scores_and_grads(query, keys, v, coef)
    plain, plain_grads = scores_and_grads(query, keys, v, coef, plain_scores)
    np.testing.assert_allclose(scores, plain, atol=1e-6)
    for name, got, expected in zip(
        ("query", "keys", "v"), grads, plain_grads, strict=True
    ):
        np.testing.assert_allclose(
            got, expected, rtol=1e-5, atol=1e-5, err_msg=name
        )


@pytest.mark.parametrize("chunked", [False, True])
def test_gradient_matches_finite_differences(
    chunked, rng, monkeypatch, chunk_calls
):
    query, keys, v, coef = random_case(rng, tq=5)
    if chunked:
        # B * Tk * units = 24 elements per query: 2 queries per chunk.
        monkeypatch.setattr(additive_score, "_CHUNK_ELEMENTS", 48)
        assert additive_score._chunk_size(2, 5, 3, 4) == 2
    _, grads = scores_and_grads(query, keys, v, coef)
    arrays = [x.astype(np.float64) for x in (query, keys, v)]

    def loss():
        return np.sum(coef * numpy_scores(*arrays))

    eps = 1e-6
    for name, array, grad in zip(
        ("query", "keys", "v"), arrays, grads, strict=True
    ):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = loss()
            array[index] = original - eps
            minus = loss()
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(
            grad, numeric, rtol=1e-4, atol=1e-4, err_msg=name
        )
    # The queries (and the upstream gradient) went in chunks of 2.
    assert set(chunk_calls) == ({2} if chunked else set())


@pytest.mark.parametrize(
    "tq, elements, size",
    [
        pytest.param(7, 72, 3, id="tq7_chunk3_padded"),
        pytest.param(6, 72, 3, id="tq6_chunk3_exact"),
        pytest.param(5, 1, 1, id="tq5_chunk1"),
    ],
)
def test_chunked_equals_unchunked(
    tq, elements, size, rng, monkeypatch, chunk_calls
):
    query, keys, v, coef = random_case(rng, batch=2, tq=tq, tk=3, units=4)
    assert additive_score._chunk_size(2, tq, 3, 4) is None
    expected_scores, expected_grads = scores_and_grads(query, keys, v, coef)
    assert chunk_calls == []

    monkeypatch.setattr(additive_score, "_CHUNK_ELEMENTS", elements)
    assert additive_score._chunk_size(2, tq, 3, 4) == size
    scores, grads = scores_and_grads(query, keys, v, coef)
    assert set(chunk_calls) == {size}
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6, atol=1e-6)
    for name, got, expected in zip(
        ("query", "keys", "v"), grads, expected_grads, strict=True
    ):
        np.testing.assert_allclose(
            got, expected, rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_chunk_size():
    chunk_size = additive_score._chunk_size
    elements = additive_score._CHUNK_ELEMENTS
    assert elements == 2**20
    # 64 * 64 * 128 = 2**19 elements per query: 2 queries per chunk.
    assert chunk_size(64, 4096, 64, 128) == 2
    # An unknown batch counts as 64.
    assert chunk_size(None, 4096, 64, 128) == 2
    # More than a chunk's elements per query: one query at a time.
    assert chunk_size(64, 10, 512, 128) == 1
    # Everything fits in one chunk, or a length is unknown: no chunking.
    assert chunk_size(2, 10, 7, 16) is None
    assert chunk_size(1, 16, 64, 128) is None
    assert chunk_size(2, None, 7, 16) is None
    assert chunk_size(2, 10, None, 16) is None
    # No batch or no keys: nothing to chunk (and no division by zero).
    assert chunk_size(0, 4096, 64, 128) is None
    assert chunk_size(64, 4096, 0, 128) is None
    assert chunk_size(None, 4096, 0, 128) is None


@pytest.mark.parametrize(
    "batch, tk",
    [pytest.param(0, 3, id="no_batch"), pytest.param(2, 0, id="no_keys")],
)
def test_empty_batch_or_keys_give_empty_scores_and_gradients(batch, tk, rng):
    query, keys, v, coef = random_case(rng, batch=batch, tq=5, tk=tk)
    scores, (d_query, d_keys, d_v) = scores_and_grads(query, keys, v, coef)
    assert scores.shape == (batch, 5, tk)
    # No score depends on anything: all gradients are zero.
    assert d_query.shape == query.shape and d_keys.shape == keys.shape
    np.testing.assert_array_equal(d_query, 0.0)
    np.testing.assert_array_equal(d_v, np.zeros(4))


def _bahdanau_model():
    query = keras.Input((5, 3))
    value = keras.Input((6, 2))
    attention = BahdanauAttention(units=4, name="attention")
    context, weights = attention(query, value, return_attention_scores=True)
    output = keras.layers.Dense(1)(keras.layers.Flatten()(context))
    return keras.Model([query, value], [output, weights])


def test_chunked_layer_in_compiled_predict_and_fit(
    rng, monkeypatch, chunk_calls
):
    """Chunking inside compiled functions, with a known or unknown batch."""
    query = rng.normal(size=(8, 5, 3)).astype("float32")
    value = rng.normal(size=(8, 6, 2)).astype("float32")
    target = rng.normal(size=(8, 1)).astype("float32")
    models = [_bahdanau_model() for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    jit = keras.backend.backend() != "torch"  # torch.compile: minutes

    def run(model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=["mse", None],
            jit_compile=jit,
        )
        outputs = to_numpy(model.predict([query, value], verbose=0))
        history = model.fit(
            [query, value],
            target,
            batch_size=4,
            epochs=2,
            shuffle=False,
            verbose=0,
        )
        return outputs, history.history["loss"], model.get_weights()

    expected = run(models[0])
    assert chunk_calls == []
    # Chunks of one or two queries (Tq = 5) for a batch of 4 or 8 known
    # while tracing, and for an unknown batch (counted as 64).
    monkeypatch.setattr(additive_score, "_CHUNK_ELEMENTS", 96)
    for batch in (4, 8, None):
        assert additive_score._chunk_size(batch, 5, 6, 4) in (1, 2)
    got = run(models[1])
    assert chunk_calls and set(chunk_calls) <= {1, 2}
    for a, b in zip(got[0], expected[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5)
    for a, b in zip(got[2], expected[2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- the coverage term (See et al., 2017, eq. 11) ----------------------


def numpy_coverage_scores(query, keys, v, coverage, w):
    """`sum_u v[u] tanh(q[b, i, u] + k[b, j, u] + c[b, i, j] w[u])`."""
    query, keys, v, coverage, w = (
        np.asarray(x, np.float64) for x in (query, keys, v, coverage, w)
    )
    hidden = np.tanh(
        query[:, :, None, :]
        + keys[:, None, :, :]
        + coverage[..., None] * w[None, None, None, :]
    )
    return np.einsum("bqku,u->bqk", hidden, v)


def plain_coverage_scores(query, keys, v, coverage, w):
    """The obvious expression, differentiated by the backend's autodiff."""
    hidden = ops.tanh(
        ops.expand_dims(query, 2)
        + ops.expand_dims(keys, 1)
        + ops.expand_dims(coverage, -1) * w
    )
    return ops.matmul(hidden, v)


def coverage_case(rng, batch=2, tq=5, tk=3, units=4):
    query, keys, v, coef = random_case(rng, batch, tq, tk, units)
    coverage = rng.uniform(0.0, 2.0, size=(batch, tq, tk)).astype("float32")
    w = rng.normal(size=(units,)).astype("float32")
    return (query, keys, v, coverage, w), coef


def coverage_scores_and_grads(inputs, coef, fn=None):
    fn = fn or additive_score.additive_coverage_scores
    coef_tensor = ops.convert_to_tensor(coef)
    scores = to_numpy(fn(*(ops.convert_to_tensor(x) for x in inputs)))
    _, grads = function_gradients(
        lambda *xs: ops.sum(coef_tensor * fn(*xs)), list(inputs)
    )
    return scores, grads


def test_coverage_forward_matches_formula(rng):
    inputs, _ = coverage_case(rng)
    scores, _ = coverage_scores_and_grads(
        inputs, np.zeros((2, 5, 3), "float32")
    )
    np.testing.assert_allclose(
        scores, numpy_coverage_scores(*inputs), atol=1e-5
    )
    # A zero coverage gives the scores without it.
    query, keys, v, coverage, w = inputs
    zero, _ = coverage_scores_and_grads(
        (query, keys, v, np.zeros_like(coverage), w),
        np.zeros((2, 5, 3), "float32"),
    )
    np.testing.assert_allclose(zero, numpy_scores(query, keys, v), atol=1e-5)


@pytest.mark.parametrize("chunked", [False, True])
def test_coverage_gradient_equals_autodiff_of_the_plain_expression(
    chunked, rng, monkeypatch, chunk_calls
):
    inputs, coef = coverage_case(rng, tq=5)
    expected, expected_grads = coverage_scores_and_grads(
        inputs, coef, plain_coverage_scores
    )
    if chunked:
        monkeypatch.setattr(additive_score, "_CHUNK_ELEMENTS", 48)
    scores, grads = coverage_scores_and_grads(inputs, coef)
    # Queries and coverage (and the upstream gradient) went in chunks of 2.
    assert set(chunk_calls) == ({2} if chunked else set())
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    for name, got, want in zip(
        ("query", "keys", "v", "coverage", "w"),
        grads,
        expected_grads,
        strict=True,
    ):
        np.testing.assert_allclose(
            got, want, rtol=1e-5, atol=1e-5, err_msg=name
        )


def test_coverage_gradient_matches_finite_differences(rng):
    inputs, coef = coverage_case(rng, batch=2, tq=2, tk=3, units=3)
    _, grads = coverage_scores_and_grads(inputs, coef)
    arrays = [x.astype(np.float64) for x in inputs]

    def loss():
        return np.sum(coef * numpy_coverage_scores(*arrays))

    eps = 1e-6
    for name, array, grad in zip(
        ("query", "keys", "v", "coverage", "w"), arrays, grads, strict=True
    ):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = loss()
            array[index] = original - eps
            minus = loss()
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(
            grad, numeric, rtol=1e-4, atol=1e-4, err_msg=name
        )
