"""The training loss of a translation model: masked cross-entropy with
optional label smoothing."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nmt")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Token cross-entropy from logits, averaged over the non-padding target
    tokens (id 0 is padding), with label smoothing.

    With smoothing `eps`, the target distribution puts `1 - eps` on the
    reference token and spreads `eps` uniformly over the whole vocabulary
    (Szegedy et al., 2016; the form used by fairseq and OpenNMT):

        loss = (1 - eps) * -log p(y) + eps * mean_v(-log p(v))

    `eps = 0` is exactly `SparseCategoricalCrossentropy(from_logits=True,
    ignore_class=0)`. Why not Keras' own: its `CategoricalCrossentropy`
    smooths one-hot targets (a `(batch, time, vocabulary)` tensor per
    batch), and its sparse loss has no smoothing.

    Args:
        label_smoothing: `eps` in `[0, 1)`.
    """

    def __init__(self, label_smoothing=0.0, name="smoothed_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(
                f"Invalid label_smoothing={label_smoothing!r}; expected a "
                "number in [0, 1)."
            )
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(log_probs, y_true[..., None], axis=-1)
        loss = -picked[..., 0]
        if self.label_smoothing:
            uniform = -ops.mean(log_probs, axis=-1)
            eps = self.label_smoothing
            loss = (1.0 - eps) * loss + eps * uniform
        # The mean over real tokens, through the default
        # "sum_over_batch_size" reduction: weight total/valid on each real
        # token (the same scaling Keras applies to a masked loss).
        mask = ops.cast(ops.not_equal(y_true, 0), loss.dtype)
        total = ops.cast(ops.size(mask), loss.dtype)
        valid = ops.maximum(ops.sum(mask), 1.0)
        return loss * mask * (total / valid)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
