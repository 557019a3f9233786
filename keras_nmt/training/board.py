"""TensorBoard for a training run: Keras' scalars (loss, validation loss
and BLEU, learning rate) and, each epoch, attention heatmaps of a few
validation sentences."""

from __future__ import annotations

import io
import os
import pathlib

import keras
import tensorflow as tf

ATTENTION_SENTENCES = 3


class AttentionImages(keras.callbacks.Callback):
    """Writes, at the end of each epoch, the attention heatmap of each of
    `sentences` (greedy decoding, as `Translator.translate_with_attention`)
    as an image summary under `log_dir/attention`."""

    def __init__(self, log_dir, translator, sentences):
        super().__init__()
        self.translator, self.sentences = translator, list(sentences)
        self.writer = tf.summary.create_file_writer(
            str(pathlib.Path(log_dir) / "attention")
        )

    def on_epoch_end(self, epoch, logs=None):
        from keras_nmt.plotting import plot_attention

        with self.writer.as_default(step=epoch + 1):
            for number, sentence in enumerate(self.sentences, start=1):
                result = self.translator.translate_with_attention(
                    sentence, method="greedy"
                )
                if not result.target_tokens:
                    continue
                figure = plot_attention(
                    result.attention,
                    result.source_tokens,
                    result.target_tokens,
                    title=f"{sentence} -> {result.text}",
                )
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png", dpi=80)
                image = tf.io.decode_png(buffer.getvalue(), channels=4)
                tf.summary.image(
                    f"attention/sentence_{number}",
                    image[None],
                    description=sentence,
                )
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def tensorboard_callbacks(log_dir: str | os.PathLike, translator, bleu):
    """Keras' `TensorBoard` (epoch scalars: every value of the logs) and
    `AttentionImages` of the first validation sentences of the BLEU subset
    `bleu` (a `ValidationBLEU`, or `None`: no images)."""
    try:
        import tensorboard  # noqa: F401  (tf.summary's implementation)
    except ImportError:
        raise ValueError(
            "TensorBoard logs need the tensorboard package, which is not "
            "installed; install it with: pip install 'keras-nmt[text]' (or "
            "pip install tensorboard)."
        ) from None
    log_dir = pathlib.Path(log_dir)
    callbacks = [
        keras.callbacks.TensorBoard(
            str(log_dir), write_graph=False, profile_batch=0
        )
    ]
    if bleu is not None:
        sentences = list(dict.fromkeys(bleu.sources))[:ATTENTION_SENTENCES]
        callbacks.append(AttentionImages(log_dir, translator, sentences))
    return callbacks
