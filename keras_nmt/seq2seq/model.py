import keras

from keras_nmt.seq2seq.decoder import AttentionDecoder
from keras_nmt.seq2seq.encoder import Encoder


def build_seq2seq(
    source_vocab_size: int,
    target_vocab_size: int,
    *,
    embedding_dim: int = 256,
    units: int = 256,
    attention="bahdanau",
    style: str = "bahdanau",
    cell: str = "lstm",
    input_feeding: bool = False,
    dropout: float = 0.0,
    extra_attention: tuple = (),
    attention_layer_size: int | None = None,
    output_attention: bool = True,
    layers: int = 1,
    coverage: bool = False,
    coverage_loss_weight: float = 0.0,
    scheduled_sampling: float = 0.0,
    seed: int | None = None,
    readout_units: int | None = None,
    encoder_layers: int = 1,
    attentional: str = "tanh",
    name: str = "seq2seq",
) -> keras.Model:
    """An attention encoder-decoder as a functional `keras.Model`.

    Inputs `(source_tokens, target_in_tokens)`, int, 0 = padding; output the
    logits `(batch, T_target, target_vocab_size)`. Train it with teacher
    forcing on a dataset of `((source, target_in), target_out)`, e.g. with
    `compile_seq2seq`. The encoder is a bidirectional LSTM/GRU whose states
    (`units // 2` per direction) all reach the decoder; its final states
    initialise the decoder (with `encoder_layers > 1`, stacked
    bidirectional layers, the top one's). The layers are named `"encoder"`
    and `"decoder"` (see `attention_model` and
    `keras_nmt.seq2seq.Seq2SeqInference`).

    The options from `extra_attention` on are those of `AttentionDecoder`
    (TensorFlow Addons' `AttentionWrapper` options, coverage, scheduled
    sampling), all off by default; see its docstring for the details.

    Args:
        source_vocab_size: int, source vocabulary size (with padding 0).
        target_vocab_size: int, target vocabulary size (with padding 0).
        embedding_dim: int, size of the token embeddings (both sides).
        units: int, even; decoder state size and encoder output size.
        attention: `"bahdanau"`, `"dot"`, `"general"`, `"scaled_dot"` or an
            attention layer instance.
        style: `"bahdanau"` or `"luong"` (see `AttentionDecoder`).
        cell: `"lstm"` or `"gru"`, for encoder and decoder.
        input_feeding: bool, Luong style only.
        dropout: float in `[0, 1)`.
        extra_attention: tuple of further attention names or layers whose
            contexts are concatenated to `attention`'s.
        attention_layer_size: int, Luong style: width of the attentional
            vector (default None: `units`).
        output_attention: bool, Luong style: the logits read the attentional
            vector (True) or the RNN output (False, with input feeding).
        layers: int, number of stacked decoder RNN layers.
        coverage: bool, the decoder carries the coverage and Bahdanau
            attention scores with it (See et al., 2017).
        coverage_loss_weight: float >= 0, weight of the coverage loss added
            in training (with `coverage=True`).
        scheduled_sampling: float in `[0, 1]`, the probability of feeding the
            model's own previous prediction in training (see
            `ScheduledSampling` for a schedule).
        seed: optional int, seed of the scheduled sampling.
        readout_units: int, Bahdanau style: the deep output (Bahdanau et
            al., 2014, appendix A.2.2), a maxout readout of that many units
            over `[s_t; c_t; E y_{t-1}]` before the logits. Default None:
            the logits read `[s_t; c_t]`.
        encoder_layers: int, number of stacked bidirectional encoder
            layers (dropout between them); the decoder starts from the top
            layer's final states. Default 1.
        attentional: Luong style: the attentional vector, `"tanh"`
            (default; Luong et al.'s `tanh(W_c [c_t; h_t])`) or
            `"residual"` (`LayerNorm(h_t + W_c c_t)`, which learns faster;
            see `AttentionDecoder`).
        name: model name.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> model = build_seq2seq(1000, 1200, embedding_dim=32, units=64,
    ...                       attention="general", style="luong")
    >>> model.output_shape
    (None, None, 1200)
    """
    source = keras.Input((None,), dtype="int32", name="source_tokens")
    target_in = keras.Input((None,), dtype="int32", name="target_in_tokens")
    encoder = Encoder(
        source_vocab_size,
        embedding_dim,
        units,
        cell=cell,
        dropout=dropout,
        layers=encoder_layers,
        name="encoder",
    )
    decoder = AttentionDecoder(
        target_vocab_size,
        embedding_dim,
        units,
        attention=attention,
        style=style,
        cell=cell,
        input_feeding=input_feeding,
        dropout=dropout,
        extra_attention=extra_attention,
        attention_layer_size=attention_layer_size,
        output_attention=output_attention,
        layers=layers,
        coverage=coverage,
        coverage_loss_weight=coverage_loss_weight,
        scheduled_sampling=scheduled_sampling,
        seed=seed,
        readout_units=readout_units,
        attentional=attentional,
        name="decoder",
    )
    encoder_outputs, source_mask, encoder_state = encoder(source)
    logits, _ = decoder(target_in, encoder_outputs, source_mask, encoder_state)
    return keras.Model([source, target_in], logits, name=name)


