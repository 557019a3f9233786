"""`time_scan`: the decoder's time loop, compilable with XLA on TensorFlow.

Why it exists: `keras.ops.scan` on the TensorFlow backend (Keras 3.15)
keeps the carry in size-1 `TensorArray`s, read and written at every step,
and calls `tf.while_loop` without `maximum_iterations`. XLA cannot compile
the gradient of such a loop ("XLA compilation requires a fixed tensor list
size ... TensorArray in a while loop"): a `jit_compile=True` training step
of a model with a scanned time loop fails, and the graph-mode loop pays for
the carry's `TensorArray`s. On TensorFlow, `time_scan` is a `tf.while_loop`
whose loop variables are the carry itself, with the per-step outputs in
`TensorArray`s of fixed size and `maximum_iterations` set; on JAX and
PyTorch it is `keras.ops.scan` (`jax.lax.scan` compiles and differentiates;
JAX's `while_loop` has no reverse-mode gradient).
"""

import keras
from keras import ops
from keras import tree


def time_scan(f, init, xs):
    """`keras.ops.scan(f, init, xs)`, differentiable under XLA everywhere.

    As with `keras.ops.scan` on TensorFlow, each step's output has the
    structure, shapes and dtypes of the carry (the decoder's loops return
    their carry as their output).

    Args:
        f: `(carry, x) -> (carry, y)`; `carry` and `y` have the structure,
            shapes and dtypes of `init`; `x` the structure of `xs`, each
            tensor without its leading axis.
        init: nest of tensors, the initial carry.
        xs: nest of tensors sharing their leading (time) axis.

    Returns:
        `(carry, ys)`: the final carry, and the `y`s stacked along a new
        leading axis of the length of `xs`.

    Raises:
        ValueError: on TensorFlow, where a step's carry or output is not
            shaped like `init`.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.scan(f, init, xs)
    import tensorflow as tf

    xs_flat = [tf.convert_to_tensor(x) for x in tree.flatten(xs)]
    init_flat = [tf.convert_to_tensor(c) for c in tree.flatten(init)]
    static = xs_flat[0].shape[0]
    n = static if static is not None else tf.shape(xs_flat[0])[0]
    inputs = [
        tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x)
        for x in xs_flat
    ]
    outputs = [
        tf.TensorArray(c.dtype, size=n, element_shape=c.shape)
        for c in init_flat
    ]

    def body(i, carry, outputs):
        x = tree.pack_sequence_as(xs, [array.read(i) for array in inputs])
        carry, y = f(tree.pack_sequence_as(init, carry), x)
        carry = _like(init_flat, carry, "carry")
        outputs = [
            array.write(i, value)
            for array, value in zip(
                outputs, _like(init_flat, y, "output"), strict=True
            )
        ]
        return i + 1, carry, outputs

    _, carry, outputs = tf.while_loop(
        lambda i, carry, outputs: i < n,
        body,
        (tf.constant(0, "int32"), init_flat, outputs),
        maximum_iterations=n,
    )
    ys = []
    for array, c in zip(outputs, init_flat, strict=True):
        y = array.stack()
        y.set_shape(tf.TensorShape([static]).concatenate(c.shape))
        ys.append(y)
    return tree.pack_sequence_as(init, carry), tree.pack_sequence_as(init, ys)


def _like(init_flat, nest, what):
    """`nest` flattened, each tensor given the static shape of its `init`
    counterpart (the loop's shape); a ValueError where it does not fit."""
    flat = tree.flatten(nest)
    if len(flat) != len(init_flat):
        raise ValueError(
            f"time_scan: each step's {what} must have the structure of "
            f"`init` ({len(init_flat)} tensors). Received {len(flat)}."
        )
    import tensorflow as tf

    result = []
    for value, c in zip(flat, init_flat, strict=True):
        if not value.shape.is_compatible_with(c.shape) or (
            value.dtype != c.dtype
        ):
            raise ValueError(
                f"time_scan: each step's {what} must have the shapes and "
                f"dtypes of `init`. Received {value.dtype.name} "
                f"{value.shape} where `init` has {c.dtype.name} {c.shape}."
            )
        if value.shape != c.shape:
            value = tf.ensure_shape(value, c.shape)
        result.append(value)
    return result
