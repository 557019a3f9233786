import keras
from keras import ops

from keras_nmt.layers.base_attention import BaseAttention

_SCORES = ("dot", "general")


@keras.saving.register_keras_serializable(package="keras_nmt")
class DotProductAttention(BaseAttention):
    """Multiplicative attention (Luong, Pham and Manning, 2015).

    Scores each key by its dot product with the query, takes a masked softmax
    over the keys and returns the weighted sum of the values:

    - `score="dot"`: `score(q, k) = q . k` (no weights; `dq` must equal `dk`);
    - `score="general"`: `score(q, k) = q . W k` with a learned `W (dk, dq)`,
      so queries and keys may have different depths.

    With `use_scale=True` the scores are multiplied by a learned scalar
    (initialised to 1), the `scale` option of TensorFlow Addons'
    `LuongAttention`.

    Args:
        score: `"dot"` or `"general"`.
        use_scale: bool, learn a scalar that multiplies the scores.
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
        query: `(batch_size, Tq, dq)`, or `(batch_size, dq)` for one decoder
            step.
        value: `(batch_size, Tk, dv)`.
        key: optional `(batch_size, Tk, dk)`; defaults to `value`.
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
            (rank-3 queries only).

    Returns:
        The context `(batch_size, Tq, dv)` (`(batch_size, dv)` for one step)
        in the compute dtype (integer and boolean inputs are cast to it), and
        with `return_attention_scores=True` the tuple `(context,
        weights)`, where `weights` `(batch_size, Tq, Tk)` (`(batch_size, Tk)`)
        is the distribution over the keys (`probability_fn` of the scores).

    Raises:
        ValueError: for an unknown `score`, `score="dot"` with query and key
            depths that differ, input ranks other than above, mismatched
            batch sizes, keys and values of different lengths, masks of the
            wrong shape, `value_lengths` that is not an integer vector
            `(batch_size,)`, or an unknown `probability_fn`.

    Example:

    >>> import numpy as np
    >>> attention = DotProductAttention(score="general")
    >>> decoder_states = np.random.normal(size=(2, 5, 32))
    >>> encoder_states = np.random.normal(size=(2, 7, 64))
    >>> context, weights = attention(
    ...     decoder_states, encoder_states, return_attention_scores=True
    ... )
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 5, 64), (2, 5, 7))
    """

    def __init__(
        self,
        score="dot",
        use_scale=False,
        dropout=0.0,
        seed=None,
        probability_fn="softmax",
        **kwargs,
    ):
        super().__init__(
            dropout=dropout,
            seed=seed,
            probability_fn=probability_fn,
            **kwargs,
        )
        if score not in _SCORES:
            raise ValueError(
                f"DotProductAttention: `score` must be one of {_SCORES}. "
                f"Received: score={score!r}."
            )
        self.score_mode = score
        self.use_scale = bool(use_scale)
        # Created in `build`: its size is the query depth.
        self.key_dense = None

    def build_score(self, query_dim, key_dim):
        if self.score_mode == "general":
            # W maps keys into the query space: q . (W k).
            self.key_dense = keras.layers.Dense(
                query_dim,
                use_bias=False,
                dtype=self.dtype_policy,
                name="key_dense",
            )
            self.key_dense.build((None, key_dim))
        if self.use_scale:
            # float32 inside the call too, like the scores it multiplies.
            self.scale = self.add_weight(
                name="scale",
                shape=(),
                initializer="ones",
                dtype="float32",
                autocast=False,
            )

    def check_depths(self, query_dim, key_dim):
        if self.score_mode == "general":
            if self.built and self.key_dense.kernel.shape != (
                key_dim,
                query_dim,
            ):
                raise ValueError(
                    f"DotProductAttention layer '{self.name}' was built for "
                    f"keys of depth {self.key_dense.kernel.shape[0]} and "
                    f"queries of depth {self.key_dense.kernel.shape[1]}. "
                    f"Received key depth {key_dim} and query depth "
                    f"{query_dim}. Use a new layer for inputs of other depths."
                )
            return
        if (
            query_dim is not None
            and key_dim is not None
            and query_dim != key_dim
        ):
            raise ValueError(
                f"DotProductAttention layer '{self.name}' with score='dot' "
                "needs queries and keys of the same depth. Received query "
                f"depth {query_dim} and key depth {key_dim}. Use "
                "score='general' (learns a projection of the keys), or project "
                "queries or keys with a Dense layer first."
            )

    def project_keys(self, key):
        if self.key_dense is not None:
            key = self.key_dense(key)
        return ops.cast(key, "float32")

    def score(self, query, projected_keys):
        scores = ops.matmul(
            ops.cast(query, "float32"), ops.swapaxes(projected_keys, 1, 2)
        )
        if self.use_scale:
            scores = scores * self.scale
        return scores

    def get_config(self):
        config = super().get_config()
        config.update({"score": self.score_mode, "use_scale": self.use_scale})
        return config