def attention_model(model: keras.Model) -> keras.Model:
    """A model sharing `model`'s weights that outputs the attention weights
    `(batch, T_target, T_source)` of a teacher-forced pass."""
    decoder = model.get_layer("decoder")
    return keras.Model(model.inputs, decoder.output[1], name="attention")


@keras.saving.register_keras_serializable(package="keras_nmt")
class MaskedAccuracy(keras.metrics.Mean):
    """Token accuracy over non-padding targets (`y_true != 0`).

    Keras' accuracy metrics have no `ignore_class` (its losses do), and the
    padding of a batch of sentences would otherwise count as correct or
    wrong predictions.
    """

    def __init__(self, name="accuracy", pad_token=0, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_token = pad_token

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
        weight = keras.ops.cast(
            keras.ops.not_equal(y_true, self.pad_token), "float32"
        )
        if sample_weight is not None:
            weight = weight * keras.ops.cast(sample_weight, "float32")
        matches = keras.ops.cast(keras.ops.equal(y_true, predicted), "float32")
        return super().update_state(matches, sample_weight=weight)

    def get_config(self):
        return {**super().get_config(), "pad_token": self.pad_token}


def compile_seq2seq(
    model,
    optimizer="adam",
    learning_rate=None,
    label_smoothing: float = 0.0,
    **kwargs,
):
    """Compiles `model` with a padding-aware loss and accuracy.

    The loss is the token cross-entropy from logits averaged over the
    non-padding target tokens (`keras_nmt.seq2seq.SmoothedCrossEntropy`:
    with `label_smoothing=0`, exactly Keras'
    `SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`); the
    metric is `MaskedAccuracy`. Extra keyword arguments go to
    `model.compile`.
    """
    from keras_nmt.seq2seq.losses import SmoothedCrossEntropy

    optimizer = keras.optimizers.get(optimizer)
    if learning_rate is not None:
        optimizer.learning_rate = learning_rate
    if label_smoothing:
        loss = SmoothedCrossEntropy(label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        )
    model.compile(
        optimizer=optimizer, loss=loss, metrics=[MaskedAccuracy()], **kwargs
    )
    return model


class ScheduledSampling(keras.callbacks.Callback):
    """Sets the scheduled-sampling probability at the start of every epoch.

    Bengio, Vinyals, Jaitly and Shazeer, 2015, "Scheduled sampling for
    sequence prediction with recurrent neural networks": the probability of
    feeding the model its own previous prediction instead of the gold token
    usually grows during training. `schedule(epoch)` (epochs count from 0)
    gives it; the callback writes it into the `sampling_probability`
    variable of every `AttentionDecoder` of the model, which the compiled
    training step reads.

    Only a decoder made with `scheduled_sampling > 0` (e.g.
    `build_seq2seq(..., scheduled_sampling=1.0)`) has the mode and the
    variable; the constructor's value holds until the first epoch starts.

    Args:
        schedule: callable `epoch -> float in [0, 1]`.

    Example:

    >>> model = build_seq2seq(30, 30, embedding_dim=8, units=8,
    ...                       scheduled_sampling=1.0)
    >>> ramp = ScheduledSampling(lambda epoch: min(0.25, 0.05 * epoch))
    >>> # model.fit(..., callbacks=[ramp])
    """

    def __init__(self, schedule):
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                "ScheduledSampling: `schedule` must be a callable from the "
                "epoch (from 0) to a probability in [0, 1]. Received: "
                f"schedule={schedule!r}."
            )
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        probability = float(self.schedule(epoch))
        if not 0.0 <= probability <= 1.0:
            raise ValueError(
                "ScheduledSampling: the schedule must give probabilities in "
                f"[0, 1]. Received {probability!r} for epoch {epoch}."
            )
        decoders = _sampling_decoders(self.model)
        if not decoders:
            raise ValueError(
                "ScheduledSampling: the model has no AttentionDecoder with "
                "scheduled sampling. Build it with `scheduled_sampling` > 0 "
                "(e.g. build_seq2seq(..., scheduled_sampling=1.0)); the "
                "callback then sets the probability every epoch."
            )
        for decoder in decoders:
            decoder.sampling_probability.assign(probability)


def _sampling_decoders(model):
    """The built `AttentionDecoder`s with scheduled sampling in `model`,
    nested models included."""
    found, pending = [], list(model.layers)
    while pending:
        layer = pending.pop()
        if isinstance(layer, keras.Model):
            pending.extend(layer.layers)
        elif (
            isinstance(layer, AttentionDecoder)
            and layer.scheduled_sampling > 0
            and layer.built
        ):
            found.append(layer)
    return found
