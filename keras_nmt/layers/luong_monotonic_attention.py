import keras

from keras_nmt.layers.dot_product_attention import DotProductAttention
from keras_nmt.layers.monotonic import MonotonicMixin


@keras.saving.register_keras_serializable(package="keras_nmt")
class LuongMonotonicAttention(MonotonicMixin, DotProductAttention):
    """Monotonic attention with the multiplicative (Luong) score.

    Raffel, Luong, Liu, Weiss and Eck, 2017, "Online and Linear-Time
    Attention by Enforcing Monotonic Alignments"
    (https://arxiv.org/abs/1704.00784); TensorFlow Addons'
    `LuongMonotonicAttention`.

    Scores queries against keys as `DotProductAttention` does (`q . k`, or
    `q . W k` with `score="general"`, times a learned scale with
    `use_scale=True`) plus a learned scalar bias `r`, then replaces the
    softmax by a left-to-right scan over the keys: at query `i` the
    alignment moves on from where it was at query `i - 1` and stops at key
    `j` with probability `p[i, j] = sigmoid(e[i, j] + noise)`. In training
    the layer returns the expected alignment,

        alpha[i, j] = p[i, j] * sum_{k <= j} alpha[i-1, k]
                                * prod_{l=k}^{j-1} (1 - p[i, l]),

    which sums to at most 1 (the rest has run past the last key), computed
    as `mode` says. Outside training (`training` false or None) the stops
    are hard, `e[i, j] > 0`, and the alignment is one-hot, or all zero once
    it has run past the last key. The alignment before the first query is
    one-hot at key 0 (`initial_alignment`).

    A rank-3 query `(batch_size, Tq, dq)` (teacher forcing) runs the
    recurrence over its `Tq` queries in one call. A decoder that attends one
    step at a time passes a rank-2 query and carries the alignment: each
    call of `attend` returns `(context, alignment)`, and `alignment` goes in
    as `previous_alignment` at the next step (`requires_previous_alignment`
    is True on this class for decoders to check). A decoder whose steps run
    in a compiled loop draws the training noise of all steps before it,
    `noise(shape, training)`, and passes each step's as `attend(...,
    noise=...)`, as it does with `dropout_mask`.

    Args:
        score: `"dot"` or `"general"`.
        use_scale: bool, learn a scalar that multiplies the scores.
        sigmoid_noise: float >= 0, standard deviation of the Gaussian noise
            added to the energies before the sigmoid, in training only.
        score_bias_init: float, initial value of the score bias `r`; negative
            values (e.g. -4) help on long sources.
        mode: how the alignment is computed in training: `"parallel"`
            (cumulative sums and products; fast, inexact where
            `prod (1 - p)` falls below 1e-10), `"recursive"` (a scan over the
            keys; exact, slower) or `"hard"` (hard stops `e + noise > 0`, no
            gradient to the score).
        seed: optional int, seed of the noise (and of the dropout).
        **kwargs: `dropout` (on the alignment in training) and standard
            layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch_size, Tq, dq)`, or `(batch_size, dq)` for one decoder
            step.
        value: `(batch_size, Tk, dv)`.
        key: optional `(batch_size, Tk, dk)`; defaults to `value`.
        query_mask: optional boolean `(batch_size, Tq)` (`(batch_size,)` for
            one step). A masked query gets a zero context and a zero
            alignment; in a rank-3 call, the next query continues from the
            alignment before it. Filled in from the query's Keras mask.
        value_mask: optional boolean `(batch_size, Tk)`. Masked keys get
            stopping probability 0: the alignment is exactly 0 there and
            passes over them, and their values (even NaN or inf) do not
            reach the context. Filled in from the value's Keras mask.
        key_mask: optional boolean `(batch_size, Tk)`, combined with
            `value_mask`. Filled in from the key's Keras mask.
        value_lengths: optional integer `(batch_size,)`, the number of valid
            keys of each row: key `j` takes part where
            `j < value_lengths[b]`, combined with the masks.
        return_attention_scores: bool, also return the alignments.
        training: bool, expected (soft) alignments with noise when true, hard
            ones when false or None.
        use_causal_mask: must be False: the alignment is already monotonic.
        previous_alignment: optional float `(batch_size, Tk)`, the alignment
            before the first query; defaults to `initial_alignment`.

    Returns:
        The context `(batch_size, Tq, dv)` (`(batch_size, dv)` for one step)
        in the compute dtype, and with `return_attention_scores=True` the
        tuple `(context, alignments)`, `alignments` `(batch_size, Tq, Tk)`
        (`(batch_size, Tk)`) in the compute dtype. (`attend` returns the
        alignments in float32: a decoder carries them as its state.)

    Raises:
        ValueError: for an unknown `score` or `mode`, a negative
            `sigmoid_noise`, a `probability_fn`, `use_causal_mask=True`, a
            `previous_alignment` of the wrong shape, and the input errors of
            `DotProductAttention`.

    Example:

    >>> import numpy as np
    >>> attention = LuongMonotonicAttention(score="general")
    >>> decoder_states = np.random.normal(size=(2, 5, 32))
    >>> encoder_states = np.random.normal(size=(2, 7, 64))
    >>> context, alignments = attention(
    ...     decoder_states, encoder_states, return_attention_scores=True
    ... )
    >>> tuple(context.shape), tuple(alignments.shape)
    ((2, 5, 64), (2, 5, 7))
    """

    def __init__(
        self,
        score="dot",
        use_scale=False,
        sigmoid_noise=0.0,
        score_bias_init=0.0,
        mode="parallel",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            score=score,
            use_scale=use_scale,
            seed=seed,
            sigmoid_noise=sigmoid_noise,
            score_bias_init=score_bias_init,
            mode=mode,
            **kwargs,
        )
