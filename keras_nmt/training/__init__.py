"""Training a `Translator`: settings, the run directory, callbacks and the
`train_translator` workflow behind `keras-nmt train`.

`TrainingSettings` imports no Keras; the rest is imported on first use.
"""

from keras_nmt import lazy

_EXPORTS = {
    "RunDirectory": "keras_nmt.training.run_directory",
    "average_checkpoints": "keras_nmt.training.averaging",
    "TrainingSettings": "keras_nmt.training.settings",
    "train_translator": "keras_nmt.training.trainer",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy.attach(__name__, _EXPORTS)
