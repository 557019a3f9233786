"""The monotonic alignment recurrence of `keras_nmt.layers.monotonic`.

Checked against float64 NumPy written from the paper's formulas (Raffel et
al., 2017), in loops:

- the sum form, `alpha[j] = p[j] sum_{k <= j} prev[k] prod_{l=k}^{j-1}
  (1 - p[l])`;
- the recursive form, `q[j] = (1 - p[j-1]) q[j-1] + prev[j]`,
  `alpha[j] = p[j] q[j]`.
"""

import numpy as np
import pytest
from keras import ops

from keras_nmt.layers import monotonic
from tests.layers.backend_utils import function_gradients
from tests.layers.backend_utils import to_numpy

SOFT_MODES = ["parallel", "recursive"]


def sum_form(p, previous):
    """The paper's closed form, one row at a time, float64."""
    p = np.asarray(p, np.float64)
    previous = np.asarray(previous, np.float64)
    alpha = np.zeros_like(p)
    for row in np.ndindex(p.shape[:-1]):
        for j in range(p.shape[-1]):
            total = 0.0
            for k in range(j + 1):
                total += previous[row][k] * np.prod(1.0 - p[row][k:j])
            alpha[row][j] = p[row][j] * total
    return alpha


def recursive_form(p, previous):
    """The paper's recursion over the keys, float64."""
    p = np.asarray(p, np.float64)
    previous = np.asarray(previous, np.float64)
    alpha = np.zeros_like(p)
    for row in np.ndindex(p.shape[:-1]):
        q = 0.0
        for j in range(p.shape[-1]):
            decay = 1.0 if j == 0 else 1.0 - p[row][j - 1]
            q = decay * q + previous[row][j]
            alpha[row][j] = p[row][j] * q
    return alpha


def alignment(p, previous, mode):
    return to_numpy(
        monotonic.monotonic_alignment(
            ops.convert_to_tensor(np.asarray(p, "float32")),
            ops.convert_to_tensor(np.asarray(previous, "float32")),
            mode,
        )
    )


def random_previous(rng, batch, tk):
    """Row 0 one-hot at key 0 (the initial alignment), row 1 all zero (run
    past the end), the others random with total mass below 1."""
    previous = rng.dirichlet(np.ones(tk), size=batch) * rng.uniform(
        0.5, 1.0, size=(batch, 1)
    )
    previous[0] = 0.0
    previous[0, 0] = 1.0
    previous[1] = 0.0
    return previous


def test_the_two_numpy_forms_agree(rng):
    p = rng.uniform(0.0, 1.0, size=(5, 7))
    previous = random_previous(rng, 5, 7)
    np.testing.assert_allclose(
        sum_form(p, previous), recursive_form(p, previous), atol=1e-12
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_soft_modes_match_numpy(mode, rng):
    # p away from 1, so prod (1 - p) stays above the parallel form's 1e-10.
    p = rng.uniform(0.02, 0.9, size=(6, 9))
    p[2, 3] = 0.0  # a key that never stops the alignment
    previous = random_previous(rng, 6, 9)
    expected = sum_form(p, previous)
    got = alignment(p, previous, mode)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Mass is only lost past the last key: at most what came in.
    assert np.all(got >= 0.0)
    assert np.all(got.sum(-1) <= previous.sum(-1) + 1e-6)


def test_parallel_equals_recursive_on_leading_batch_axes(rng):
    p = rng.uniform(0.02, 0.9, size=(2, 3, 6))
    previous = rng.dirichlet(np.ones(6), size=(2, 3))
    np.testing.assert_allclose(
        alignment(p, previous, "parallel"),
        alignment(p, previous, "recursive"),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        alignment(p, previous, "parallel"), sum_form(p, previous), atol=1e-5
    )


def test_hard_mode_by_hand():
    p = np.array(
        [
            [1, 0, 1, 1, 0],  # from key 1: first p = 1 at or after it is 2
            [0, 0, 1, 0, 1],  # from key 2: stays at 2
            [1, 1, 0, 0, 0],  # from key 3: no stop at or after it: off the end
            [1, 1, 1, 1, 1],  # from nowhere (all zero): stays nowhere
            [0, 1, 0, 0, 0],  # from key 0 (initial): key 1
        ],
        "float32",
    )
    previous = np.zeros((5, 5), "float32")
    previous[0, 1] = previous[1, 2] = previous[2, 3] = previous[4, 0] = 1.0
    expected = np.zeros((5, 5))
    expected[0, 2] = expected[1, 2] = expected[4, 1] = 1.0
    np.testing.assert_array_equal(alignment(p, previous, "hard"), expected)


def test_hard_mode_passes_no_gradient():
    p = np.array([[1, 0, 1, 1, 0]], "float32")
    previous = np.array([[0, 1, 0, 0, 0]], "float32")
    weights = ops.arange(5, dtype="float32")

    def loss(p, previous):
        alignment = monotonic.monotonic_alignment(p, previous, "hard")
        # (The zero term keeps PyTorch's graph, which has nothing else.)
        return ops.sum(alignment * weights) + 0.0 * ops.sum(p + previous)

    value, grads = function_gradients(loss, [p, previous])
    assert value == 2.0  # one-hot at key 2
    for grad in grads:
        np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("mode", ["hard", "recursive"])
def test_zero_one_probabilities_give_the_one_hot_path(mode, rng):
    """With p of 0s and 1s the recurrence is a walk; the exact modes follow
    it. (The parallel form divides by prod (1 - p) clipped to 1e-10: mass
    behind a key with p = 1 is lost, as documented.)"""
    p = (rng.random((8, 6)) < 0.4).astype("float32")
    previous = np.eye(6)[rng.integers(0, 6, size=8)]
    previous[3] = 0.0
    expected = sum_form(p, previous)
    # The walk: one-hot or all zero.
    assert set(np.unique(expected)) <= {0.0, 1.0}
    assert np.all(expected.sum(-1) <= 1.0)
    got = alignment(p, previous, mode)
    if mode == "hard":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_safe_cumprod_matches_cumprod_and_never_underflows_to_nan(rng):
    x = rng.uniform(0.1, 1.0, size=(3, 6))
    inclusive = to_numpy(monotonic.safe_cumprod(ops.convert_to_tensor(x)))
    np.testing.assert_allclose(inclusive, np.cumprod(x, -1), rtol=1e-5)
    exclusive = to_numpy(
        monotonic.safe_cumprod(ops.convert_to_tensor(x), exclusive=True)
    )
    shifted = np.concatenate([np.ones((3, 1)), x[:, :-1]], -1)
    np.testing.assert_allclose(exclusive, np.cumprod(shifted, -1), rtol=1e-5)

    zeros = np.array([[0.5, 0.0, 0.0, 1.0]], "float32")
    _, (grad,) = function_gradients(
        lambda x: ops.sum(monotonic.safe_cumprod(x, exclusive=True)), [zeros]
    )
    value = to_numpy(
        monotonic.safe_cumprod(ops.convert_to_tensor(zeros), exclusive=True)
    )
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, [[1.0, 0.5, 0.0, 0.0]], atol=1e-30)


