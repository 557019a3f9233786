"""Probability functions: from attention scores to weights over the keys.

Each function maps float32 scores `(..., Tk)` and an optional boolean mask
broadcastable to them (`True` where a key may be attended to) to float32
weights of the shape of `scores`. The weights are exactly 0 where the mask is
`False`, sum to 1 over the unmasked keys of a row, and a row with no unmasked
key gets all-zero weights (not a distribution over padding); neither the
weights nor their gradients are ever NaN.

- `softmax`: `exp(z_i) / sum_j exp(z_j)`; every unmasked key gets a
  positive weight.
- `sparsemax` (Martins and Astudillo, 2016, "From Softmax to Sparsemax"):
  the Euclidean projection of the scores onto the probability simplex,
  `max(z_i - tau, 0)`; keys scored far enough below the best get weight
  exactly 0. Differentiable almost everywhere.
- `hardmax`: the one-hot of the highest score (the first one on ties). Its
  gradient is zero: nothing upstream of the scores learns through it.

The attention layers take one of these names, or any callable with the same
contract, as `probability_fn`. A layer calls it as `fn(scores, mask)` with
float32 scores `(batch_size, Tq, Tk)` (`Tq = 1` for one decoder step) and a
boolean mask, or None when nothing is masked: `(batch_size, 1, Tk)` from key
masks and lengths, `(1, Tq, Tk)` from the causal mask alone,
`(batch_size, Tq, Tk)` from both. It must return float32 weights of the
shape of `scores` that are 0 where the mask is `False`. The layer zeroes the
context of rows with no key and of masked queries itself.

>>> import numpy as np
>>> from keras import ops
>>> from keras_nmt.layers import DotProductAttention
>>> from keras_nmt.layers import probability
>>> scores = np.array([[[3.0, 1.0, 0.2], [0.5, 0.3, -1.0]]], "float32")
>>> weights = ops.convert_to_numpy(probability.sparsemax(scores))
>>> weights.astype("float64").round(2).tolist()
[[[1.0, 0.0, 0.0], [0.6, 0.4, 0.0]]]
>>> def sharpened_softmax(scores, mask):
...     return probability.softmax(2.0 * scores, mask)
>>> attention = DotProductAttention(probability_fn=sharpened_softmax)

A `.keras` file stores a name for the built-in functions. A callable of one's
own is stored by `keras.saving.serialize_keras_object`: decorate it with
`@keras.saving.register_keras_serializable()` so that the file loads, or
pass it in `custom_objects` to `keras.saving.load_model`.
"""

import keras
from keras import ops

PROBABILITY_FNS = ("softmax", "sparsemax", "hardmax")

# Scores of masked keys are replaced by this before the softmax and the
# sparsemax. Both run in float32, so the value cannot overflow, even under a
# `mixed_float16` policy (where the largest finite number is 65504).
_MASKED_SCORE = -1e9


def softmax(scores, mask=None):
    """Softmax over the last axis; masked positions get weight exactly 0.

    A row whose positions are all masked gets all-zero weights (not a uniform
    distribution over padding), and its gradient is zero, never NaN.

    Args:
        scores: float tensor `(..., Tk)`, cast to float32.
        mask: optional boolean tensor broadcastable to `scores`; `True` marks
            the positions that may be attended to.

    Returns:
        float32 tensor of the shape of `scores`.
    """
    weights = softmax_over_unmasked(scores, mask)
    if mask is None:
        return weights
    # Only a fully masked row has weight on masked positions (uniform over
    # them); zeroing those keeps every other weight exactly as the softmax
    # gave it.
    return ops.where(ops.cast(mask, "bool"), weights, 0.0)


def softmax_over_unmasked(scores, mask=None):
    """`softmax` without its last step: a fully masked row stays uniform.

    Masked positions of a row with an unmasked one get `exp(-1e9 - max) = 0`
    as in `softmax`. For callers that zero the rows with no key themselves:
    `BaseAttention.attend` does so on the context `(B, Tq, dv)`, one pass
    over the `(B, Tq, Tk)` weights fewer.
    """
    scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(ops.cast(mask, "bool"), scores, _MASKED_SCORE)
    return ops.softmax(scores, axis=-1)


