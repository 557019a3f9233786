import math

import keras
from keras import ops

from keras_nmt.layers.base_attention import BaseAttention


@keras.saving.register_keras_serializable(package="keras_nmt")
class ScaledDotProductAttention(BaseAttention):
    """Scaled dot-product attention (Vaswani et al., 2017).

    `score(q, k) = q . k / sqrt(d_k)`, then a masked softmax over the keys and
    the weighted sum of the values. The fixed `1 / sqrt(d_k)` keeps the
    variance of the scores near 1 whatever the depth, so the softmax does not
    saturate as `d_k` grows. No learned parameters.

    Args:
        dropout: float in `[0, 1)`, dropout on the attention weights during
            training.
        seed: optional int, seed of the dropout.
        probability_fn: how scores become weights over the keys:
            `"softmax"` (default), `"sparsemax"` (Martins and Astudillo,
            2016: exact zeros for low scores), `"hardmax"` (one-hot of the
            best key; zero gradient), or a callable `fn(scores, mask) ->
            weights` on float32 scores `(batch_size, Tq, Tk)` and a boolean
            mask broadcastable to them (or None) that returns weights 0 where
            masked (see `keras_nmt.layers.probability`). A callable of one's
            own is saved in `.keras` files when registered with
            `keras.saving.register_keras_serializable`.
        **kwargs: standard layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch_size, Tq, d_k)`, or `(batch_size, d_k)` for one decoder
            step.
        value: `(batch_size, Tk, dv)`.
        key: optional `(batch_size, Tk, d_k)`; defaults to `value`.
        query_mask: optional boolean `(batch_size, Tq)` (`(batch_size,)` for
            one step); masked queries get a zero context and zero weights.
            Filled in from the query's Keras mask.
        value_mask: optional boolean `(batch_size, Tk)`; masked keys get weight
            exactly 0, and their values (even NaN or inf) do not reach the
            context. Filled in from the value's Keras mask (e.g. from
            `Embedding(mask_zero=True)`).
        key_mask: optional boolean `(batch_size, Tk)`, combined with
            `value_mask` (a key takes part where both are `True`). Filled in
            from the key's Keras mask.
        value_lengths: optional integer `(batch_size,)`, the number of valid
            keys of each row (TensorFlow Addons' `memory_sequence_length`):
            key `j` takes part where `j < value_lengths[b]`, combined with
            `value_mask` and `key_mask`. A length of 0 gives that row zero
            weights and a zero context.
        return_attention_scores: bool, also return the attention weights.
        training: bool, whether dropout is active.
        use_causal_mask: bool, query `i` attends only to keys `j <= i`
            (rank-3 queries only): decoder self-attention.

    Returns:
        The context `(batch_size, Tq, dv)` (`(batch_size, dv)` for one step)
        in the compute dtype (integer and boolean inputs are cast to it), and
        with `return_attention_scores=True` the tuple `(context,
        weights)`, where `weights` `(batch_size, Tq, Tk)` (`(batch_size, Tk)`)
        is the distribution over the keys (`probability_fn` of the scores).

    Raises:
        ValueError: for query and key depths that differ, input ranks other
            than above, mismatched batch sizes, keys and values of different
            lengths, masks of the wrong shape, `value_lengths` that is not an
            integer vector `(batch_size,)`, or an unknown `probability_fn`.

    Example:

    >>> import numpy as np
    >>> attention = ScaledDotProductAttention()
    >>> x = np.random.normal(size=(2, 6, 16))
    >>> context, weights = attention(
    ...     x, x, use_causal_mask=True, return_attention_scores=True
    ... )
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 6, 16), (2, 6, 6))
    """

    def check_depths(self, query_dim, key_dim):
        if (
            query_dim is not None
            and key_dim is not None
            and query_dim != key_dim
        ):
            raise ValueError(
                f"ScaledDotProductAttention layer '{self.name}' needs queries "
                f"and keys of the same depth d_k. Received query depth "
                f"{query_dim} and key depth {key_dim}. Project queries or keys "
                "with a Dense layer first, or use "
                "DotProductAttention(score='general')."
            )

    def score(self, query, projected_keys):
        # Scale the query, not the (B, Tq, Tk) scores: fewer multiplications.
        depth = projected_keys.shape[-1]
        if depth is None:
            scale = ops.rsqrt(
                ops.cast(ops.shape(projected_keys)[-1], "float32")
            )
        else:
            scale = 1.0 / math.sqrt(depth)
        query = ops.cast(query, "float32") * scale
        return ops.matmul(query, ops.swapaxes(projected_keys, 1, 2))
