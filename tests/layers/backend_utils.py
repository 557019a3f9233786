"""Gradients and NumPy conversion that work on every Keras backend.

`keras.ops` has no `grad`, so each backend gets its few lines here: a
`GradientTape` on TensorFlow, a jitted `jax.value_and_grad` (over
`stateless_call` for layers) on JAX and `torch.autograd.grad` on PyTorch.
"""

import keras
import numpy as np


def to_numpy(x):
    """A backend tensor (or a tuple of them) as float64 NumPy."""
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(t) for t in x)
    x = keras.ops.convert_to_numpy(x)
    return x.astype(np.float64) if x.dtype.kind == "f" else x


def function_gradients(fn, inputs):
    """Value and gradients of a scalar `fn(*tensors)` written with `keras.ops`.

    Args:
        fn: maps backend tensors (one per input) to a scalar tensor.
        inputs: list of float NumPy arrays.

    Returns:
        `(value, grads)`: a float and a list of float64 NumPy arrays matching
        `inputs`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            value = fn(*xs)
        grads = tape.gradient(value, xs)
    elif backend == "jax":
        import jax

        xs = [jax.numpy.asarray(x) for x in inputs]
        value, grads = jax.jit(jax.value_and_grad(lambda xs: fn(*xs)))(xs)
    elif backend == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in inputs]
        value = fn(*xs)
        grads = torch.autograd.grad(value, xs, allow_unused=True)
        value = value.detach()
    else:
        raise NotImplementedError(f"no gradient helper for {backend}")
    return float(to_numpy(value)), _fill(grads, inputs)


def layer_gradients(layer, inputs, loss_fn, **call_kwargs):
    """Loss and gradients of `loss_fn(layer(*inputs, **call_kwargs))`.

    Args:
        layer: a built layer.
        inputs: list of float NumPy arrays, the positional call arguments to
            differentiate with respect to (e.g. `[query, value, key]`).
        loss_fn: maps the layer's output to a scalar, with `keras.ops`.
        **call_kwargs: other call arguments (masks, flags); not differentiated.

    Returns:
        `(loss, input_grads, weight_grads)`: a float, a list matching
        `inputs` and a list matching `layer.trainable_variables`, all
        float64 NumPy (zeros where a gradient is absent).
    """
    backend = keras.backend.backend()
    variables = list(layer.trainable_variables)
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = loss_fn(layer(*xs, **call_kwargs))
        grads = tape.gradient(loss, [*xs, *variables])
    elif backend == "jax":
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def compute(xs, trainable):
            outputs, _ = layer.stateless_call(
                trainable, non_trainable, *xs, **call_kwargs
            )
            return loss_fn(outputs)

        xs = [jax.numpy.asarray(x) for x in inputs]
        trainable = [v.value for v in variables]
        # Compiled as a whole: faster than tracing op by op on the CPU.
        value_and_grad = jax.jit(jax.value_and_grad(compute, argnums=(0, 1)))
        loss, (g_xs, g_vars) = value_and_grad(xs, trainable)
        grads = [*g_xs, *g_vars]
    elif backend == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in inputs]
        params = [v.value for v in variables]
        loss = loss_fn(layer(*xs, **call_kwargs))
        grads = torch.autograd.grad(loss, [*xs, *params], allow_unused=True)
        loss = loss.detach()
    else:
        raise NotImplementedError(f"no gradient helper for {backend}")
    targets = [*inputs, *(keras.ops.convert_to_numpy(v) for v in variables)]
    grads = _fill(grads, targets)
    return float(to_numpy(loss)), grads[: len(inputs)], grads[len(inputs) :]


def _fill(grads, targets):
    return [
        np.zeros(np.shape(t)) if g is None else to_numpy(g)
        for g, t in zip(grads, targets, strict=True)
    ]
