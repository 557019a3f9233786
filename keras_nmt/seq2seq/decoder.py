import keras
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import BaseAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from keras_nmt.seq2seq import recurrence
from keras_nmt.seq2seq.options import ATTENTIONS
from keras_nmt.seq2seq.options import CELLS
from keras_nmt.seq2seq.options import STYLES
from keras_nmt.seq2seq.options import check_choice


def get_attention(attention, units):
    """An attention layer from its name (see `ATTENTIONS`) or an instance."""
    if isinstance(attention, BaseAttention):
        return attention
    if attention == "bahdanau":
        return BahdanauAttention(units, name="attention")
    if attention == "dot":
        return DotProductAttention(name="attention")
    if attention == "general":
        return DotProductAttention(score="general", name="attention")
    if attention == "scaled_dot":
        return ScaledDotProductAttention(name="attention")
    raise ValueError(
        f"`attention` must be one of {ATTENTIONS} or an attention layer "
        "instance (BahdanauAttention, DotProductAttention, "
        f"ScaledDotProductAttention). Received: attention={attention!r}."
    )


@keras.saving.register_keras_serializable(package="keras_nmt")
class AttentionDecoder(keras.layers.Layer):
    """RNN decoder that attends over all encoder states at every step.

    Two styles (any of the three attention layers can score):

    - `style="bahdanau"` (Bahdanau et al., 2014): the *previous* decoder
      state `s_{t-1}` scores every encoder state; the softmax-weighted sum is
      the context `c_t`; `[embedding(y_{t-1}); c_t]` is the RNN's input;
      the logits come from `[s_t; c_t]`.
    - `style="luong"` (Luong et al., 2015): the RNN steps first; its *new*
      state `h_t` scores the encoder states; the attentional vector
      `h~_t = tanh(W_c [c_t; h_t])` gives the logits. With
      `input_feeding=True`, `h~_{t-1}` joins the next step's input. Without
      it, the RNN runs over the whole target first and the attention is one
      batched call over all target positions.

    Teacher forcing (`call`) and the one-token `step` used for inference
    compute the same logits. The attention layer's key projections (e.g.
    `W_k h` of Bahdanau) are computed once per source (`constants`), never
    per step, and the input half of the RNN gates for all target positions
    is one matmul outside the time loop.

    Args:
        vocab_size: int, target vocabulary size (including padding 0).
        embedding_dim: int, size of the target token embeddings.
        units: int, size of the decoder RNN state.
        attention: `"bahdanau"`, `"dot"`, `"general"`, `"scaled_dot"`, or an
            attention layer instance. `"dot"` and `"scaled_dot"` need encoder
            states of size `units`.
        style: `"bahdanau"` or `"luong"`.
        cell: `"lstm"` or `"gru"`.
        input_feeding: bool, Luong style only.
        dropout: float in `[0, 1)`, dropout on the embeddings and on the
            features before the output layer, in training.
        **kwargs: standard layer keyword arguments.

    Call arguments:
        target_in_tokens: int `(batch_size, Tt)`: `[START] y_1 ... y_{n-1}`.
        encoder_outputs: `(batch_size, Ts, d_enc)`, all encoder states.
        source_mask: bool `(batch_size, Ts)`.
        encoder_state: list of `(batch_size, d)`, the encoder's final
            states (one per state of the cell).
        training: bool.

    Returns:
        `(logits, attention_weights)`: float32 `(batch_size, Tt, vocab_size)`
        and `(batch_size, Tt, Ts)`.
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim,
        units,
        attention="bahdanau",
        style="bahdanau",
        cell="lstm",
        input_feeding=False,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("AttentionDecoder", "cell", cell, CELLS)
        if style not in STYLES:
            raise ValueError(
                f"AttentionDecoder: `style` must be one of {STYLES}. "
                f"Received: style={style!r}."
            )
        if input_feeding and style != "luong":
            raise ValueError(
                "AttentionDecoder: `input_feeding=True` is an option of the "
                "Luong style (the Bahdanau style always feeds the context to "
                "the RNN). Use style='luong' or input_feeding=False."
            )
        if isinstance(attention, dict):  # from get_config
            attention = keras.saving.deserialize_keras_object(attention)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.style = style
        self.cell_kind = cell
        self.input_feeding = bool(input_feeding)
        self.dropout = dropout
        self.attention = get_attention(attention, units)
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, dtype=self.dtype_policy, name="embedding"
        )
        cell_class = (
            keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        )
        self.cell = cell_class(units, dtype=self.dtype_policy, name="cell")
        self.bridges = [
            keras.layers.Dense(
                units,
                activation="tanh",
                dtype=self.dtype_policy,
                name=f"bridge_{i}",
            )
            for i in range(recurrence.state_size(cell))
        ]
        self.attentional_dense = None
        if style == "luong":
            self.attentional_dense = keras.layers.Dense(
                units,
                activation="tanh",
                use_bias=False,
                dtype=self.dtype_policy,
                name="attentional",
            )
        self.output_dense = keras.layers.Dense(
            vocab_size, dtype=self.dtype_policy, name="logits"
        )
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )

    def build(
        self,
        target_in_tokens_shape,
        encoder_outputs_shape,
        source_mask_shape=None,
        encoder_state_shape=None,
    ):
        encoder_dim = encoder_outputs_shape[-1]
        self.embedding.build(target_in_tokens_shape)
        extra = {"bahdanau": encoder_dim, "luong": 0}[self.style]
        if self.input_feeding:
            extra = self.units
        self.cell.build((None, self.embedding_dim + extra))
        if not self.attention.built:  # a deserialised attention comes built
            self.attention.build((None, self.units), (None, None, encoder_dim))
        state_dims = (
            [shape[-1] for shape in encoder_state_shape]
            if encoder_state_shape is not None
            else [encoder_dim] * len(self.bridges)
        )
        for bridge, dim in zip(self.bridges, state_dims, strict=True):
            bridge.build((None, dim))
        if self.style == "luong":
            self.attentional_dense.build((None, encoder_dim + self.units))
            self.output_dense.build((None, self.units))
        else:
            self.output_dense.build((None, self.units + encoder_dim))

    # ---- inference API ----------------------------------------------------

    def initial_state(self, encoder_state):
        """The decoder state before the first token, from the encoder's
        final states: `tanh(W s)` per state (plus a zero attentional vector
        with input feeding). A tuple, for `step`."""
        state = tuple(
            bridge(s)
            for bridge, s in zip(self.bridges, encoder_state, strict=True)
        )
        if self.input_feeding:
            state += (ops.zeros_like(state[0]),)
        return state

    def constants(self, encoder_outputs, source_mask):
        """What stays fixed while decoding one source: the encoder states,
        their attention key projections (computed here, once) and the mask."""
        return (
            encoder_outputs,
            self.attention.project_keys(encoder_outputs),
            source_mask,
        )

    def step(self, tokens, state, constants, training=False):
        """One decoding step: `(logits, attention_weights, new_state)`.

        Args:
            tokens: int `(batch_size,)`, the previous output token.
            state: tuple from `initial_state` or the previous `step`.
            constants: tuple from `constants`.

        Returns:
            float32 logits `(batch_size, vocab_size)`, attention weights
            `(batch_size, Ts)`, and the new state tuple.
        """
        gates = self._embedding_gates(self.embedding(tokens), training)
        features, weights, state = self._step_core(
            gates, state, constants, training
        )
        return self._logits(features, training), weights, state

    # ---- teacher forcing -------------------------------------------------

    def call(
        self,
        target_in_tokens,
        encoder_outputs,
        source_mask=None,
        encoder_state=None,
        training=None,
    ):
        if source_mask is None:
            source_mask = ops.ones(ops.shape(encoder_outputs)[:2], "bool")
        if encoder_state is None:
            raise ValueError(
                "AttentionDecoder: `encoder_state` is required (the encoder's "
                "final states, from which the initial state is computed)."
            )
        state = self.initial_state(encoder_state)
        constants = self.constants(encoder_outputs, source_mask)
        # (B, T, gates): the embedding's share of the gates, for all steps.
        gates = self._embedding_gates(
            self.embedding(target_in_tokens), training
        )
        gates = ops.moveaxis(gates, 1, 0)  # time-major for the loop
        # `ops.scan` on the TensorFlow backend requires the per-step outputs
        # to have the structure and shapes of the carry, so every loop below
        # returns its whole carry as its output, and the carry holds the
        # step's outputs.
        if self.style == "luong" and not self.input_feeding:
            # The RNN does not depend on the attention: run it alone, then
            # attend from all target positions at once.
            def rnn_step(carry, gates_t):
                _, carry = recurrence.step(
                    self.cell, self.cell_kind, gates_t, carry
                )
                return carry, carry

            _, history = ops.scan(rnn_step, state, gates)
            hidden = ops.moveaxis(history[0], 0, 1)  # h of every step
            context, weights = self.attention.attend(
                hidden,
                constants[0],
                constants[1],
                value_mask=constants[2],
                training=training,
            )
            features = self.attentional_dense(
                ops.concatenate([context, hidden], axis=-1)
            )
        else:
            # The attention's dropout for every step, drawn before the loop:
            # on JAX a seed generator cannot advance inside `ops.scan`.
            dropout_masks = self.attention.dropout_mask(
                (ops.shape(gates)[0], *ops.shape(encoder_outputs)[:2]),
                training,
            )

            def decoder_step(carry, inputs):
                gates_t, mask_t = (
                    (inputs, None) if dropout_masks is None else inputs
                )
                carry = self._step_core(
                    gates_t, carry[2], constants, training, mask_t
                )
                return carry, carry

            batch = ops.shape(encoder_outputs)[0]
            features_dim = self.units
            if self.style == "bahdanau":
                features_dim += encoder_outputs.shape[-1]
            init = (
                ops.zeros((batch, features_dim), self.compute_dtype),
                ops.zeros(ops.shape(encoder_outputs)[:2], self.compute_dtype),
                state,
            )
            steps = gates if dropout_masks is None else (gates, dropout_masks)
            _, (features, weights, _) = ops.scan(decoder_step, init, steps)
            features = ops.moveaxis(features, 0, 1)
            weights = ops.moveaxis(weights, 0, 1)
        return self._logits(features, training), weights

    def compute_output_spec(
        self,
        target_in_tokens,
        encoder_outputs,
        source_mask=None,
        encoder_state=None,
        training=None,
    ):
        batch, length = target_in_tokens.shape
        return (
            keras.KerasTensor((batch, length, self.vocab_size), "float32"),
            keras.KerasTensor(
                (batch, length, encoder_outputs.shape[1]), self.compute_dtype
            ),
        )

    # ---- shared pieces ----------------------------------------------------

    def _embedding_gates(self, embedded, training):
        embedded = self.dropout_layer(embedded, training=training)
        gates = recurrence.partial_projection(self.cell, embedded, 0)
        if self.cell.use_bias:
            gates = gates + recurrence.input_bias(self.cell)
        return gates

    def _step_core(self, gates, state, constants, training, dropout_mask=None):
        """From the embedding's gates and the state to the features that the
        output layer turns into logits. `dropout_mask`: the attention's
        dropout for this step, drawn ahead (see `BaseAttention.dropout_mask`).
        """
        encoder_outputs, keys, source_mask = constants
        n = recurrence.state_size(self.cell_kind)
        if self.style == "bahdanau":
            context, weights = self.attention.attend(
                state[0],
                encoder_outputs,
                keys,
                value_mask=source_mask,
                training=training,
                dropout_mask=dropout_mask,
            )
            gates = gates + recurrence.partial_projection(
                self.cell, context, self.embedding_dim
            )
            h, state = recurrence.step(self.cell, self.cell_kind, gates, state)
            return ops.concatenate([h, context], axis=-1), weights, state
        if self.input_feeding:
            gates = gates + recurrence.partial_projection(
                self.cell, state[n], self.embedding_dim
            )
        h, rnn_state = recurrence.step(
            self.cell, self.cell_kind, gates, state[:n]
        )
        context, weights = self.attention.attend(
            h,
            encoder_outputs,
            keys,
            value_mask=source_mask,
            training=training,
            dropout_mask=dropout_mask,
        )
        attentional = self.attentional_dense(
            ops.concatenate([context, h], axis=-1)
        )
        if self.input_feeding:
            rnn_state = (*rnn_state, attentional)
        return attentional, weights, rnn_state

    def _logits(self, features, training):
        features = self.dropout_layer(features, training=training)
        return ops.cast(self.output_dense(features), "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "attention": keras.saving.serialize_keras_object(
                    self.attention
                ),
                "style": self.style,
                "cell": self.cell_kind,
                "input_feeding": self.input_feeding,
                "dropout": self.dropout,
            }
        )
        return config
