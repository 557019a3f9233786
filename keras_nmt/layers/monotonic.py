"""Monotonic alignments (Raffel et al., 2017) and the layer logic shared by
`BahdanauMonotonicAttention` and `LuongMonotonicAttention`.

Colin Raffel, Minh-Thang Luong, Peter J. Liu, Ron J. Weiss and Douglas Eck,
"Online and Linear-Time Attention by Enforcing Monotonic Alignments", ICML
2017, https://arxiv.org/abs/1704.00784.

At output step `i` the decoder scans the keys left to right from where it
stopped at step `i - 1` and stops at key `j` with probability
`p[i, j] = sigmoid(energy[i, j])`. The expected alignment is

    alpha[i, j] = p[i, j] * sum_{k <= j} alpha[i-1, k]
                            * prod_{l=k}^{j-1} (1 - p[i, l]),

or, recursively, `q[i, j] = (1 - p[i, j-1]) q[i, j-1] + alpha[i-1, j]` and
`alpha[i, j] = p[i, j] q[i, j]`. Mass that passes the last key is lost, so an
alignment sums to at most 1. The functions here compute it in float32 in
TensorFlow Addons' three modes (`monotonic_attention` in
`tensorflow_addons/seq2seq/attention_wrapper.py`):

- `"parallel"`: the closed form with cumulative sums and products,
  `alpha = p * c * cumsum(alpha_prev / clip(c, 1e-10, 1))` with
  `c = exclusive cumprod(1 - p)` taken in log space (`safe_cumprod`). Fast;
  inexact where `c` falls below 1e-10 (long sources, `p` near 1);
- `"recursive"`: the recursion above, a scan over the keys. Exact, slower;
- `"hard"`: for `p` of 0s and 1s only: the first key at or after the
  previous one with `p = 1`. No gradient.
"""

import keras
from keras import ops

from keras_nmt.layers import random_draws
from keras_nmt.layers.base_attention import keys_to_attend

MODES = ("parallel", "recursive", "hard")

# Smallest normal float32 (numpy.finfo("float32").tiny): `safe_cumprod`
# clips to it so that the log stays finite.
_TINY = 1.1754943508222875e-38
# The parallel form divides by the cumulative product clipped to this.
_MIN_CUMPROD = 1e-10


def _shift_right(x, fill):
    """`[fill, x_0, ..., x_{n-2}]` along the last axis (empty stays empty)."""
    first = ops.full_like(x[..., :1], fill)
    return ops.concatenate([first, x], axis=-1)[..., :-1]


def safe_cumprod(x, exclusive=False):
    """Cumulative product along the last axis, as `exp(cumsum(log(x)))`.

    `x` is clipped to `[tiny, 1]` first (tiny: the smallest normal float32), so
    neither the product nor its gradient underflows to NaN where `x` holds
    zeros (TensorFlow Addons' `safe_cumprod`).

    Args:
        x: float tensor `(..., n)` with entries in `[0, 1]`.
        exclusive: bool, the product of the entries before each position
            (the first one gets 1) instead of up to and including it.

    Returns:
        float tensor of the shape of `x`.
    """
    logs = ops.log(ops.clip(x, _TINY, 1.0))
    if exclusive:
        logs = _shift_right(logs, 0.0)
    return ops.exp(ops.cumsum(logs, axis=-1))


def _scan(step, init, xs):
    """`ops.scan(step, init, xs)` for outputs shaped like the items of
    `xs[0]`, differentiable under XLA on every backend.

    On TensorFlow, `ops.scan` is a `while_loop` without a maximum number of
    iterations, whose gradient XLA (`jit_compile=True`) cannot build for a
    length unknown when the graph is traced: there, the loop is written
    with `ops.while_loop(..., maximum_iterations=n)` instead. JAX needs
    `ops.scan` (its `while_loop` has no reverse-mode gradient).
    """
    if keras.backend.backend() != "tensorflow":
        return ops.scan(step, init, xs)
    n = ops.shape(xs[0])[0]

    def body(i, carry, ys):
        carry, y = step(carry, tuple(x[i] for x in xs))
        # (`slice_update` has no gradient on TensorFlow.)
        ys = ops.scatter_update(
            ys, ops.reshape(i, (1, 1)), ops.expand_dims(y, 0)
        )
        return i + 1, carry, ys

    _, carry, ys = ops.while_loop(
        lambda i, carry, ys: i < n,
        body,
        (ops.convert_to_tensor(0, "int32"), init, ops.zeros_like(xs[0])),
        maximum_iterations=n,
    )
    return carry, ys