def _numeric_gradient(loss, array, eps=1e-6):
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


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradients_match_finite_differences_of_numpy(mode, rng):
    p = rng.uniform(0.05, 0.9, size=(2, 5))
    previous = rng.dirichlet(np.ones(5), size=2)
    coef = rng.normal(size=(2, 5))
    coef_tensor = ops.convert_to_tensor(coef, "float32")

    def loss(p, previous):
        return ops.sum(
            monotonic.monotonic_alignment(p, previous, mode) * coef_tensor
        )

    value, (d_p, d_previous) = function_gradients(
        loss, [p.astype("float32"), previous.astype("float32")]
    )

    def numpy_loss():
        return np.sum(sum_form(p, previous) * coef)

    assert value == pytest.approx(numpy_loss(), abs=1e-5)
    np.testing.assert_allclose(
        d_p, _numeric_gradient(numpy_loss, p), rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(
        d_previous,
        _numeric_gradient(numpy_loss, previous),
        rtol=1e-3,
        atol=1e-4,
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradients_finite_at_probabilities_zero_and_one(mode):
    p = np.array([[0.0, 1.0, 1.0, 0.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    previous = np.array([[1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]])

    def loss(p, previous):
        return ops.sum(monotonic.monotonic_alignment(p, previous, mode))

    value, grads = function_gradients(
        loss, [p.astype("float32"), previous.astype("float32")]
    )
    assert np.isfinite(value)
    for grad in grads:
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("mode", ["parallel", "hard"])
def test_alignments_over_queries_equal_a_loop_of_steps(mode, rng):
    batch, tq, tk = 3, 4, 5
    p = rng.uniform(0.05, 0.9, size=(batch, tq, tk))
    if mode == "hard":
        p = np.round(p)
    initial = np.eye(tk)[[0, 2, 4]]
    query_mask = np.array([[1, 0, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    got = to_numpy(
        monotonic.monotonic_alignments(
            ops.convert_to_tensor(p, "float32"),
            ops.convert_to_tensor(initial, "float32"),
            mode,
            query_mask=ops.convert_to_tensor(query_mask),
        )
    )
    # A masked query: zero alignment, and the next one starts from the
    # alignment before it.
    expected = np.zeros((batch, tq, tk))
    previous = initial
    for i in range(tq):
        step = sum_form(p[:, i], previous)
        keep = query_mask[:, i, None]
        expected[:, i] = np.where(keep, step, 0.0)
        previous = np.where(keep, step, previous)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    unmasked = to_numpy(
        monotonic.monotonic_alignments(
            ops.convert_to_tensor(p, "float32"),
            ops.convert_to_tensor(initial, "float32"),
            mode,
        )
    )
    np.testing.assert_allclose(unmasked[0, 0], got[0, 0], atol=1e-7)
    assert not np.allclose(unmasked[0, 1], 0.0)


@pytest.mark.parametrize("mode", ["hard", *SOFT_MODES])
def test_no_keys_give_an_empty_alignment(mode):
    empty = ops.zeros((2, 0), "float32")
    assert tuple(monotonic.monotonic_alignment(empty, empty, mode).shape) == (
        2,
        0,
    )


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match=r"`mode` must be one of .*"):
        monotonic.monotonic_alignment(
            ops.ones((1, 2)), ops.ones((1, 2)), "soft"
        )
