"""keras-nmt: the attention mechanisms of neural machine translation
for Keras 3, with an RNN encoder-decoder, compiled decoding, a tf.data text
pipeline, a translator and attention plots.

The layers, `seq2seq` and `decoding` use `keras.ops` only and run on the
TensorFlow, JAX and PyTorch backends. `text`, `Translator` and
`plot_attention` need TensorFlow (and matplotlib) and are imported on first
use, so `import keras_nmt` stays light on every backend.
"""

import importlib

from keras_nmt.layers import BahdanauAttention
from keras_nmt.layers import DotProductAttention
from keras_nmt.layers import ScaledDotProductAttention
from keras_nmt.version import __version__

# name -> module that defines it; imported on first access (PEP 562).
_LAZY = {
    "Translation": "keras_nmt.translator",
    "Translator": "keras_nmt.translator",
    "plot_attention": "keras_nmt.plotting",
    "train_translator": "keras_nmt.training",
}

__all__ = [
    "BahdanauAttention",
    "DotProductAttention",
    "ScaledDotProductAttention",
    "__version__",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in ("layers", "seq2seq", "decoding", "text"):
        return importlib.import_module(f"keras_nmt.{name}")
    raise AttributeError(f"module 'keras_nmt' has no attribute {name!r}")
