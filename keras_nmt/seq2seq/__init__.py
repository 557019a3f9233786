"""RNN encoder-decoder with attention, for the functional API.

The names below are imported on first use; `keras_nmt.seq2seq.options`
(the named choices) imports no Keras.
"""

from keras_nmt import lazy

_EXPORTS = {
    "AttentionDecoder": "keras_nmt.seq2seq.decoder",
    "Encoder": "keras_nmt.seq2seq.encoder",
    "EnsembleInference": "keras_nmt.seq2seq.ensemble",
    "MaskedAccuracy": "keras_nmt.seq2seq.model",
    "ScheduledSampling": "keras_nmt.seq2seq.model",
    "Seq2SeqInference": "keras_nmt.seq2seq.inference",
    "attention_model": "keras_nmt.seq2seq.model",
    "build_seq2seq": "keras_nmt.seq2seq.model",
    "compile_seq2seq": "keras_nmt.seq2seq.model",
    "SmoothedCrossEntropy": "keras_nmt.seq2seq.losses",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy.attach(__name__, _EXPORTS)
