import collections

import keras
from keras import ops

from keras_nmt.layers.additive_score import additive_coverage_scores
from keras_nmt.layers.additive_score import additive_scores
from keras_nmt.layers.base_attention import BaseAttention
from keras_nmt.layers.base_attention import length_mask

# Projected keys travelling with a coverage through `BaseAttention.attend`,
# which hands them to `score` unopened.
_CoveredKeys = collections.namedtuple("_CoveredKeys", ["keys", "coverage"])


@keras.saving.register_keras_serializable(package="keras_nmt")
class BahdanauAttention(BaseAttention):
    """Additive attention (Bahdanau, Cho and Bengio, 2014).

    Scores every key against every query with a one-hidden-layer network,

        score(q, k) = v . tanh(W_q q + W_k k)

    with learned `W_q (dq, units)`, `W_k (dk, units)` and `v (units,)`, then
    takes a masked softmax over the keys and returns the weighted sum of the
    values. Query and key depths may differ. With `normalize=True`, `v` is
    weight-normalised, `v = g v / ||v||` with a learned scalar `g`, and a bias
    is added inside the tanh (Salimans and Kingma, 2016; the `normalize` option
    of TensorFlow Addons' `BahdanauAttention`).

    With `use_coverage=True` the score also sees how much attention every key
    has received so far (Tu et al., 2016, "Modeling coverage for neural
    machine translation"; See, Liu and Manning, 2017, "Get to the point",
    eq. 11):

        score(q, k_j) = v . tanh(W_q q + W_k k_j + w_c c_j)

    where `c_j` is the coverage of key `j` (the sum of the attention weights
    of the previous decoder steps, passed as the call argument `coverage`)
    and `w_c (units,)` is learned. The coverage term goes through the same
    hand-written, recomputing gradient as the rest of the score
    (`additive_coverage_scores`).

    The keys are projected once per call (`project_keys`); a decoder that
    attends at every step can project the encoder states once and call
    `attend` per step. The score's gradient recomputes the tanh instead of
    storing a `(B, Tq, Tk, units)` tensor, which makes training several times
    faster than `keras.layers.AdditiveAttention` and bounds its memory.

    Args:
        units: int, size of the hidden layer of the score network.
        normalize: bool, weight-normalise `v` and add a bias in the tanh.
        dropout: float in `[0, 1)`, dropout on the attention weights during
            training.
        kernel_initializer: initializer of `W_q`, `W_k` and `v`.
        seed: optional int, seed of the dropout.
        use_coverage: bool, add the coverage term `w_c c` to the score (and
            accept the call argument `coverage`).
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
        return_attention_scores: bool, also return the attention weights.
        training: bool, whether dropout is active.
        use_causal_mask: bool, query `i` attends only to keys `j <= i`
            (rank-3 queries only).
        coverage: optional float `(batch_size, Tq, Tk)` (`(batch_size, Tk)`
            for one step), the coverage of every key, e.g. the sum of the
            previous steps' attention weights; `None` counts as zeros. Only
            with `use_coverage=True`.

    Returns:
        The context `(batch_size, Tq, dv)` (`(batch_size, dv)` for one step)
        in the compute dtype (integer and boolean inputs are cast to it), and
        with `return_attention_scores=True` the tuple `(context,
        weights)`, where `weights` `(batch_size, Tq, Tk)` (`(batch_size, Tk)`)
        is the softmax distribution over the keys.

    Raises:
        ValueError: for input ranks other than above, mismatched batch sizes,
            keys and values of different lengths, masks or a coverage of the
            wrong shape, or a coverage without `use_coverage=True`.

    Example:

    >>> import numpy as np
    >>> attention = BahdanauAttention(units=16)
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
        units,
        normalize=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        seed=None,
        use_coverage=False,
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                "BahdanauAttention: `units` must be a positive integer, the "
                f"size of the score network's hidden layer. Received: "
                f"units={units!r}."
            )
        self.units = units
        self.normalize = bool(normalize)
        self.use_coverage = bool(use_coverage)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.query_dense = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="query_dense",
        )
        self.key_dense = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="key_dense",
        )

    def build_score(self, query_dim, key_dim):
        self.query_dense.build((None, query_dim))
        self.key_dense.build((None, key_dim))
        # The score's own weights stay float32 inside the layer's call
        # (`autocast=False`): under a mixed policy Keras would otherwise hand
        # them over rounded to float16, and the float32 score would be
        # computed from half-precision parameters.
        self.v = self.add_weight(
            name="v",
            shape=(self.units,),
            initializer=_vector_initializer(self.kernel_initializer),
            dtype="float32",
            autocast=False,
        )
        if self.normalize:
            self.g = self.add_weight(
                name="g",
                shape=(),
                initializer=keras.initializers.Constant(
                    (1.0 / self.units) ** 0.5
                ),
                dtype="float32",
                autocast=False,
            )
            self.b = self.add_weight(
                name="b",
                shape=(self.units,),
                initializer="zeros",
                dtype="float32",
                autocast=False,
            )
        if self.use_coverage:
            self.w_c = self.add_weight(
                name="w_c",
                shape=(self.units,),
                initializer=_vector_initializer(self.kernel_initializer),
                dtype="float32",
                autocast=False,
            )

    def check_depths(self, query_dim, key_dim):
        if not self.built:
            return
        expected = (
            self.query_dense.kernel.shape[0],
            self.key_dense.kernel.shape[0],
        )
        if (query_dim, key_dim) != expected:
            raise ValueError(
                f"BahdanauAttention layer '{self.name}' was built for query "
                f"depth {expected[0]} and key depth {expected[1]}. Received "
                f"query depth {query_dim} and key depth {key_dim}. Use a new "
                "layer for inputs of other depths."
            )

    def project_keys(self, key):
        keys = ops.cast(self.key_dense(key), "float32")
        if self.normalize:
            keys = keys + self.b
        return keys

    def score(self, query, projected_keys):
        coverage = None
        if isinstance(projected_keys, _CoveredKeys):
            projected_keys, coverage = projected_keys
        query = ops.cast(self._project_query(query), "float32")
        if self.normalize:
            v = self.g * self.v / ops.sqrt(ops.sum(ops.square(self.v)))
        else:
            # A tensor, not the variable: TensorFlow's custom_gradient would
            # otherwise ask for variable gradients of its own.
            v = ops.copy(self.v)
        if coverage is None:
            return additive_scores(query, projected_keys, v)
        return additive_coverage_scores(
            query, projected_keys, v, coverage, ops.copy(self.w_c)
        )

    def _project_query(self, query):
        """`W_q q` of a `(batch_size, Tq, d)` query, as one 2-D matmul.

        `Dense` on a 3-D input is a `tensordot` on TensorFlow, whose
        transpose permutation is a computed tensor when the batch is
        dynamic; inside the decoder's time loop XLA cannot compile its
        gradient ("Transpose must be a compile-time constant"). The 2-D
        product computes the same and compiles."""
        shape = ops.shape(query)
        flat = self.query_dense(ops.reshape(query, (-1, query.shape[-1])))
        return ops.reshape(flat, (shape[0], shape[1], flat.shape[-1]))

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        value_lengths=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        coverage=None,
    ):
        masks = {
            "query_mask": query_mask,
            "value_mask": value_mask,
            "key_mask": key_mask,
            "value_lengths": value_lengths,
        }
        if coverage is None:
            return super().call(
                query,
                value,
                key=key,
                return_attention_scores=return_attention_scores,
                training=training,
                use_causal_mask=use_causal_mask,
                **masks,
            )
        # `BaseAttention.call` with the coverage handed on to `attend`.
        key = value if key is None else key
        if value_lengths is not None:
            masks["value_lengths"] = ops.convert_to_tensor(value_lengths)
        self._check_inputs(
            query, value, key, use_causal_mask=use_causal_mask, **masks
        )
        self._check_coverage(query.shape, key.shape, coverage.shape)
        key = self._as_float(key)
        present = [
            ops.cast(m, "bool") for m in (value_mask, key_mask) if m is not None
        ]
        if value_lengths is not None:
            present.append(
                length_mask(masks["value_lengths"], ops.shape(key)[1])
            )
        if present:
            # A NaN or inf in a masked key must not reach the scores.
            keys = present[0]
            for m in present[1:]:
                keys = ops.logical_and(keys, m)
            key = ops.where(ops.expand_dims(keys, -1), key, 0.0)
        context, weights = self.attend(
            query,
            value,
            self.project_keys(key),
            training=training,
            use_causal_mask=use_causal_mask,
            coverage=coverage,
            **masks,
        )
        if return_attention_scores:
            return context, weights
        return context

    def attend(self, query, value, projected_keys, *args, **kwargs):
        """`BaseAttention.attend`, with the keyword argument `coverage`:
        float `(batch_size, Tq, Tk)` (`(batch_size, Tk)` for a rank-2 query)
        or `None` (zeros)."""
        coverage = kwargs.pop("coverage", None)
        if coverage is not None:
            if not self.use_coverage:
                self._check_coverage(None, None, coverage.shape)
            coverage = ops.cast(coverage, "float32")
            if len(query.shape) == 2:
                coverage = ops.expand_dims(coverage, 1)
            projected_keys = _CoveredKeys(projected_keys, coverage)
        return super().attend(query, value, projected_keys, *args, **kwargs)

    def compute_output_spec(
        self, query, value, key=None, coverage=None, **kwargs
    ):
        if coverage is not None:
            key_shape = (value if key is None else key).shape
            self._check_coverage(query.shape, key_shape, coverage.shape)
        return super().compute_output_spec(query, value, key=key, **kwargs)

    def _check_coverage(self, query_shape, key_shape, coverage_shape):
        name = f"BahdanauAttention layer '{self.name}'"
        if not self.use_coverage:
            raise ValueError(
                f"{name}: received a `coverage`, but the layer has no "
                "coverage term. Create it with "
                "`BahdanauAttention(units, use_coverage=True)`."
            )
        want = (*tuple(query_shape)[:-1], tuple(key_shape)[1])
        got = tuple(coverage_shape)
        if len(got) != len(want) or any(
            a is not None and b is not None and a != b
            for a, b in zip(got, want, strict=True)
        ):
            raise ValueError(
                f"{name}: `coverage` must have shape {_fmt(want)}, one value "
                f"per query and key (query shape {_fmt(query_shape)}, key "
                f"shape {_fmt(key_shape)}). Received coverage shape "
                f"{_fmt(got)}."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "normalize": self.normalize,
                "use_coverage": self.use_coverage,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


def _vector_initializer(initializer):
    # A (units,) vector has no fan-in/fan-out; Glorot on (units, 1) gives the
    # same scale TensorFlow Addons used for `attention_v`.
    def init(shape, dtype=None):
        return ops.reshape(initializer((shape[0], 1), dtype=dtype), shape)

    return init


def _fmt(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