def monotonic_alignment(p_choose, previous_alignment, mode):
    """One step of the monotonic alignment recurrence.

    Args:
        p_choose: float32 `(..., Tk)`, the probabilities of stopping at each
            key, in `[0, 1]` (0s and 1s only for `mode="hard"`).
        previous_alignment: float32 `(..., Tk)`, the alignment of the previous
            step (one-hot at key 0 before the first step).
        mode: `"parallel"`, `"recursive"` or `"hard"` (see the module
            docstring).

    Returns:
        float32 `(..., Tk)`, the alignment of this step.

    Raises:
        ValueError: for an unknown `mode`.
    """
    if mode == "parallel":
        cumprod = safe_cumprod(1.0 - p_choose, exclusive=True)
        carried = ops.cumsum(
            previous_alignment / ops.clip(cumprod, _MIN_CUMPROD, 1.0), axis=-1
        )
        return p_choose * cumprod * carried
    if mode == "recursive":
        if p_choose.shape[-1] == 0:
            return p_choose  # no keys: nothing to scan (a PyTorch scan fails)
        # q[j] = (1 - p[j - 1]) q[j - 1] + previous[j], with q[-1] = 0.
        decay = ops.moveaxis(_shift_right(1.0 - p_choose, 1.0), -1, 0)
        added = ops.moveaxis(previous_alignment, -1, 0)

        def step(q, inputs):
            decay_j, added_j = inputs
            q = decay_j * q + added_j
            return q, q

        # (A sum, not `[..., 0]`: that would fail without keys.)
        start = ops.zeros_like(ops.sum(previous_alignment, axis=-1))
        _, q = _scan(step, start, (decay, added))
        return p_choose * ops.moveaxis(q, 0, -1)
    if mode == "hard":
        # Keys before the previous alignment are out of reach; of the rest,
        # keep the first with p = 1: p * [no earlier key chosen]. Discrete
        # decisions have no gradient (and TensorFlow's gradient of `cumprod`
        # is wrong where the input holds zeros): none is passed on.
        p_choose = p_choose * ops.cumsum(previous_alignment, axis=-1)
        alignment = p_choose * ops.cumprod(
            _shift_right(1.0 - p_choose, 1.0), -1
        )
        return ops.stop_gradient(alignment)
    raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}.")


def monotonic_alignments(p_choose, initial_alignment, mode, query_mask=None):
    """The alignments of successive queries, each from the one before.

    Args:
        p_choose: float32 `(B, Tq, Tk)`, stopping probabilities of each query.
        initial_alignment: float32 `(B, Tk)`, the alignment before query 0.
        mode: `"parallel"`, `"recursive"` or `"hard"`.
        query_mask: optional boolean `(B, Tq)`. A masked query gets an
            all-zero alignment and leaves the carried one unchanged for the
            next query (as a Keras RNN keeps its state over masked steps).

    Returns:
        float32 `(B, Tq, Tk)`.
    """
    if p_choose.shape[1] == 0:
        return p_choose  # no queries: nothing to scan (a PyTorch scan fails)
    steps = ops.moveaxis(p_choose, 1, 0)
    if query_mask is None:

        def step(previous, inputs):
            alignment = monotonic_alignment(inputs[0], previous, mode)
            return alignment, alignment

        _, alignments = _scan(step, initial_alignment, (steps,))
    else:
        keep = ops.expand_dims(
            ops.moveaxis(ops.cast(query_mask, "bool"), 1, 0), -1
        )

        def step(previous, inputs):
            p_step, keep_step = inputs
            alignment = monotonic_alignment(p_step, previous, mode)
            carried = ops.where(keep_step, alignment, previous)
            return carried, ops.where(keep_step, alignment, 0.0)

        _, alignments = _scan(step, initial_alignment, (steps, keep))
    return ops.moveaxis(alignments, 0, 1)


