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
    in the graph: `"translate"` (greedy), `"translate_beam"` (beam
    search with the translator's decoding options) and `"translate_n_best"`
    (`{"translations", "scores"}` of shape `(N, beam_width)`: every
    hypothesis of the beam, best first). An ensemble translator exports all
    its models. (`replace_unknown` is applied by the `Translator` only.)
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
    for model in getattr(
        translator.inference, "models", [translator.inference.model]
    ):
        archive.track(model)
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
    archive.add_endpoint(
        "translate_n_best", _graph_n_best(translator), input_signature=spec
    )
    staging = files.temporary_path(path.parent, path.name)
    staging.mkdir()
    try:
        archive.write_out(str(staging), verbose=False)
        files.replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sources(processor, sentences):
    """`(indices, source)`: the rows of `sentences` that have words, and
    their token ids padded to `processor.max_length` (as `translate`)."""
    ids = processor.source.tokenize_ragged(sentences)
    indices = tf.where(ids.row_lengths() > 2)[:, 0]
    source = tf.gather(ids, indices).to_tensor(
        0, shape=[None, processor.max_length]
    )
    return indices, source


def _graph_translate(translator, method: str):
    """The in-graph `sentences -> translations` for `export`: the same
    steps (and padded shapes) as `Translator.translate`."""
    processor = translator.processor
    inference = translator.inference
    options = translator.options.replace(method=method, n_best=1)

    def translate(sentences):
        indices, source = _sources(processor, sentences)
        tokens = decode(inference, source, options).tokens
        if options.beams:  # the best hypothesis
            tokens = tokens[:, 0]
        text = processor.target.detokenize_tensor(tokens)
        return tf.tensor_scatter_nd_update(
            tf.fill(tf.shape(sentences), ""), indices[:, None], text
        )

    return translate


def _graph_n_best(translator):
    """The in-graph `sentences -> {"translations", "scores"}` of shape
    `(N, beam_width)`: every hypothesis of beam search, best first, with
    its score, as `Translator.translate_n_best(..., method="beam",
    n_best=beam_width)`."""
    processor = translator.processor
    inference = translator.inference
    k = translator.options.beam_width
    options = translator.options.replace(method="beam", n_best=k)

    def translate_n_best(sentences):
        indices, source = _sources(processor, sentences)
        decoded = decode(inference, source, options)
        tokens = decoded.tokens[:, :k]
        rows = tf.shape(tokens)[0]
        flat = tf.reshape(tokens, [rows * k, tf.shape(tokens)[-1]])
        text = tf.reshape(processor.target.detokenize_tensor(flat), [rows, k])
        shape = [tf.shape(sentences)[0], k]
        return {
            "translations": tf.tensor_scatter_nd_update(
                tf.fill(shape, ""), indices[:, None], text
            ),
            "scores": tf.tensor_scatter_nd_update(
                tf.zeros(shape), indices[:, None], decoded.scores[:, :k]
            ),
        }

    return translate_n_best
