"""RNN encoder-decoder with attention, for the functional API."""

from keras_nmt.seq2seq.decoder import AttentionDecoder
from keras_nmt.seq2seq.encoder import Encoder
from keras_nmt.seq2seq.inference import Seq2SeqInference
from keras_nmt.seq2seq.model import MaskedAccuracy
from keras_nmt.seq2seq.model import attention_model
from keras_nmt.seq2seq.model import build_seq2seq
from keras_nmt.seq2seq.model import compile_seq2seq

__all__ = [
    "AttentionDecoder",
    "Encoder",
    "MaskedAccuracy",
    "Seq2SeqInference",
    "attention_model",
    "build_seq2seq",
    "compile_seq2seq",
]