def attended_keys(
    value_mask=None, key_mask=None, value_lengths=None, key_length=None
):
    """Boolean `(B, Tk)`: the keys every mask keeps; None without masks.

    Args:
        value_mask: optional boolean `(B, Tk)`.
        key_mask: optional boolean `(B, Tk)`.
        value_lengths: optional integer `(B,)`: key `j` is kept where
            `j < value_lengths[b]`.
        key_length: `Tk`, needed with `value_lengths`.
    """
    return keys_to_attend(value_mask, key_mask, value_lengths, key_length)


def stopping_probabilities(energies, hard, keys=None):
    """`p_choose` from energies: `sigmoid(e)`, or `e > 0` when `hard`.

    Args:
        energies: float32 `(B, Tq, Tk)`, scores plus the score bias (plus the
            noise, in training).
        hard: bool, threshold at 0 (`sigmoid(e) > 0.5`) instead of the
            sigmoid.
        keys: optional boolean `(B, Tk)`; masked keys get probability exactly
            0, so alignments pass over them (TensorFlow Addons scores padded
            memory with -inf).

    Returns:
        float32 `(B, Tq, Tk)`.
    """
    if keys is None:
        if hard:
            return ops.cast(ops.greater(energies, 0.0), "float32")
        return ops.sigmoid(energies)
    keys = ops.expand_dims(keys, 1)
    # The masked energies are replaced before the sigmoid too, so a NaN
    # there reaches neither the output nor the gradients.
    energies = ops.where(keys, energies, 0.0)
    if hard:
        p_choose = ops.cast(ops.greater(energies, 0.0), "float32")
    else:
        p_choose = ops.sigmoid(energies)
    return ops.where(keys, p_choose, 0.0)


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class MonotonicMixin:
    """What makes an attention layer monotonic: put it before the layer class.

    `class BahdanauMonotonicAttention(MonotonicMixin, BahdanauAttention)`
    keeps the parent's projections and score and replaces the softmax by the
    monotonic alignment recurrence: a learned scalar score bias, stopping
    probabilities `sigmoid(score + bias + noise)` and, at each query, the
    expected alignment from the previous one. Outside training the decisions
    are hard (`score + bias > 0`) and the alignment one-hot or all-zero.

    Args:
        sigmoid_noise: float >= 0, standard deviation of the Gaussian noise
            added to the energies before the sigmoid in training.
        score_bias_init: float, initial value of the score bias.
        mode: `"parallel"`, `"recursive"` or `"hard"`, how alignments are
            computed in training.
        **kwargs: passed to the parent layer.
    """

    # Decoders carry the alignment from one step to the next.
    requires_previous_alignment = True

    def __init__(
        self, sigmoid_noise=0.0, score_bias_init=0.0, mode="parallel", **kwargs
    ):
        name = self.__class__.__name__
        probability_fn = kwargs.pop("probability_fn", "softmax")
        if probability_fn != "softmax":
            raise ValueError(
                f"{name}: the stopping probabilities and the alignment "
                "recurrence take the place of `probability_fn`. Received: "
                f"probability_fn={probability_fn!r}. Leave it out, or use "
                "the non-monotonic layer for another probability function."
            )
        if mode not in MODES:
            raise ValueError(
                f"{name}: `mode` must be one of {MODES}. Received: "
                f"mode={mode!r}."
            )
        if (
            isinstance(sigmoid_noise, bool)
            or not isinstance(sigmoid_noise, (int, float))
            or not 0.0 <= sigmoid_noise < float("inf")
        ):
            raise ValueError(
                f"{name}: `sigmoid_noise` must be a finite float >= 0, the "
                "standard deviation of the noise added before the sigmoid in "
                f"training. Received: sigmoid_noise={sigmoid_noise!r}."
            )
        if (
            isinstance(score_bias_init, bool)
            or not isinstance(score_bias_init, (int, float))
            or not abs(score_bias_init) < float("inf")
        ):
            raise ValueError(
                f"{name}: `score_bias_init` must be a finite float. "
                f"Received: score_bias_init={score_bias_init!r}."
            )
        super().__init__(**kwargs)
        self.sigmoid_noise = float(sigmoid_noise)
        self.score_bias_init = float(score_bias_init)
        self.mode = mode
        # With dropout, the noise draws from the dropout's generator.
        self.noise_seed_generator = None
        if self.sigmoid_noise > 0 and self.seed_generator is None:
            self.noise_seed_generator = keras.random.SeedGenerator(self.seed)

    def build_score(self, query_dim, key_dim):
        super().build_score(query_dim, key_dim)
        self.score_bias = self.add_weight(
            name="score_bias",
            shape=(),
            initializer=keras.initializers.Constant(self.score_bias_init),
            dtype="float32",
            autocast=False,
        )

    def initial_alignment(self, batch_size, key_length):
        """The alignment before the first query: one-hot at key 0.

        Args:
            batch_size: int or scalar tensor.
            key_length: int or scalar tensor, the number of keys `Tk`.

        Returns:
            float32 `(batch_size, key_length)`.
        """
        return ops.one_hot(
            ops.zeros((batch_size,), "int32"), key_length, dtype="float32"
        )

    def noise(self, shape, training=None):
        """Draws the pre-sigmoid noise ahead of `attend`.

        `attend` draws its own noise in training; a decoder that attends
        inside a compiled loop draws the noise of all steps before it and
        passes one step's as `noise` (see `attend`).

        Args:
            shape: shape of the energies it is added to, e.g.
                `(steps, batch_size, Tk)` for single decoder steps.
            training: bool, whether the noise is active.

        Returns:
            float32 tensor of `shape`, Gaussian with standard deviation
            `sigmoid_noise`; None outside training or without noise.
        """
        if not training or self.sigmoid_noise == 0:
            return None
        generator = self.noise_seed_generator
        if generator is None:
            generator = self.seed_generator
        return random_draws.normal(
            shape, stddev=self.sigmoid_noise, seed=generator
        )

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
        previous_alignment=None,
    ):
        key = value if key is None else key
        if value_lengths is not None:
            value_lengths = ops.convert_to_tensor(value_lengths)
        self._check_monotonic_inputs(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            use_causal_mask=use_causal_mask,
            previous_alignment=previous_alignment,
        )
        key = self._as_float(key)
        keys = attended_keys(
            value_mask, key_mask, value_lengths, ops.shape(key)[1]
        )
        if keys is not None:
            # A NaN or inf in a masked key must reach neither the energies
            # nor, through them, the gradients of the other inputs.
            key = ops.where(ops.expand_dims(keys, -1), key, 0.0)
        context, alignments = self.attend(
            query,
            value,
            self.project_keys(key),
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            training=training,
            previous_alignment=previous_alignment,
        )
        if return_attention_scores:
            return context, ops.cast(alignments, self.compute_dtype)
        return context

    def attend(
        self,
        query,
        value,
        projected_keys,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        value_lengths=None,
        training=None,
        use_causal_mask=False,
        dropout_mask=None,
        previous_alignment=None,
        noise=None,
    ):
        """Attends with keys already passed through `project_keys`.

        Takes the arguments of `call` (without validation) and always returns
        `(context, alignment)`, the alignment in float32. For one decoder
        step (a rank-2 query), `alignment` `(B, Tk)` is the state to pass as
        `previous_alignment` to the next step; the first step takes None or
        `initial_alignment(batch_size, Tk)`. `dropout_mask` and `noise`,
        optional, are the dropout and the pre-sigmoid noise drawn ahead by
        the methods of the same names (`(B, Tk)` for one step); they replace
        what `attend` draws in training. A decoder whose steps run in a
        compiled loop (`ops.scan`) draws them before the loop: on JAX, a
        seed generator cannot advance inside a loop.
        """
        self._refuse_causal_mask(use_causal_mask)
        query = self._as_float(query)
        value = self._as_float(value)
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
            if query_mask is not None:
                query_mask = ops.expand_dims(query_mask, 1)
        energies = self.score(query, projected_keys) + self.score_bias
        if noise is not None:
            if single_step:
                noise = ops.expand_dims(noise, 1)
            energies = energies + ops.cast(noise, "float32")
        elif training and self.sigmoid_noise > 0:
            energies = energies + self.noise(ops.shape(energies), training)
        keys = attended_keys(
            value_mask, key_mask, value_lengths, ops.shape(value)[1]
        )
        if keys is not None:
            # 0 * inf and 0 * NaN are NaN: zero the masked values themselves.
            value = ops.where(ops.expand_dims(keys, -1), value, 0.0)
        # Outside training the decisions are hard, whatever the mode.
        mode = self.mode if training else "hard"
        p_choose = stopping_probabilities(energies, mode == "hard", keys)
        if previous_alignment is None:
            previous_alignment = self.initial_alignment(
                ops.shape(energies)[0], ops.shape(energies)[2]
            )
        previous_alignment = ops.cast(previous_alignment, "float32")
        if single_step:
            alignments = monotonic_alignment(
                p_choose[:, 0], previous_alignment, mode
            )
            alignments = ops.expand_dims(alignments, 1)
            if query_mask is not None:
                keep = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
                alignments = ops.where(keep, alignments, 0.0)
        else:
            alignments = monotonic_alignments(
                p_choose, previous_alignment, mode, query_mask=query_mask
            )
        mixing = alignments
        if dropout_mask is not None:
            if single_step:
                dropout_mask = ops.expand_dims(dropout_mask, 1)
            mixing = alignments * ops.cast(dropout_mask, "float32")
        elif training and self.dropout > 0:
            mixing = random_draws.dropout(
                alignments, self.dropout, seed=self.seed_generator
            )
        context = ops.matmul(ops.cast(mixing, value.dtype), value)
        if single_step:
            return ops.squeeze(context, 1), ops.squeeze(alignments, 1)
        return context, alignments

    def compute_output_spec(
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
        previous_alignment=None,
    ):
        key = value if key is None else key
        self._check_monotonic_inputs(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            use_causal_mask=use_causal_mask,
            previous_alignment=previous_alignment,
        )
        return super().compute_output_spec(
            query,
            value,
            key=key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            return_attention_scores=return_attention_scores,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sigmoid_noise": self.sigmoid_noise,
                "score_bias_init": self.score_bias_init,
                "mode": self.mode,
            }
        )
        return config

    # ---- validation -----------------------------------------------------

    def _refuse_causal_mask(self, use_causal_mask):
        if use_causal_mask:
            raise ValueError(
                f"{self.__class__.__name__} layer '{self.name}' does not take "
                "`use_causal_mask=True`: monotonic alignments already move "
                "left to right over the keys, one query after the other. "
                "Received use_causal_mask=True; leave it False (for "
                "self-attention over a decoder's own outputs, use "
                "ScaledDotProductAttention)."
            )

    def _check_monotonic_inputs(
        self,
        query,
        value,
        key,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        value_lengths=None,
        use_causal_mask=False,
        previous_alignment=None,
    ):
        self._refuse_causal_mask(use_causal_mask)
        self._check_inputs(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
        )
        if value_lengths is not None:
            self._check_value_lengths(query, value_lengths)
        if previous_alignment is None:
            return
        shape = tuple(previous_alignment.shape)
        want = (query.shape[0], key.shape[1])
        if len(shape) != 2 or any(
            a is not None and b is not None and a != b
            for a, b in zip(shape, want, strict=True)
        ):
            raise ValueError(
                f"{self.__class__.__name__} layer '{self.name}': "
                f"`previous_alignment` must have shape {_shape_text(want)}, "
                "one weight per key for each sequence of the batch (query "
                f"shape {_shape_text(query.shape)}, key shape "
                f"{_shape_text(key.shape)}). Received previous_alignment "
                f"shape {_shape_text(shape)}. Pass the alignment the "
                "previous step returned, "
                "`initial_alignment(batch_size, key_length)`, or None."
            )

    def _check_value_lengths(self, query, value_lengths):
        name = f"{self.__class__.__name__} layer '{self.name}'"
        shape = tuple(value_lengths.shape)
        want = (query.shape[0],)
        if len(shape) != 1 or (
            shape[0] is not None and want[0] is not None and shape != want
        ):
            raise ValueError(
                f"{name}: `value_lengths` must have shape "
                f"{_shape_text(want)}, one length per batch row. Received "
                f"value_lengths shape {_shape_text(shape)}. Pass the number "
                "of valid keys of each row as a vector, or a boolean "
                "`(batch, Tk)` mask as `value_mask` instead."
            )
        dtype = keras.backend.standardize_dtype(value_lengths.dtype)
        if "int" not in dtype:
            raise ValueError(
                f"{name}: `value_lengths` must be integers, the number of "
                f"valid keys of each batch row. Received dtype {dtype}. Cast "
                "it to int32."
            )