def sparsemax(scores, mask=None):
    """Sparsemax over the last axis: the projection onto the simplex.

    `sparsemax(z) = argmin_p ||p - z||^2` over the distributions `p`, which
    is `p_i = max(z_i - tau, 0)`. With `z_(1) >= z_(2) >= ...` the sorted
    scores, the support size is `k(z) = max{k : 1 + k z_(k) > sum_{j<=k}
    z_(j)}` and `tau = (sum_{j<=k(z)} z_(j) - 1) / k(z)` (Martins and
    Astudillo, 2016). Written with `keras.ops` (a sort, a cumulative sum), so
    every backend differentiates it: on the support `S` the Jacobian is
    `diag(s) - s s^T / |S|`, `s` the indicator of `S`.

    Args:
        scores: float tensor `(..., Tk)`, cast to float32.
        mask: optional boolean tensor broadcastable to `scores`; `True` marks
            the positions that may be attended to.

    Returns:
        float32 tensor of the shape of `scores`: masked positions and fully
        masked rows 0, every other row a distribution with exact zeros.
    """
    scores = ops.cast(scores, "float32")
    if scores.shape[-1] == 0:
        return scores
    if mask is not None:
        mask = ops.cast(mask, "bool")
        # Far below every unmasked score: never in the support of a row
        # that has an unmasked position.
        scores = ops.where(mask, scores, _MASKED_SCORE)
    ordered = ops.flip(ops.sort(scores, axis=-1), axis=-1)  # descending
    cumulative = ops.cumsum(ordered, axis=-1)
    rank = ops.arange(1, ops.shape(scores)[-1] + 1, dtype="float32")
    support = ops.greater(1.0 + rank * ordered, cumulative)
    support = ops.cast(support, "float32")
    # At least 1: a fully masked row (all -1e9, where 1 + z rounds to z)
    # would otherwise divide by 0; `mask` zeroes that row below.
    size = ops.maximum(ops.sum(support, axis=-1, keepdims=True), 1.0)
    in_support = ops.cast(ops.less_equal(rank, size), "float32")
    total = ops.sum(ordered * in_support, axis=-1, keepdims=True)
    weights = ops.relu(scores - (total - 1.0) / size)
    if mask is None:
        return weights
    return ops.where(mask, weights, 0.0)


def hardmax(scores, mask=None):
    """One-hot of the highest unmasked score over the last axis.

    On ties the first position wins (on every backend and device; `argmax`
    does not promise that on TensorFlow). A fully masked row is all 0. The
    weights are piecewise constant in the scores: their gradient is zero.

    Args:
        scores: float tensor `(..., Tk)`, cast to float32.
        mask: optional boolean tensor broadcastable to `scores`; `True` marks
            the positions that may be attended to.

    Returns:
        float32 tensor of the shape of `scores`, one 1 per row with an
        unmasked position, 0 elsewhere.
    """
    scores = ops.cast(scores, "float32")
    if scores.shape[-1] == 0:
        return scores
    if mask is None:
        best = ops.max(scores, axis=-1, keepdims=True)
        is_best = ops.equal(scores, best)
    else:
        mask = ops.cast(mask, "bool")
        best = ops.max(
            ops.where(mask, scores, float("-inf")), axis=-1, keepdims=True
        )
        is_best = ops.logical_and(ops.equal(scores, best), mask)
    # The first best position: the one where the running count reaches 1.
    first = ops.equal(ops.cumsum(ops.cast(is_best, "int32"), axis=-1), 1)
    return ops.cast(ops.logical_and(is_best, first), "float32")


_BY_NAME = {"softmax": softmax, "sparsemax": sparsemax, "hardmax": hardmax}


def get(identifier):
    """The probability function for a name, a callable or a saved config.

    Like `keras.activations.get`.

    Args:
        identifier: one of `PROBABILITY_FNS`, a callable `fn(scores, mask)
            -> weights` with the contract of this module, or the config
            `serialize` returned for one.

    Returns:
        The function.

    Raises:
        ValueError: for an unknown name or anything else.
    """
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"Unknown probability function {identifier!r}. Expected one "
                f"of {PROBABILITY_FNS}, or a callable `fn(scores, mask) -> "
                "weights` that gives masked positions weight 0."
            )
        return _BY_NAME[identifier]
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        "A probability function must be one of "
        f"{PROBABILITY_FNS} or a callable `fn(scores, mask) -> weights`. "
        f"Received: {identifier!r}."
    )


def serialize(fn):
    """The name of a built-in function, else `serialize_keras_object(fn)`.

    A function of one's own loads back from a `.keras` file only when it is
    registered (`@keras.saving.register_keras_serializable()`) or passed in
    `custom_objects`.
    """
    for name, builtin in _BY_NAME.items():
        if fn is builtin:
            return name
    return keras.saving.serialize_keras_object(fn)
