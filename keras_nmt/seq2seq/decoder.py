import keras
from keras import ops

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import BaseAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from keras_nmt.layers import random_draws
from keras_nmt.seq2seq import recurrence
from keras_nmt.seq2seq.options import ATTENTIONS
from keras_nmt.seq2seq.options import CELLS
from keras_nmt.seq2seq.options import STYLES
from keras_nmt.seq2seq.options import check_choice
from keras_nmt.seq2seq.options import check_coverage_attention
from keras_nmt.seq2seq.options import check_decoder_options
from keras_nmt.seq2seq.options import is_monotonic
from keras_nmt.seq2seq.scan import time_scan


def get_attention(attention, units, name="attention", use_coverage=False):
    """An attention layer from its name (see `ATTENTIONS`) or an instance.

    `use_coverage` goes to a `BahdanauAttention` made from its name."""
    if isinstance(attention, BaseAttention):
        return attention
    if attention == "bahdanau":
        return BahdanauAttention(units, use_coverage=use_coverage, name=name)
    if attention == "dot":
        return DotProductAttention(name=name)
    if attention == "general":
        return DotProductAttention(score="general", name=name)
    if attention == "scaled_dot":
        return ScaledDotProductAttention(name=name)
    raise ValueError(
        f"`attention` must be one of {ATTENTIONS} or an attention layer "
        "instance (BahdanauAttention, DotProductAttention, "
        f"ScaledDotProductAttention, ...). Received: attention={attention!r}."
    )


