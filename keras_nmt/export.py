"""SavedModel export: a translator as a TensorFlow graph from strings to
strings, loadable without this package."""

from __future__ import annotations

import os
import pathlib
import shutil

import keras
import tensorflow as tf

from keras_nmt import files
from keras_nmt.decoding.methods import decode


def export_saved_model(translator, path: str | os.PathLike) -> None:
    """Write a SavedModel that translates strings with TensorFlow alone.

    The SavedModel's signatures take a 1-D `tf.string` tensor of
    sentences and return a 1-D `tf.string` tensor of translations, with
    standardisation, vocabulary lookup, decoding and detokenisation all
    in the graph: `"translate"` (greedy) and `"translate_beam"` (beam
    search with the translator's `beam_width` and `length_penalty`).
    Their outputs equal `translator.translate(..., method="greedy")` and
    `translate(..., method="beam")`. Loading needs TensorFlow and
    tensorflow-text (whose ops the graph uses), not keras_nmt:

    ```python
    import tensorflow as tf
    import tensorflow_text  # registers the text ops
    reloaded = tf.saved_model.load(path)
    reloaded.translate(tf.constant(["¿Dónde está Tom?"]))
    ```

    Crash-safe: the SavedModel is written into a temporary directory
    next to `path` and renamed to `path` once complete; a previous
    SavedModel at `path` is replaced only then. A crash leaves the old
    SavedModel, the new one or none at `path`, never a partial one.

    Args:
        path: the SavedModel directory to write.

    Raises:
        RuntimeError: if the Keras backend is not TensorFlow.
        ValueError: if `path` is a file, or a non-empty directory that
            is not a SavedModel (it is never overwritten).
    """
    if keras.config.backend() != "tensorflow":
        raise RuntimeError(
            "export_saved_model writes a TensorFlow SavedModel and needs "
            "the TensorFlow backend; the current Keras backend is "
            f"{keras.config.backend()!r}. Run with "
            "KERAS_BACKEND=tensorflow (load the translator there with "
            "Translator.load and export it)."
        )
    path = pathlib.Path(path)
    if path.is_file() or (
        path.is_dir()
        and any(path.iterdir())
        and not (path / "saved_model.pb").is_file()
    ):
        raise ValueError(
            f"Cannot export to '{path}': it exists and is not a "
            "SavedModel directory, so it is not overwritten. Choose a "
            "new path (or an existing SavedModel directory to replace)."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    files.remove_temporary_files(path.parent, path.name)
    archive = keras.export.ExportArchive()
    archive.track(translator.inference.model)
    archive.track(translator.processor)
    spec = [tf.TensorSpec([None], tf.string, name="sentences")]
    archive.add_endpoint(
        "translate",
        _graph_translate(translator, "greedy"),
        input_signature=spec,
    )
    archive.add_endpoint(
        "translate_beam",
        _graph_translate(translator, "beam"),
        input_signature=spec,
    )
    staging = files.temporary_path(path.parent, path.name)
    staging.mkdir()
    try:
        archive.write_out(str(staging), verbose=False)
        files.replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

def _graph_translate(translator, method: str):
    """The in-graph `sentences -> translations` for `export`: the same
    steps (and padded shapes) as `Translator.translate`."""
    processor = translator.processor
    inference = translator.inference
    options = translator.options.replace(method=method, n_best=1)

    def translate(sentences):
        ids = processor.source.tokenize_ragged(sentences)
        nonempty = ids.row_lengths() > 2
        indices = tf.where(nonempty)[:, 0]
        source = tf.gather(ids, indices).to_tensor(
            0, shape=[None, processor.max_length]
        )
        tokens = decode(inference, source, options).tokens
        if options.beams:  # the best hypothesis
            tokens = tokens[:, 0]
        text = processor.target.detokenize_tensor(tokens)
        return tf.tensor_scatter_nd_update(
            tf.fill(tf.shape(sentences), ""), indices[:, None], text
        )

    return translate
