"""`keras_nmt.layers.random_draws`: the draws of `keras.random`, in Philox.

References: Keras itself (in graph and eager mode the draws must be the
numbers `keras.random` and `keras.layers.Dropout` give for the same seed,
so that training runs are what they were) and, under XLA, where the numbers
differ, the distributions (binomial and normal bounds at 6 standard
errors, a failure probability of ~1e-9 per check).
"""

import keras
import numpy as np
import pytest

from keras_nmt.layers import random_draws

TENSORFLOW = keras.config.backend() == "tensorflow"


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _inputs(shape=(16, 25, 32)):
    rng = np.random.default_rng(0)
    # No zero inputs: a dropped element is then exactly the zeros.
    return (np.abs(rng.normal(size=shape)) + 0.5).astype("float32")


@pytest.mark.parametrize("rate", [0.1, 0.3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_layer_equals_keras_dropout(rate, dtype):
    """Eagerly (and, on TensorFlow, as a graph) the same output as
    `keras.layers.Dropout` with the same seed, call after call."""
    x = keras.ops.convert_to_tensor(_inputs(), dtype)
    ours = random_draws.Dropout(rate, seed=5, dtype=dtype)
    theirs = keras.layers.Dropout(rate, seed=5, dtype=dtype)
    calls = [
        (lambda x, layer=layer: layer(x, training=True))
        for layer in (ours, theirs)
    ]
    if TENSORFLOW:
        import tensorflow as tf

        calls += [tf.function(call) for call in calls]
    for _ in range(3):
        for call_ours, call_theirs in zip(calls[::2], calls[1::2], strict=True):
            np.testing.assert_array_equal(
                _numpy(call_ours(x)).astype("float32"),
                _numpy(call_theirs(x)).astype("float32"),
            )
    np.testing.assert_array_equal(_numpy(ours(x, training=False)), _numpy(x))


def test_uniform_and_normal_equal_keras_random():
    for seed in (4, 2**31 + 7):
        np.testing.assert_array_equal(
            _numpy(random_draws.uniform((5, 7), seed=seed)),
            _numpy(keras.random.uniform((5, 7), seed=seed)),
        )
    ours = keras.random.SeedGenerator(3)
    theirs = keras.random.SeedGenerator(3)
    for _ in range(2):  # the generators advance alike
        np.testing.assert_allclose(
            _numpy(random_draws.normal((5, 7), stddev=2.0, seed=ours)),
            _numpy(keras.random.normal((5, 7), stddev=2.0, seed=theirs)),
            rtol=1e-6,
        )


def test_a_bad_seed_is_one_clear_error():
    if not TENSORFLOW:
        pytest.skip("keras.random checks the seed on the other backends")
    with pytest.raises(ValueError, match=r"must be an int or a keras\.random"):
        random_draws.uniform((2,), seed="seven")


def _xla(fn):
    import tensorflow as tf

    return tf.function(fn, jit_compile=True)


@pytest.mark.skipif(not TENSORFLOW, reason="XLA through tf.function")
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_under_xla_keeps_1_minus_rate_scaled(rate):
    x = _inputs((64, 40, 48))
    layer = random_draws.Dropout(rate, seed=11)
    run = _xla(lambda x: layer(x, training=True))
    first, second = _numpy(run(x)), _numpy(run(x))
    for out in (first, second):
        kept = out != 0
        n = kept.size
        bound = 6 * np.sqrt(rate * (1 - rate) / n)
        assert abs(kept.mean() - (1 - rate)) < bound
        np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)
    # A new mask at every call (the seed generator advances) ...
    assert not np.array_equal(first != 0, second != 0)
    # ... and the same masks for a layer with the same seed.
    again = random_draws.Dropout(rate, seed=11)
    rerun = _xla(lambda x: again(x, training=True))
    np.testing.assert_array_equal(_numpy(rerun(x)), first)


@pytest.mark.skipif(not TENSORFLOW, reason="XLA through tf.function")
def test_uniform_and_normal_under_xla_have_their_distributions():
    seed = keras.random.SeedGenerator(1)
    n = 200_000
    u = _numpy(_xla(lambda: random_draws.uniform((n,), seed=seed))())
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / n)
    z = _numpy(_xla(lambda: random_draws.normal((n,), stddev=3.0, seed=seed))())
    assert abs(z.mean()) < 6 * 3.0 / np.sqrt(n)
    # The sample variance's standard error is ~ sigma^2 sqrt(2 / n).
    assert abs(z.var() - 9.0) < 6 * 9.0 * np.sqrt(2 / n)
