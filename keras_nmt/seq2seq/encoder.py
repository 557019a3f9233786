import keras
from keras import ops

from keras_nmt.layers import random_draws
from keras_nmt.seq2seq.options import CELLS
from keras_nmt.seq2seq.options import check_choice
from keras_nmt.seq2seq.options import check_encoder_layers


@keras.saving.register_keras_serializable(package="keras_nmt")
class Encoder(keras.layers.Layer):
    """Bidirectional RNN encoder that passes *all* its hidden states.

    Embeds the source tokens (`mask_zero=True`: token 0 is padding), runs a
    bidirectional LSTM or GRU over them and returns every hidden state (the
    forward and backward states concatenated, `units` per position) for the
    decoder to attend to, the source mask, and the final states of both
    directions concatenated (one `(batch, units)` tensor per state of the
    cell: `[h, c]` for an LSTM, `[h]` for a GRU), from which the decoder
    computes its initial state.

    With `layers > 1` the bidirectional RNNs are stacked: each layer reads
    the concatenated states of the one below (after dropout, in training);
    the top layer's states are the outputs and its final states are
    `final_state`. (The decoder starts every one of its layers from its own
    projection of that top final state, whatever the number of layers on
    either side.) One layer (the default) is the encoder without the option,
    weights included.

    Args:
        vocab_size: int, source vocabulary size (including padding 0).
        embedding_dim: int, size of the token embeddings.
        units: int, even; size of the returned states (`units // 2` per
            direction).
        cell: `"lstm"` or `"gru"`.
        dropout: float in `[0, 1)`, dropout on the embeddings and between
            stacked layers, in training.
        layers: int >= 1, number of stacked bidirectional RNN layers.
            Default 1.
        **kwargs: standard layer keyword arguments.

    Call arguments:
        source_tokens: int `(batch_size, Ts)`, 0 = padding.
        training: bool.

    Returns:
        `(outputs, source_mask, final_state)`: `outputs` `(batch_size, Ts,
        units)`, `source_mask` bool `(batch_size, Ts)`, `final_state` a list of
        `(batch_size, units)` tensors.

    Example:

    >>> import numpy as np
    >>> encoder = Encoder(vocab_size=50, embedding_dim=8, units=16)
    >>> outputs, mask, state = encoder(np.array([[5, 6, 7, 0]]))
    >>> tuple(outputs.shape), len(state)
    ((1, 4, 16), 2)
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim,
        units,
        cell="lstm",
        dropout=0.0,
        layers=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("Encoder", "cell", cell, CELLS)
        check_encoder_layers(layers)
        if units % 2:
            raise ValueError(
                "Encoder: `units` must be even (units // 2 per direction of "
                f"the bidirectional RNN). Received: units={units}."
            )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.dropout = dropout
        # Not `self.layers` (see AttentionDecoder).
        self.num_layers = int(layers)
        self.embedding = keras.layers.Embedding(
            vocab_size,
            embedding_dim,
            mask_zero=True,
            dtype=self.dtype_policy,
            name="embedding",
        )
        # The first layer keeps the attribute and name it had before the
        # option, so that saved one-layer encoders still load.
        self.rnn = self._bidirectional("bidirectional")
        self.upper_rnns = [
            self._bidirectional(f"bidirectional_{layer}")
            for layer in range(2, self.num_layers + 1)
        ]
        self.dropout_layer = random_draws.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )

    def _bidirectional(self, name):
        rnn_class = (
            keras.layers.LSTM if self.cell == "lstm" else keras.layers.GRU
        )
        return keras.layers.Bidirectional(
            rnn_class(
                self.units // 2,
                return_sequences=True,
                return_state=True,
                dtype=self.dtype_policy,
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, source_tokens_shape):
        self.embedding.build(source_tokens_shape)
        self.rnn.build((*source_tokens_shape, self.embedding_dim))
        for rnn in self.upper_rnns:
            rnn.build((*source_tokens_shape, self.units))

    def call(self, source_tokens, training=None):
        mask = ops.not_equal(source_tokens, 0)
        x = self.embedding(source_tokens)
        x = self.dropout_layer(x, training=training)
        outputs, *states = self.rnn(x, mask=mask, training=training)
        for rnn in self.upper_rnns:
            x = self.dropout_layer(outputs, training=training)
            outputs, *states = rnn(x, mask=mask, training=training)
        half = len(states) // 2
        final_state = [
            ops.concatenate([forward, backward], axis=-1)
            for forward, backward in zip(
                states[:half], states[half:], strict=True
            )
        ]
        return outputs, mask, final_state

    def compute_output_spec(self, source_tokens, training=None):
        batch, length = source_tokens.shape
        n_states = 2 if self.cell == "lstm" else 1
        return (
            keras.KerasTensor((batch, length, self.units), self.compute_dtype),
            keras.KerasTensor((batch, length), "bool"),
            [
                keras.KerasTensor((batch, self.units), self.compute_dtype)
                for _ in range(n_states)
            ],
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "cell": self.cell,
                "dropout": self.dropout,
                "layers": self.num_layers,
            }
        )
        return config
