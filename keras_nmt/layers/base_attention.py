"""The call convention, masking and probabilities shared by every attention
layer."""

import keras
from keras import ops

from keras_nmt.layers import probability
from keras_nmt.layers import random_draws

# The name it has always had here: the same function as `probability.softmax`.
masked_softmax = probability.softmax


def causal_mask(query_length, key_length):
    """Boolean `(1, Tq, Tk)` mask: query `i` may attend to keys `j <= i`."""
    rows = ops.expand_dims(ops.arange(query_length), 1)
    cols = ops.expand_dims(ops.arange(key_length), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def length_mask(lengths, length):
    """Boolean `(B, length)`: `True` at positions `j < lengths[b]`.

    Lengths below 0 mask the whole row; above `length`, none of it.
    """
    positions = ops.expand_dims(ops.arange(length, dtype="int32"), 0)
    return ops.less(positions, ops.expand_dims(ops.cast(lengths, "int32"), -1))


def keys_to_attend(value_mask, key_mask, value_lengths, key_length):
    """Boolean `(B, Tk)`: the keys no mask and no length leaves out.

    None when none is given. Like `keras.layers.MultiHeadAttention`, a key
    takes part only where every mask is `True` (and below its row's length).
    """
    masks = [
        ops.cast(m, "bool") for m in (value_mask, key_mask) if m is not None
    ]
    if value_lengths is not None:
        masks.append(length_mask(value_lengths, key_length))
    if not masks:
        return None
    keys = masks[0]
    for mask in masks[1:]:
        keys = ops.logical_and(keys, mask)
    return keys


def _fmt(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class BaseAttention(keras.layers.Layer):
    """Base class of the attention layers: everything but the score function.

    A subclass says how queries are scored against keys and nothing else:

    - `build_score(query_dim, key_dim)` creates the score's weights (if any);
    - `project_keys(key)` transforms the keys once per source (e.g. `W_k k`
      for Bahdanau); the default returns the keys as float32;
    - `score(query, projected_keys)` returns raw scores `(B, Tq, Tk)` in
      float32;
    - `check_depths(query_dim, key_dim)` raises `ValueError` for depths the
      score cannot combine.

    This class validates shapes, applies the key, query, length and causal
    masks, turns the scores into weights with the probability function in
    float32, applies dropout to the weights in training, and forms the
    context. `project_keys` and `attend` are public so that a decoder can
    project the encoder states once and attend at every step.

    Args:
        dropout: float in `[0, 1)`, fraction of the attention weights dropped
            during training. The returned weights are always the undropped
            distribution.
        seed: optional int, seed of the dropout.
        probability_fn: how scores become weights: `"softmax"` (default),
            `"sparsemax"` (exact zeros for low scores), `"hardmax"` (one-hot
            of the best key, zero gradient), or a callable
            `fn(scores, mask) -> weights` (see `keras_nmt.layers.probability`
            for the contract; register it with
            `keras.saving.register_keras_serializable` for `.keras` files).
        **kwargs: standard layer keyword arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self, dropout=0.0, seed=None, probability_fn="softmax", **kwargs
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"{self.__class__.__name__}: `dropout` must be in [0, 1). "
                f"Received: dropout={dropout}."
            )
        self.dropout = float(dropout)
        self.seed = seed
        self.probability_fn = probability.get(probability_fn)
        self.supports_masking = True
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        )

    # ---- hooks for subclasses -------------------------------------------

    def build_score(self, query_dim, key_dim):
        """Creates the weights of the score function. Default: none."""

    def check_depths(self, query_dim, key_dim):
        """Raises `ValueError` when the score cannot combine these depths."""

    def project_keys(self, key):
        """Transforms the keys `(B, Tk, dk)` once per source sequence.

        The result is what `score` and `attend` take as `projected_keys`.
        """
        return ops.cast(key, "float32")

    def score(self, query, projected_keys):
        """Raw float32 scores `(B, Tq, Tk)` for queries `(B, Tq, dq)`."""
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement `score`."
        )

    # ---- Keras layer API ------------------------------------------------

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        self._check_shapes(query_shape, value_shape, key_shape)
        self.build_score(query_shape[-1], key_shape[-1])

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
    ):
        key = value if key is None else key
        if value_lengths is not None:
            value_lengths = ops.convert_to_tensor(value_lengths)
        self._check_inputs(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            use_causal_mask=use_causal_mask,
        )
        key = self._as_float(key)
        keys = keys_to_attend(
            value_mask, key_mask, value_lengths, ops.shape(key)[1]
        )
        if keys is not None:
            # A NaN or inf in a masked key must reach neither the scores
            # nor, through them, the gradients of the other inputs.
            key = ops.where(ops.expand_dims(keys, -1), key, 0.0)
        context, weights = self.attend(
            query,
            value,
            self.project_keys(key),
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            training=training,
            use_causal_mask=use_causal_mask,
        )
        if return_attention_scores:
            return context, weights
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
    ):
        """Attends with keys already passed through `project_keys`.

        Takes the same arguments as `call` (without validation) and always
        returns `(context, weights)`. A decoder calls `project_keys` once per
        source and `attend` at every step. `dropout_mask`, optional, is the
        dropout drawn ahead by the method `dropout_mask` (`(batch_size, Tk)`
        for one step); it replaces the dropout `attend` draws in training.
        """
        # Integer or boolean inputs would make an integer context (the
        # weights cast to int: all zero); compute in floating point.
        query = self._as_float(query)
        value = self._as_float(value)
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
            if query_mask is not None:
                query_mask = ops.expand_dims(query_mask, 1)
        scores = ops.cast(self.score(query, projected_keys), "float32")
        mask = None
        keys = keys_to_attend(
            value_mask, key_mask, value_lengths, ops.shape(value)[1]
        )
        if keys is not None:
            mask = ops.expand_dims(keys, 1)
            # A masked value gets weight 0, but 0 * inf and 0 * NaN are NaN:
            # zero the masked values themselves so none reaches the context.
            value = ops.where(ops.expand_dims(keys, -1), value, 0.0)
        if use_causal_mask:
            causal = causal_mask(ops.shape(scores)[1], ops.shape(scores)[2])
            mask = causal if mask is None else ops.logical_and(mask, causal)
        # The rows with no key to attend to (and the masked queries) are
        # zeroed on the context, (B, Tq, d_v), rather than on the weights,
        # (B, Tq, Tk) as `probability.softmax` does: one pass over the
        # largest tensor fewer, which matters when Tk > d_v. The returned
        # weights are zeroed too; when they are not used, graph pruning and
        # XLA drop that step.
        if self.probability_fn is probability.softmax:
            weights = probability.softmax_over_unmasked(scores, mask)
        else:
            weights = self.probability_fn(scores, mask)
        keep = None
        if mask is not None:
            keep = ops.any(mask, axis=-1, keepdims=True)
        if query_mask is not None:
            queries = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
            keep = queries if keep is None else ops.logical_and(keep, queries)
        # Dropped weights form the context; the returned weights stay the
        # distribution, so they still sum to 1 over the unmasked keys.
        mixing = weights
        if dropout_mask is not None:
            if single_step:
                dropout_mask = ops.expand_dims(dropout_mask, 1)
            mixing = weights * ops.cast(dropout_mask, weights.dtype)
        elif training and self.dropout > 0:
            mixing = random_draws.dropout(
                weights, self.dropout, seed=self.seed_generator
            )
        context = ops.matmul(ops.cast(mixing, value.dtype), value)
        if keep is not None:
            context = ops.where(keep, context, ops.zeros_like(context))
            weights = ops.where(keep, weights, 0.0)
        weights = ops.cast(weights, self.compute_dtype)
        if single_step:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def dropout_mask(self, shape, training=None):
        """Draws the dropout of the attention weights ahead of `attend`.

        `attend` draws its own dropout in training. A decoder that attends
        inside a compiled loop (`ops.scan`) draws the masks of all steps
        before the loop instead and passes one per step as `dropout_mask`:
        on JAX, a seed generator cannot advance inside a loop.

        Args:
            shape: shape of the weights it applies to, e.g.
                `(steps, batch_size, Tk)` for single decoder steps.
            training: bool, whether dropout is active.

        Returns:
            float32 tensor of `shape`, 0 where a weight is dropped and
            `1 / (1 - dropout)` where it is kept; None outside training or
            without dropout.
        """
        if not training or self.dropout == 0:
            return None
        return random_draws.dropout(
            ops.ones(shape, "float32"), self.dropout, seed=self.seed_generator
        )

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*query_shape[:-1], value_shape[-1])

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
    ):
        key = value if key is None else key
        self._check_inputs(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            value_lengths=value_lengths,
            use_causal_mask=use_causal_mask,
        )
        context = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape),
            dtype=self.compute_dtype,
        )
        if not return_attention_scores:
            return context
        weights = keras.KerasTensor(
            (*query.shape[:-1], key.shape[1]), dtype=self.compute_dtype
        )
        return context, weights

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dropout": self.dropout,
                "seed": self.seed,
                "probability_fn": probability.serialize(self.probability_fn),
            }
        )
        return config

    # ---- helpers --------------------------------------------------------

    def _as_float(self, x):
        """Integer and boolean inputs in the compute dtype; floats as given."""
        if keras.backend.is_float_dtype(x.dtype):
            return x
        return ops.cast(x, self.compute_dtype)

    # ---- validation -----------------------------------------------------

    def _check_inputs(
        self,
        query,
        value,
        key,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        value_lengths=None,
        use_causal_mask=False,
    ):
        self._check_shapes(
            query.shape,
            value.shape,
            key.shape,
            query_mask_shape=None if query_mask is None else query_mask.shape,
            value_mask_shape=None if value_mask is None else value_mask.shape,
            key_mask_shape=None if key_mask is None else key_mask.shape,
            value_lengths_shape=(
                None if value_lengths is None else value_lengths.shape
            ),
            use_causal_mask=use_causal_mask,
        )
        if value_lengths is not None:
            dtype = keras.backend.standardize_dtype(value_lengths.dtype)
            if "int" not in dtype:
                raise ValueError(
                    f"{self.__class__.__name__} layer '{self.name}': "
                    "`value_lengths` must be integers, the number of valid "
                    f"keys of each batch row. Received dtype {dtype}. Cast "
                    "it to int32 (e.g. `keras.Input((), dtype='int32')`)."
                )

    def _check_shapes(
        self,
        query_shape,
        value_shape,
        key_shape,
        query_mask_shape=None,
        value_mask_shape=None,
        key_mask_shape=None,
        value_lengths_shape=None,
        use_causal_mask=False,
    ):
        """Raises `ValueError` for inputs this layer cannot attend over.

        Works on static shapes only, so it runs before any computation and
        also on symbolic (functional API) inputs.
        """
        name = f"{self.__class__.__name__} layer '{self.name}'"
        query_shape, value_shape, key_shape = (
            tuple(query_shape),
            tuple(value_shape),
            tuple(key_shape),
        )
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"{name}: `query` must have rank 3 `(batch, Tq, dim)` or rank "
                f"2 `(batch, dim)` for a single decoder step. Received query "
                f"shape {_fmt(query_shape)}."
            )
        for arg, shape in (("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"{name}: `{arg}` must have rank 3 `(batch, Tk, dim)`. "
                    f"Received {arg} shape {_fmt(shape)}."
                )
        batches = {
            arg: shape[0]
            for arg, shape in (
                ("query", query_shape),
                ("value", value_shape),
                ("key", key_shape),
            )
            if shape[0] is not None
        }
        if len(set(batches.values())) > 1:
            received = ", ".join(f"{a} {b}" for a, b in batches.items())
            raise ValueError(
                f"{name}: query, value and key must have the same batch size. "
                f"Received batch sizes: {received} (query shape "
                f"{_fmt(query_shape)}, value shape {_fmt(value_shape)}, key "
                f"shape {_fmt(key_shape)})."
            )
        if (
            key_shape[1] is not None
            and value_shape[1] is not None
            and key_shape[1] != value_shape[1]
        ):
            raise ValueError(
                f"{name}: `key` and `value` must have the same length Tk (one "
                f"value per key). Received key shape {_fmt(key_shape)} and "
                f"value shape {_fmt(value_shape)}."
            )
        self.check_depths(query_shape[-1], key_shape[-1])
        if use_causal_mask and len(query_shape) != 3:
            raise ValueError(
                f"{name}: `use_causal_mask=True` needs a rank-3 query "
                f"`(batch, Tq, dim)`, whose positions line up with the keys. "
                f"Received query shape {_fmt(query_shape)}. A single decoder "
                "step attends to all keys it is given: pass only the keys up "
                "to the current step instead."
            )
        # Masks have one entry per key `(batch, Tk)`, or per query.
        masks = {
            "value_mask": (value_mask_shape, "value", value_shape[:2]),
            "key_mask": (key_mask_shape, "key", key_shape[:2]),
            "query_mask": (query_mask_shape, "query", query_shape[:-1]),
        }
        inputs = {"value": value_shape, "key": key_shape, "query": query_shape}
        for arg, (shape, input_name, want) in masks.items():
            if shape is None:
                continue
            shape = tuple(shape)
            if len(shape) != len(want) or any(
                a is not None and b is not None and a != b
                for a, b in zip(shape, want, strict=True)
            ):
                raise ValueError(
                    f"{name}: `{arg}` must have shape {_fmt(want)} to match "
                    f"{input_name} shape {_fmt(inputs[input_name])}. Received "
                    f"{arg} shape {_fmt(shape)}. Pass one boolean per "
                    f"{'query' if arg == 'query_mask' else 'key'}, `True` "
                    "where it takes part."
                )
        if value_lengths_shape is not None:
            shape = tuple(value_lengths_shape)
            want = (next(iter(batches.values()), None),)
            if len(shape) != 1 or (
                shape[0] is not None
                and want[0] is not None
                and shape[0] != want[0]
            ):
                raise ValueError(
                    f"{name}: `value_lengths` must have shape {_fmt(want)}, "
                    "one length per batch row (value shape "
                    f"{_fmt(value_shape)}). Received value_lengths shape "
                    f"{_fmt(shape)}. Pass the number of valid keys of each "
                    "row as a vector (squeeze a `(batch, 1)` tensor), or a "
                    "boolean `(batch, Tk)` mask as `value_mask` instead."
                )
