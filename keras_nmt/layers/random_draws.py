"""Random draws that XLA compiles fast on a CPU (private).

`keras.random` on TensorFlow draws with `tf.random.stateless_*` and the
default algorithm, which is slow under XLA on a CPU: with
`jit_compile=True` one dropout mask of 655,360 floats took 136 ms here
against 2.7 ms in a plain graph (3 ms asking for Philox), enough to make
an XLA train step with dropout 0.2 slower than the graph one (`python -m
benchmarks.seq2seq --loops`, the defaults' row). These functions ask for
Philox, what a plain graph already uses on a CPU: in graph mode they draw
exactly the numbers `keras.random` draws (the same masks, so the same
training runs as before); under XLA they draw other numbers from the same
distribution, as fast as the graph. On JAX and PyTorch they are
`keras.random`'s.

Seeds are `keras.random.SeedGenerator`s (or ints), as for `keras.random`.
"""

import keras

_INT32_MAX = 2**31 - 1


def _tensorflow():
    if keras.config.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def _seed(tf, seed):
    """The int32 `(2,)` seed `keras.random` would draw from `seed`."""
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, int):
        seed = [seed, 0]
    else:
        raise ValueError(
            "The seed of a random draw must be an int or a "
            f"keras.random.SeedGenerator. Received: {seed!r}."
        )
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        # What Keras does: its TensorFlow seed state is int64.
        seed = tf.cast(tf.math.floormod(seed, _INT32_MAX - 1), tf.int32)
    return seed


def uniform(shape, dtype="float32", seed=None):
    """`keras.random.uniform(shape, 0, 1, dtype, seed)`, fast under XLA."""
    tf = _tensorflow()
    if tf is None:
        return keras.random.uniform(shape, dtype=dtype, seed=seed)
    return tf.random.stateless_uniform(
        shape, seed=_seed(tf, seed), dtype=dtype, alg="philox"
    )


def normal(shape, stddev=1.0, dtype="float32", seed=None):
    """`keras.random.normal(shape, 0, stddev, dtype, seed)`, fast under XLA."""
    tf = _tensorflow()
    if tf is None:
        return keras.random.normal(shape, stddev=stddev, dtype=dtype, seed=seed)
    draws = tf.random.stateless_normal(
        shape, seed=_seed(tf, seed), dtype=dtype, alg="philox"
    )
    return draws * tf.cast(stddev, dtype)


def dropout(inputs, rate, seed=None):
    """`keras.random.dropout(inputs, rate, seed=seed)`, fast under XLA.

    Each element is kept with probability `1 - rate` and scaled by
    `1 / (1 - rate)`, or set to 0; `rate` is a Python float in `[0, 1)`.
    """
    tf = _tensorflow()
    if tf is None or rate == 0:
        return keras.random.dropout(inputs, rate, seed=seed)
    inputs = tf.convert_to_tensor(inputs)
    # As tf.nn.experimental.stateless_dropout computes it (so that graph
    # mode gives the same values): scale first, draws in the input's dtype.
    scaled = inputs * tf.cast(1.0 / (1.0 - rate), inputs.dtype)
    draws = uniform(tf.shape(inputs), dtype=inputs.dtype, seed=seed)
    return tf.where(draws >= rate, scaled, tf.zeros((), inputs.dtype))


class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` (without `noise_shape`) through `dropout`."""

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return dropout(inputs, self.rate, seed=self.seed_generator)
        return inputs
