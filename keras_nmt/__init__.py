"""keras-nmt: the attention mechanisms of neural machine translation for
Keras 3, with an RNN encoder-decoder, compiled decoding, a tf.data text
pipeline, a translator and attention plots.

The layers, `seq2seq` and `decoding` use `keras.ops` only and run on the
TensorFlow, JAX and PyTorch backends. `text`, `Translator` and
`plot_attention` need TensorFlow (and matplotlib). Every name is imported on
first use, so `import keras_nmt` loads neither Keras nor TensorFlow.
"""

from keras_nmt import lazy
from keras_nmt.version import __version__

_EXPORTS = {
    "BahdanauAttention": "keras_nmt.layers.bahdanau_attention",
    "BahdanauMonotonicAttention": (
        "keras_nmt.layers.bahdanau_monotonic_attention"
    ),
    "LuongMonotonicAttention": "keras_nmt.layers.luong_monotonic_attention",
    "DotProductAttention": "keras_nmt.layers.dot_product_attention",
    "ScaledDotProductAttention": (
        "keras_nmt.layers.scaled_dot_product_attention"
    ),
    "DecodingOptions": "keras_nmt.decoding.methods",
    "TrainingSettings": "keras_nmt.training.settings",
    "Translation": "keras_nmt.translator",
    "Translator": "keras_nmt.translator",
    "corpus_scores": "keras_nmt.evaluation",
    "export_saved_model": "keras_nmt.export",
    "plot_attention": "keras_nmt.plotting",
    "train_translator": "keras_nmt.training.trainer",
}
_SUBMODULES = ("layers", "seq2seq", "decoding", "text", "training")

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy.attach(__name__, _EXPORTS, _SUBMODULES)

# Where Keras is already loaded, register the layers now, so that a `.keras`
# file using them loads after `import keras_nmt` without custom_objects;
# without Keras (the command line), they register on first use.
if "keras" in __import__("sys").modules:
    from keras_nmt import layers  # noqa: F401, E402