@keras.saving.register_keras_serializable(package="keras_nmt")
class AttentionDecoder(keras.layers.Layer):
    """RNN decoder that attends over all encoder states at every step.

    Two styles (any attention layer can score):

    - `style="bahdanau"` (Bahdanau et al., 2014): the *previous* decoder
      state `s_{t-1}` scores every encoder state; the softmax-weighted sum is
      the context `c_t`; `[embedding(y_{t-1}); c_t]` is the RNN's input;
      the logits come from `[s_t; c_t]`, or, with `readout_units`, from
      the deep output below.
    - `style="luong"` (Luong et al., 2015): the RNN steps first; its *new*
      state `h_t` scores the encoder states; the attentional vector
      `h~_t = tanh(W_c [c_t; h_t])` gives the logits (or, with
      `attentional="residual"`, `h~_t = LayerNorm(h_t + W_c c_t)`). With
      `input_feeding=True`, `h~_{t-1}` joins the next step's input. Without
      it (and without coverage or monotonic attention), the RNN runs over
      the whole target first and the attention is one batched call over all
      target positions.

    Teacher forcing (`call`) and the one-token `step` used for inference
    compute the same logits. The attention layers' key projections (e.g.
    `W_k h` of Bahdanau) are computed once per source (`constants`), never
    per step, and the input half of the RNN gates for all target positions
    is one matmul outside the time loop.

    The options of TensorFlow Addons' `AttentionWrapper` and of the NMT
    toolkits, all off by default (the default decoder computes exactly what
    it did without them):

    - **Several attention mechanisms** (`extra_attention`): each one attends
      from the same query over the encoder states; their contexts are
      concatenated (`attention`'s first) wherever the context goes.
    - **Stacked RNN layers** (`layers`): the recurrent part is `layers` cells
      on top of each other, each fed the hidden state of the one below. As
      in an `AttentionWrapper` around a stack of cells, the context (or the
      attentional vector) enters the *first* layer's input and the *top*
      layer's state is the query and reaches the output layer. Every layer
      starts from its own `tanh(W s)` of the encoder's final states.
    - **Attention layer size** (`attention_layer_size`, Luong style): the
      width of `h~_t`, independent of `units`.
    - **Residual attentional vector** (`attentional="residual"`, Luong
      style): `h~_t = LayerNorm(h_t + W_c c_t)` instead of Luong et al.'s
      `tanh(W_c [c_t; h_t])` (eq. 5): the RNN output reaches the logits
      through a residual connection and a layer normalisation (Ba et al.,
      2016), as in the Transformer's sublayers and the TensorFlow NMT
      tutorial's decoder. Measured here (`benchmarks/quality.py`, README),
      it learns about twice as fast in the first thousand steps: the tanh
      form starts near the unigram distribution and leaves it slowly.
    - **Output attention** (`output_attention`, Luong style): the output
      layer reads `h~_t` (True) or the RNN output `h_t` (False; `h~_t` then
      only feeds the next step, so `input_feeding=True` is required).
    - **Coverage** (`coverage`; Tu et al., 2016, "Modeling coverage for
      neural machine translation"; See, Liu and Manning, 2017, "Get to the
      point"): the decoder carries `c_t = sum_{t' < t} a_{t'}`, the sum of
      the previous steps' attention weights, and `attention` (a
      `BahdanauAttention`) scores with it: `v . tanh(W_q q + W_k k + w_c c)`.
      With `coverage_loss_weight > 0`, training adds the coverage loss
      (See et al., eq. 12) `weight * sum_i min(a_i^t, c_i^t)`, averaged over
      the non-padding target tokens, with `add_loss`.
    - **Monotonic attention** (e.g. `keras_nmt.layers.
      BahdanauMonotonicAttention`): a layer whose class sets
      `requires_previous_alignment = True` gets the previous step's
      alignment at every step (`initial_alignment` before the first one);
      the decoder carries it in its state.
    - **Deep output** (`readout_units`, Bahdanau style; Bahdanau, Cho and
      Bengio, 2014, appendix A.2.2): a readout
      `t~_t = U_o s_t + V_o E y_{t-1} + C_o c_t` (one Dense of
      `2 * readout_units` over `[s_t; c_t; E y_{t-1}]`), maxout over
      adjacent pairs, `t_t,j = max(t~_t,2j-1, t~_t,2j)`, then the logits
      `W_o t_t`. The appendix writes `s_{i-1}`, its equation (4) and
      Nematus (dl4mt) use the new state `s_i`: this is `s_t` here, the state
      after the step that read `y_{t-1}` and `c_t`, the one the output layer
      reads without the option.
    - **Scheduled sampling** (`scheduled_sampling`; Bengio et al., 2015): in
      training, each target position after the first is fed, with that
      probability, the model's own previous prediction (the argmax of the
      previous step's logits) instead of the gold token, inside the compiled
      time loop. The probability is a non-trainable variable,
      `sampling_probability`, that `keras_nmt.seq2seq.model.
      ScheduledSampling` can set per epoch; the mode exists only for a
      decoder made with `scheduled_sampling > 0` (with 0, training is plain
      teacher forcing and runs as fast).

    The state that `initial_state` returns and `step` passes on is a flat
    tuple: the states of layer 1 (`(h, c)` of an LSTM, `(h,)` of a GRU),
    then those of layers 2 to `layers`; then `h~_{t-1}` with input feeding;
    then the coverage `(batch_size, Ts)` (float32) with `coverage=True`;
    then one alignment `(batch_size, Ts)` (float32) per monotonic mechanism.
    The default LSTM decoder's state is `(h, c)`.

    Args:
        vocab_size: int, target vocabulary size (including padding 0).
        embedding_dim: int, size of the target token embeddings.
        units: int, size of the decoder RNN state (every layer).
        attention: `"bahdanau"`, `"dot"`, `"general"`, `"scaled_dot"`, or an
            attention layer instance. `"dot"` and `"scaled_dot"` need encoder
            states of size `units`.
        style: `"bahdanau"` or `"luong"`.
        cell: `"lstm"` or `"gru"`.
        input_feeding: bool, Luong style only.
        dropout: float in `[0, 1)`, dropout on the embeddings and on the
            features before the output layer (before the readout, with
            `readout_units`), in training.
        extra_attention: tuple of further attention names or layer instances
            (never a bare name: `("general",)`), each attending alongside
            `attention`. Default `()`.
        attention_layer_size: int, Luong style: the width of the attentional
            vector `h~_t`. Default None: `units`.
        output_attention: bool, Luong style: the output layer reads `h~_t`
            (True, default) or `h_t` (False, needs `input_feeding=True`).
        layers: int >= 1, number of stacked RNN layers. Default 1.
        coverage: bool, carry the coverage and score with it; needs
            `attention="bahdanau"` or a `BahdanauAttention(...,
            use_coverage=True)`. Default False.
        coverage_loss_weight: float >= 0, weight of the coverage loss added
            in training (needs `coverage=True`). Default 0: no loss.
        scheduled_sampling: float in `[0, 1]`, the probability of feeding
            the model's own prediction in training. Default 0: off.
        seed: optional int, seed of the scheduled sampling's draws.
        readout_units: int >= 1, Bahdanau style: the deep output with that
            many maxout units between `[s_t; c_t; E y_{t-1}]` and the
            logits. Default None: the logits read `[s_t; c_t]`.
        attentional: `"tanh"` (default, Luong et al.'s `tanh(W_c [c_t;
            h_t])`) or `"residual"` (`LayerNorm(h_t + W_c c_t)`), Luong
            style.
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
        and `(batch_size, Tt, Ts)`, the weights of `attention`.

    Raises:
        ValueError: for an unknown name, an option of the other style, or an
            attention that cannot take the coverage; the message says which
            argument to change.
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
        extra_attention=(),
        attention_layer_size=None,
        output_attention=True,
        layers=1,
        coverage=False,
        coverage_loss_weight=0.0,
        scheduled_sampling=0.0,
        seed=None,
        readout_units=None,
        attentional="tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("AttentionDecoder", "cell", cell, CELLS)
        check_choice("AttentionDecoder", "style", style, STYLES)
        check_decoder_options(
            style,
            input_feeding,
            extra_attention,
            attention_layer_size,
            output_attention,
            layers,
            coverage,
            coverage_loss_weight,
            scheduled_sampling,
            readout_units,
            attentional,
        )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.style = style
        self.cell_kind = cell
        self.input_feeding = bool(input_feeding)
        self.dropout = dropout
        self.attention_layer_size = attention_layer_size
        self.output_attention = bool(output_attention)
        # Not `self.layers`: Keras' `summary(expand_nested=True)` reads an
        # attribute of that name as a list of nested layers.
        self.num_layers = int(layers)
        self.coverage = bool(coverage)
        self.coverage_loss_weight = float(coverage_loss_weight)
        self.scheduled_sampling = float(scheduled_sampling)
        self.seed = seed
        self.readout_units = readout_units
        self.attentional = attentional
        self.attention = get_attention(
            _deserialize(attention), units, use_coverage=self.coverage
        )
        self.extra_attention = [
            get_attention(_deserialize(a), units, name=f"attention_{i}")
            for i, a in enumerate(extra_attention, start=2)
        ]
        check_coverage_attention(
            self.coverage, self.attention, self.extra_attention
        )
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, dtype=self.dtype_policy, name="embedding"
        )
        cell_class = (
            keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        )
        self.cell = cell_class(units, dtype=self.dtype_policy, name="cell")
        self.upper_cells = [
            cell_class(units, dtype=self.dtype_policy, name=f"cell_{layer}")
            for layer in range(2, self.num_layers + 1)
        ]
        self.bridges = [
            self._bridge(f"bridge_{i}")
            for i in range(recurrence.state_size(cell))
        ]
        self.upper_bridges = [
            self._bridge(f"bridge_{layer}_{i}")
            for layer in range(2, self.num_layers + 1)
            for i in range(recurrence.state_size(cell))
        ]
        self.attentional_dense = self.attentional_norm = None
        if style == "luong":
            self.attentional_dense = keras.layers.Dense(
                self._attentional_size(),
                activation="tanh" if attentional == "tanh" else None,
                use_bias=False,
                dtype=self.dtype_policy,
                name="attentional",
            )
        if style == "luong" and attentional == "residual":
            self.attentional_norm = keras.layers.LayerNormalization(
                dtype=self.dtype_policy, name="attentional_norm"
            )
        # None without the option: the weights of a decoder without it are
        # those it had before the option existed.
        self.readout_dense = None
        if readout_units is not None:
            self.readout_dense = keras.layers.Dense(
                2 * readout_units, dtype=self.dtype_policy, name="readout"
            )
        self.output_dense = keras.layers.Dense(
            vocab_size, dtype=self.dtype_policy, name="logits"
        )
        self.dropout_layer = random_draws.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.sampling_seed_generator = None
        if self.scheduled_sampling > 0:
            self.sampling_seed_generator = keras.random.SeedGenerator(seed)

    def _bridge(self, name):
        return keras.layers.Dense(
            self.units, activation="tanh", dtype=self.dtype_policy, name=name
        )

    def _attentional_size(self):
        return self.attention_layer_size or self.units

    def _attentions(self):
        return [self.attention, *self.extra_attention]

    def build(
        self,
        target_in_tokens_shape,
        encoder_outputs_shape,
        source_mask_shape=None,
        encoder_state_shape=None,
    ):
        encoder_dim = encoder_outputs_shape[-1]
        # Every mechanism attends over the encoder states: one context of
        # `encoder_dim` each, concatenated.
        context_dim = encoder_dim * len(self._attentions())
        self.embedding.build(target_in_tokens_shape)
        extra = {"bahdanau": context_dim, "luong": 0}[self.style]
        if self.input_feeding:
            extra = self._attentional_size()
        self.cell.build((None, self.embedding_dim + extra))
        for cell in self.upper_cells:
            cell.build((None, self.units))
        for attention in self._attentions():
            if not attention.built:  # a deserialised attention comes built
                attention.build((None, self.units), (None, None, encoder_dim))
        state_dims = (
            [shape[-1] for shape in encoder_state_shape]
            if encoder_state_shape is not None
            else [encoder_dim] * len(self.bridges)
        )
        for bridge, dim in zip(
            self.bridges + self.upper_bridges,
            state_dims * self.num_layers,
            strict=True,
        ):
            bridge.build((None, dim))
        if self.style == "luong":
            if self.attentional_norm is None:
                self.attentional_dense.build((None, context_dim + self.units))
            else:
                self.attentional_dense.build((None, context_dim))
                self.attentional_norm.build((None, self.units))
            self.output_dense.build(
                (
                    None,
                    self._attentional_size()
                    if self.output_attention
                    else self.units,
                )
            )
        elif self.readout_dense is not None:
            self.readout_dense.build(
                (None, self.units + context_dim + self.embedding_dim)
            )
            self.output_dense.build((None, self.readout_units))
        else:
            self.output_dense.build((None, self.units + context_dim))
        if self.scheduled_sampling > 0:
            self.sampling_probability = self.add_weight(
                name="sampling_probability",
                shape=(),
                initializer=keras.initializers.Constant(
                    self.scheduled_sampling
                ),
                dtype="float32",
                trainable=False,
                autocast=False,
            )

    # ---- inference API ----------------------------------------------------

    def initial_state(self, encoder_state, source_mask=None):
        """The decoder state before the first token (a tuple, for `step`).

        `tanh(W s)` of the encoder's final states for every layer, a zero
        attentional vector with input feeding, a zero coverage and the
        monotonic mechanisms' `initial_alignment`. These last two have one
        entry per source position: they need `source_mask`, bool
        `(batch_size, Ts)`.
        """
        state = ()
        bridges = self.bridges + self.upper_bridges
        n = len(self.bridges)
        for layer in range(self.num_layers):
            state += tuple(
                bridge(s)
                for bridge, s in zip(
                    bridges[layer * n : (layer + 1) * n],
                    encoder_state,
                    strict=True,
                )
            )
        if self.input_feeding:
            if self._attentional_size() == self.units:
                state += (ops.zeros_like(state[0]),)
            else:
                shape = (ops.shape(state[0])[0], self._attentional_size())
                state += (ops.zeros(shape, state[0].dtype),)
        monotonic = [a for a in self._attentions() if is_monotonic(a)]
        if not (self.coverage or monotonic):
            return state
        if source_mask is None:
            raise ValueError(
                "AttentionDecoder.initial_state: a decoder with coverage or "
                "monotonic attention carries one value per source position "
                "and needs `source_mask`, bool (batch_size, Ts). Call "
                "`initial_state(encoder_state, source_mask)`."
            )
        if self.coverage:
            state += (ops.zeros_like(source_mask, dtype="float32"),)
        batch, length = ops.shape(source_mask)[0], ops.shape(source_mask)[1]
        for attention in monotonic:
            alignment = attention.initial_alignment(batch, length)
            state += (ops.cast(alignment, "float32"),)
        return state

    def constants(self, encoder_outputs, source_mask):
        """What stays fixed while decoding one source: the encoder states,
        the attention key projections (computed here, once), the mask, and
        the key projections of `extra_attention`."""
        return (
            encoder_outputs,
            self.attention.project_keys(encoder_outputs),
            source_mask,
            *(a.project_keys(encoder_outputs) for a in self.extra_attention),
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
        embedded = self.embedding(tokens)
        gates = self._embedding_gates(embedded, training)
        features, weights, state = self._step_core(
            gates, state, constants, training
        )
        features = self._readout_input(features, embedded)
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
        state = self.initial_state(encoder_state, source_mask)
        constants = self.constants(encoder_outputs, source_mask)
        embedded = self.embedding(target_in_tokens)
        # (B, T, gates): the embedding's share of the gates, for all steps.
        gates = self._embedding_gates(embedded, training)
        gates = ops.moveaxis(gates, 1, 0)  # time-major for the loop
        if training and self.scheduled_sampling > 0:
            logits, weights, states = self._sampled_pass(
                gates, state, constants, training, embedded
            )
        else:
            if self._batched_attention():
                features, weights = self._batched_pass(
                    gates, state, constants, training
                )
                states = None
            else:
                features, weights, states = self._stepwise_pass(
                    gates, state, constants, training
                )
            # The readout reads the embedding of the previous token: the
            # decoder input at the same position.
            features = self._readout_input(features, embedded)
            logits = self._logits(features, training)
        if training and self.coverage_loss_weight > 0:
            self.add_loss(
                self._coverage_loss(weights, states, target_in_tokens)
            )
        return logits, weights

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

    # The time loops run with `time_scan` (`keras_nmt.seq2seq.scan`): on
    # TensorFlow a `while_loop` that XLA compiles with its gradient, so
    # that a `jit_compile=True` train step works; elsewhere `ops.scan`.
    # Like `ops.scan` on TensorFlow, it requires the per-step outputs to
    # have the structure and shapes of the carry, so every loop below
    # returns its whole carry as its output, and the carry holds the step's
    # outputs.

    def _batched_attention(self):
        """Whether the RNN can run alone, with one attention call after."""
        return (
            self.style == "luong"
            and not self.input_feeding
            and not self.coverage
            and not any(is_monotonic(a) for a in self._attentions())
        )

    def _batched_pass(self, gates, state, constants, training):
        """Luong style without input feeding: the RNN does not depend on the
        attention. Run it alone, then attend from all target positions at
        once."""

        def rnn_step(carry, gates_t):
            _, rnn = self._rnn_step(gates_t, self._split_state(carry)[0])
            carry = self._join_state(rnn, None, None, ())
            return carry, carry

        _, history = time_scan(rnn_step, state, gates)
        top = (self.num_layers - 1) * len(self.bridges)
        hidden = ops.moveaxis(history[top], 0, 1)  # top h of every step
        context, weights, _, _ = self._attend(
            hidden, constants, None, (), training
        )
        return self._attentional(context, hidden), weights

    def _stepwise_pass(self, gates, state, constants, training):
        """The time loop of `_step_core`; features, weights and the history
        of the state (time-major)."""
        names, drawn = self._draw_ahead(gates, constants, training)

        def decoder_step(carry, inputs):
            gates_t, drawn_t = inputs if drawn else (inputs, ())
            carry = self._step_core(
                gates_t,
                carry[2],
                constants,
                training,
                self._step_draws(names, drawn_t),
            )
            return carry, carry

        init = (
            ops.zeros(
                (ops.shape(gates)[1], self._features_dim(constants)),
                self.compute_dtype,
            ),
            ops.zeros(ops.shape(constants[0])[:2], self.compute_dtype),
            state,
        )
        steps = (gates, drawn) if drawn else gates
        _, (features, weights, states) = time_scan(decoder_step, init, steps)
        return ops.moveaxis(features, 0, 1), ops.moveaxis(weights, 0, 1), states

    def _sampled_pass(self, gates, state, constants, training, embedded):
        """Scheduled sampling: the time loop computes the logits, and feeds
        the argmax of step t-1's where the draw for step t says so (never at
        step 0, `[START]`). Every random draw happens before the loop (on
        JAX a seed generator cannot advance inside `ops.scan`). `embedded`:
        the embeddings of the gold tokens `(B, T, embedding_dim)`, which
        the readout (`readout_units`) reads where the gold token is fed."""
        steps, batch = ops.shape(gates)[0], ops.shape(gates)[1]
        generator = self.sampling_seed_generator
        draws = random_draws.uniform((steps, batch), seed=generator)
        probability = ops.cast(self.sampling_probability, "float32")
        sampled = ops.logical_and(
            ops.less(draws, probability),
            ops.expand_dims(ops.arange(steps) > 0, 1),
        )
        names, drawn = self._draw_ahead(gates, constants, training)
        features_dim = self._readout_input_dim(constants)
        embedding_mask = feature_mask = None
        if training and self.dropout > 0:
            ones = ops.ones((steps, batch, self.embedding_dim + features_dim))
            both = random_draws.dropout(ones, self.dropout, seed=generator)
            embedding_mask = both[..., : self.embedding_dim]
            feature_mask = both[..., self.embedding_dim :]
        extras = tuple(
            m for m in (embedding_mask, feature_mask) if m is not None
        )
        gold = ()
        if self.readout_dense is not None:
            gold = ops.moveaxis(embedded, 1, 0)

        def decoder_step(carry, inputs):
            logits, _, state = carry
            gates_t, sampled_t, drawn_t, extras_t, gold_t = inputs
            sampled_t = ops.expand_dims(sampled_t, 1)
            embedded = self.embedding(ops.argmax(logits, axis=-1))
            previous = embedded
            if extras_t:
                embedded = embedded * ops.cast(extras_t[0], embedded.dtype)
            own = self._gates(embedded)
            gates_t = ops.where(sampled_t, own, gates_t)
            features, weights, state = self._step_core(
                gates_t,
                state,
                constants,
                training,
                self._step_draws(names, drawn_t),
            )
            if self.readout_dense is not None:
                previous = ops.where(sampled_t, previous, gold_t)
                features = self._readout_input(features, previous)
            if extras_t:
                features = features * ops.cast(extras_t[1], features.dtype)
            logits = self._project(features)
            carry = (logits, weights, state)
            return carry, carry

        init = (
            ops.zeros((batch, self.vocab_size), "float32"),
            ops.zeros(ops.shape(constants[0])[:2], self.compute_dtype),
            state,
        )
        _, (logits, weights, states) = time_scan(
            decoder_step, init, (gates, sampled, drawn, extras, gold)
        )
        return ops.moveaxis(logits, 0, 1), ops.moveaxis(weights, 0, 1), states

    def _draw_ahead(self, gates, constants, training):
        """Every mechanism's randomness for every step, drawn before the
        loop (on JAX a seed generator cannot advance inside `ops.scan`): the
        attention dropout (`dropout_mask`) and a monotonic layer's
        pre-sigmoid noise (`noise`). Returns `(names, tensors)`: which
        mechanism and `attend` argument each tensor of `tensors` is for."""
        shape = (ops.shape(gates)[0], *ops.shape(constants[0])[:2])
        names, tensors = [], []
        for i, attention in enumerate(self._attentions()):
            draws = {"dropout_mask": attention.dropout_mask(shape, training)}
            if is_monotonic(attention) and hasattr(attention, "noise"):
                draws["noise"] = attention.noise(shape, training)
            for name, tensor in draws.items():
                if tensor is not None:
                    names.append((i, name))
                    tensors.append(tensor)
        return names, tuple(tensors)

    def _step_draws(self, names, tensors):
        """One step's slices of `_draw_ahead`, as `attend` arguments per
        mechanism."""
        draws = [{} for _ in self._attentions()]
        for (i, name), tensor in zip(names, tensors, strict=True):
            draws[i][name] = tensor
        return draws

    def _features_dim(self, constants):
        """Width of what `_step_core` returns: what the output layer reads
        without the readout."""
        if self.style == "luong":
            if self.output_attention:
                return self._attentional_size()
            return self.units
        encoder_dim = constants[0].shape[-1]
        return self.units + encoder_dim * len(self._attentions())

    def _readout_input_dim(self, constants):
        """Width of what `_logits` reads (the readout's input with
        `readout_units`)."""
        extra = self.embedding_dim if self.readout_dense is not None else 0
        return self._features_dim(constants) + extra

    def _coverage_loss(self, weights, states, target_in_tokens):
        """See et al. (2017), eq. 12: `sum_i min(a_i^t, c_i^t)` per target
        token, averaged over the non-padding ones, times the weight."""
        _, _, coverage, _ = self._split_state(states)
        # The coverage before step t: after step t - 1, zero before step 0.
        coverage = ops.moveaxis(coverage, 0, 1)
        coverage = ops.concatenate(
            [ops.zeros_like(coverage[:, :1]), coverage[:, :-1]], axis=1
        )
        per_token = ops.sum(
            ops.minimum(ops.cast(weights, "float32"), coverage), axis=-1
        )
        real = ops.cast(ops.not_equal(target_in_tokens, 0), "float32")
        total = ops.sum(per_token * real) / ops.maximum(ops.sum(real), 1.0)
        return self.coverage_loss_weight * total

    # ---- shared pieces ----------------------------------------------------

    def _gates(self, embedded):
        gates = recurrence.partial_projection(self.cell, embedded, 0)
        if self.cell.use_bias:
            gates = gates + recurrence.input_bias(self.cell)
        return gates

    def _embedding_gates(self, embedded, training):
        return self._gates(self.dropout_layer(embedded, training=training))

    def _split_state(self, state):
        """The flat state tuple as `(rnn, attentional, coverage,
        alignments)`: `rnn` a tuple of per-layer state tuples, the others
        None or `()` where the decoder has none."""
        n = len(self.bridges)
        rnn = tuple(
            tuple(state[i * n : (i + 1) * n]) for i in range(self.num_layers)
        )
        i = self.num_layers * n
        attentional = coverage = None
        if self.input_feeding:
            attentional, i = state[i], i + 1
        if self.coverage:
            coverage, i = state[i], i + 1
        return rnn, attentional, coverage, tuple(state[i:])

    def _join_state(self, rnn, attentional, coverage, alignments):
        state = tuple(s for layer in rnn for s in layer)
        if attentional is not None:
            state += (attentional,)
        if coverage is not None:
            state += (coverage,)
        return state + tuple(alignments)

    def _rnn_step(self, gates, rnn):
        """The stacked cells: `(top h, new per-layer states)`."""
        h, first = recurrence.step(self.cell, self.cell_kind, gates, rnn[0])
        new = [first]
        for cell, states in zip(self.upper_cells, rnn[1:], strict=True):
            gates = recurrence.partial_projection(cell, h, 0)
            if cell.use_bias:
                gates = gates + recurrence.input_bias(cell)
            h, states = recurrence.step(cell, self.cell_kind, gates, states)
            new.append(states)
        return h, tuple(new)

    def _attend(
        self, query, constants, coverage, alignments, training, draws=None
    ):
        """Every mechanism attends from `query`.

        `draws`: per mechanism, the `attend` arguments drawn ahead for this
        step (see `_draw_ahead`), or None. Returns `(context, weights,
        coverage, alignments)`: the contexts
        concatenated, the weights of `attention`, the coverage plus those
        weights (or None), and each monotonic mechanism's new alignment.
        """
        encoder_outputs, keys, source_mask, *extra_keys = constants
        alignments = list(alignments)
        contexts, new_alignments, weights = [], [], None
        for i, (attention, projected) in enumerate(
            zip(self._attentions(), (keys, *extra_keys), strict=True)
        ):
            options = {} if draws is None else dict(draws[i])
            if i == 0 and coverage is not None:
                options["coverage"] = coverage
            if is_monotonic(attention):
                options["previous_alignment"] = alignments.pop(0)
            context, mechanism_weights = attention.attend(
                query,
                encoder_outputs,
                projected,
                value_mask=source_mask,
                training=training,
                **options,
            )
            if is_monotonic(attention):
                new_alignments.append(ops.cast(mechanism_weights, "float32"))
            if i == 0:
                weights = mechanism_weights
            contexts.append(context)
        if coverage is not None:
            coverage = coverage + ops.cast(weights, "float32")
        if len(contexts) > 1:
            context = ops.concatenate(contexts, axis=-1)
        return (
            contexts[0] if len(contexts) == 1 else context,
            ops.cast(weights, self.compute_dtype),
            coverage,
            tuple(new_alignments),
        )

    def _step_core(self, gates, state, constants, training, draws=None):
        """From the embedding's gates and the state to the features that the
        output layer turns into logits. `draws`: each mechanism's dropout
        (and noise) for this step, drawn ahead (see `_draw_ahead`), or
        None."""
        rnn, attentional, coverage, alignments = self._split_state(state)
        if self.style == "bahdanau":
            context, weights, coverage, alignments = self._attend(
                rnn[-1][0], constants, coverage, alignments, training, draws
            )
            gates = gates + recurrence.partial_projection(
                self.cell, context, self.embedding_dim
            )
            h, rnn = self._rnn_step(gates, rnn)
            features = ops.concatenate([h, context], axis=-1)
            state = self._join_state(rnn, None, coverage, alignments)
            return features, weights, state
        if self.input_feeding:
            gates = gates + recurrence.partial_projection(
                self.cell, attentional, self.embedding_dim
            )
        h, rnn = self._rnn_step(gates, rnn)
        context, weights, coverage, alignments = self._attend(
            h, constants, coverage, alignments, training, draws
        )
        attentional = self._attentional(context, h)
        features = attentional if self.output_attention else h
        if not self.input_feeding:
            attentional = None
        state = self._join_state(rnn, attentional, coverage, alignments)
        return features, weights, state

    def _attentional(self, context, h):
        """Luong's attentional vector `h~_t` from the context(s) and the
        RNN output (any leading axes)."""
        if self.attentional_norm is None:
            return self.attentional_dense(ops.concatenate([context, h], -1))
        return self.attentional_norm(h + self.attentional_dense(context))

    def _readout_input(self, features, embedded):
        """`[s_t; c_t]` as it is without the readout, `[s_t; c_t; E
        y_{t-1}]` with it (`embedded`: the embedding of the token the step
        read, before dropout)."""
        if self.readout_dense is None:
            return features
        return ops.concatenate([features, embedded], axis=-1)

    def _project(self, features):
        """Float32 logits from the (dropped-out) features: the readout and
        its maxout over adjacent pairs first, with `readout_units`."""
        if self.readout_dense is not None:
            readout = self.readout_dense(features)
            features = ops.maximum(readout[..., 0::2], readout[..., 1::2])
        return ops.cast(self.output_dense(features), "float32")

    def _logits(self, features, training):
        features = self.dropout_layer(features, training=training)
        return self._project(features)

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
                "extra_attention": [
                    keras.saving.serialize_keras_object(a)
                    for a in self.extra_attention
                ],
                "attention_layer_size": self.attention_layer_size,
                "output_attention": self.output_attention,
                "layers": self.num_layers,
                "coverage": self.coverage,
                "coverage_loss_weight": self.coverage_loss_weight,
                "scheduled_sampling": self.scheduled_sampling,
                "seed": self.seed,
                "readout_units": self.readout_units,
                "attentional": self.attentional,
            }
        )
        return config


def _deserialize(attention):
    if isinstance(attention, dict):  # from get_config
        return keras.saving.deserialize_keras_object(attention)
    return attention
