"""Compile a decoding function once per input shapes, on every backend."""

import functools

import keras


def compile_decoding(fn, *, variables=None, jit_compile: bool = False):
    """Returns `fn` compiled once per input shapes for the current backend.

    The returned callable runs `fn(*args, **kwargs)`. Positional arguments
    are tensors (or nested structures of tensors) and are traced: calls with
    new values of the same shapes and dtypes reuse the compiled function.
    Keyword arguments are static Python values (e.g. `max_length`, a seed
    int) and must be hashable: each new value compiles anew.

    - TensorFlow: a `tf.function` (`jit_compile=True` compiles it with XLA).
      Variables are read live; `variables` is not needed.
    - JAX: a `jax.jit`. Keras variables read by `fn` would be baked into the
      compiled function as constants of the first call; list them in
      `variables` (e.g. `model.variables`) and their current values are
      passed to the compiled function at every call, inside a
      `keras.StatelessScope`. Variables that `fn` updates (e.g. the `state`
      of a `keras.random.SeedGenerator` used as the `seed` of `sample`) are
      assigned their new values after the call.
    - PyTorch: `fn` runs eagerly under `torch.no_grad()`; the decoding loop
      is then a Python loop of one step function call per token.

    Args:
        fn: the function to compile, typically a closure over a step function
            that calls `greedy_search`, `sample` or `beam_search`.
        variables: optional list of `keras.Variable`s read (or updated) by
            `fn`; used on JAX, ignored elsewhere.
        jit_compile: bool, whether TensorFlow compiles with XLA; ignored
            elsewhere (JAX always uses XLA).

    Returns:
        A callable with the signature of `fn`.

    Raises:
        ValueError: if `variables` holds something other than Keras
            variables, or (at call time) a keyword argument is not hashable.

    Example:

    >>> table = keras.ops.log_softmax(keras.random.normal((5, 5), seed=1))
    >>> def step_fn(tokens, state, constants):
    ...     return keras.ops.take(table, tokens, axis=0), state, state
    >>> translate = compile_decoding(
    ...     lambda start, state: greedy_search(
    ...         step_fn, start, state, max_length=8, end_token=0))
    >>> out = translate(keras.ops.array([1, 2]), keras.ops.zeros((2, 3)))
    """
    variables = list(variables or [])
    for variable in variables:
        if not isinstance(variable, keras.Variable):
            raise ValueError(
                "`compile_decoding`: `variables` must be a list of "
                "`keras.Variable`s (e.g. `model.variables`, or the `state` of "
                f"a `keras.random.SeedGenerator`). Received: {variable!r}."
            )
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=bool(jit_compile))
    if backend == "jax":
        return _jax_compiled(fn, variables)
    if backend == "torch":
        import torch

        @functools.wraps(fn)
        def run_without_grad(*args, **kwargs):
            with torch.no_grad():
                return fn(*args, **kwargs)

        return run_without_grad
    return fn


def _jax_compiled(fn, variables):
    import jax

    compiled = {}

    def stateless_call(kwargs, values, *args):
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            given = [scope.get_current_value(v) for v in variables]
            outputs = fn(*args, **kwargs)
        # Only the variables that `fn` assigned come back out of the jit.
        updates = []
        for variable, value in zip(variables, given, strict=True):
            current = scope.get_current_value(variable)
            updates.append(None if current is value else current)
        return outputs, updates

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            key = tuple(sorted(kwargs.items()))
            function = compiled.get(key)
        except TypeError as error:
            raise ValueError(
                "`compile_decoding`: keyword arguments of a compiled decoding "
                "function are static Python values and must be hashable; "
                "pass tensors as positional arguments. Received: "
                f"{sorted(kwargs)}."
            ) from error
        if function is None:
            function = jax.jit(functools.partial(stateless_call, kwargs))
            compiled[key] = function
        values = [variable.value for variable in variables]
        outputs, updates = function(values, *args)
        for variable, value in zip(variables, updates, strict=True):
            if value is not None:
                variable.assign(value)
        return outputs

    return run
