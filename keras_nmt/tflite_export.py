"""TFLite export: a translator's decoding loop as a `.tflite` file, token
ids in, token ids out, for on-device translation.

The text steps (standardisation, vocabulary lookup, detokenisation) use
tensorflow-text ops, which the TFLite runtime does not have; they stay in
Python (`TFLiteTranslator`) or in the app. The file holds the encoder, the
decoder step and the compiled decoding loop (a TFLite `WHILE`), with the
weights as constants, in TFLite builtin ops only: no Flex (`SELECT_TF_OPS`)
delegate is needed, so any TFLite / LiteRT runtime runs it.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_nmt import files
from keras_nmt.decoding.methods import decode
from keras_nmt.sentences import check_sentences

# The signature of the exported model: its name, input and output.
SIGNATURE = "serving_default"
INPUT = "source"
OUTPUT = "tokens"
# Every TFLite flatbuffer has this file identifier at bytes 4..8.
_IDENTIFIER = b"TFL3"
_METHODS = ("greedy", "beam")


def _is_tflite_file(path: pathlib.Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == _IDENTIFIER
    except OSError:
        return False


def _check_path(path: pathlib.Path) -> None:
    if path.is_dir() or (path.exists() and not _is_tflite_file(path)):
        what = "a directory" if path.is_dir() else "not a TFLite model"
        raise ValueError(
            f"Cannot export to '{path}': it exists and is {what}, so it is "
            "not overwritten. Choose a new file path (e.g. "
            "'translator.tflite'), or an existing .tflite model to replace."
        )


def _decoding_options(translator, method: str):
    """The `DecodingOptions` the exported loop runs for `method`.

    Greedy search is exported as beam search with one beam and no
    coverage penalty, which picks the same tokens: one candidate per
    step, the most probable allowed token (`top_k(logits, 1)`), ending
    under the same rules (`tests/translator_test.py` checks
    `beam_width=1` against greedy). The reason: `keras.ops.argmax` of
    `decoding.greedy_search` emits `tf.bitwise.bitwise_and` on
    TensorFlow (its negative-zero fix), which TFLite has no builtin for,
    and the Flex delegate it would need is not linked into TF 2.21's
    `tf.lite.Interpreter` nor into LiteRT. (Length penalty and n_best do
    not change the choice among one candidate.)
    """
    options = translator.options.replace(method=method, n_best=1)
    if method == "greedy":
        options = options.replace(
            method="beam",
            beam_width=1,
            length_penalty=0.0,
            coverage_penalty=0.0,
        )
    return options


def _concrete_function(translator, method: str):
    """The decoding loop traced for one source of `processor.max_length`
    ids, with every weight read as a constant."""
    # A new `Translator` gives a new `Seq2SeqInference`, whose compiled
    # functions have not been traced with live variable reads yet.
    from keras_nmt.translator import Translator

    fresh = Translator(
        translator.model,
        translator.processor,
        max_length=translator.max_length,
        ensemble=translator.ensemble,
    )
    inference = fresh.inference
    options = _decoding_options(translator, method)
    spec = tf.TensorSpec([1, translator.processor.max_length], tf.int32, INPUT)

    @tf.function(input_signature=[spec])
    def translate(source):
        tokens = decode(inference, source, options).tokens
        return {OUTPUT: tokens[:, 0]}  # the best (only) hypothesis

    models = [translator.model, *translator.ensemble]
    # Weights as constants: TFLite does not freeze the variables that the
    # decoding loop's body reads (the interpreter then fails on
    # READ_VARIABLE inside WHILE).
    mapping = [
        (variable, tf.constant(keras.ops.convert_to_numpy(variable)))
        for model in models
        for variable in model.variables
    ]
    with keras.StatelessScope(state_mapping=mapping):
        return translate.get_concrete_function()


def export_tflite(
    translator,
    path: str | os.PathLike,
    *,
    method: str = "greedy",
    quantize: bool = False,
) -> None:
    """Write a `.tflite` model that decodes token ids with TFLite builtins.

    The model has one signature, `"serving_default"`, from `"source"`:
    int32 `(1, processor.max_length)`, the source token ids as
    `translator.processor.source.tokenize_ragged` gives them (`[START]`
    ... `[END]`), padded with 0 to the processor's `max_length`, to
    `"tokens"`: int32 `(1, translator.max_length)`, the generated target
    ids (the `[END]` id included, 0 after it). The batch is fixed at one
    sentence: with a dynamic batch the converter cannot lower the
    recurrent layers' TensorList ops to builtins. Decoding uses the
    translator's options (`min_length`, `no_repeat_ngram_size`,
    `max_length_ratio`; for beam search `beam_width`, `length_penalty`,
    `coverage_penalty`); the tokens equal those of
    `translator.translate(..., method=method)` (not `replace_unknown`,
    which needs the attention). Run it with
    `TFLiteTranslator(path, translator.processor)`, or any TFLite / LiteRT
    runtime (builtin ops only; no Flex delegate):

    ```python
    from ai_edge_litert.interpreter import Interpreter  # or tf.lite
    run = Interpreter("translator.tflite").get_signature_runner()
    tokens = run(source=ids)["tokens"]
    ```

    Crash-safe: the file is written under a temporary name next to `path`
    and renamed to `path` once complete; a previous model at `path` is
    replaced only then.

    Args:
        translator: a `keras_nmt.translator.Translator` (an ensemble
            exports all its models).
        path: the `.tflite` file to write.
        method: `"greedy"` or `"beam"` (beam search with the
            translator's `beam_width`; the best hypothesis).
        quantize: whether to apply post-training dynamic-range
            quantisation (`tf.lite.Optimize.DEFAULT`): weights of 1024
            values or more are stored in int8, so the file is about 4
            times smaller; the translations may change a little.

    Raises:
        RuntimeError: if the Keras backend is not TensorFlow.
        ValueError: if `method` is not `"greedy"` or `"beam"`, or `path` is
            a directory or an existing file that is not a TFLite model
            (it is never overwritten).
    """
    if keras.config.backend() != "tensorflow":
        raise RuntimeError(
            "export_tflite converts a TensorFlow graph and needs the "
            "TensorFlow backend; the current Keras backend is "
            f"{keras.config.backend()!r}. Run with KERAS_BACKEND=tensorflow "
            "(load the translator there with Translator.load and export it)."
        )
    if method not in _METHODS:
        raise ValueError(
            f"Invalid method={method!r} for a TFLite export; expected one "
            f"of {list(_METHODS)} (sampling is not exported)."
        )
    path = pathlib.Path(path)
    _check_path(path)
    function = _concrete_function(translator, method)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function], tf.Module()
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    content = converter.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    files.remove_temporary_files(path.parent, path.stem)
    files.write_atomically(
        path, lambda p: p.write_bytes(content), suffix=".tflite"
    )


def _interpreter(path: pathlib.Path, num_threads: int | None):
    """A TFLite interpreter for `path`: LiteRT's when `ai-edge-litert` is
    installed, else TensorFlow's (deprecated in favour of LiteRT, still in
    TF 2.21)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter")
            return tf.lite.Interpreter(
                model_path=str(path), num_threads=num_threads
            )
    return Interpreter(model_path=str(path), num_threads=num_threads)


class TFLiteTranslator:
    """Translate strings with a model written by `export_tflite`.

    The processor tokenises each sentence in Python (TensorFlow and
    tensorflow-text); the TFLite interpreter decodes the ids, one sentence
    per run; the processor detokenises. A sentence without words
    translates to `""`, as with `Translator.translate`.

    Args:
        path: the `.tflite` file.
        processor: the translator's `TextProcessor`
            (`translator.processor`, or `TextProcessor.load(directory)`).
        num_threads: the interpreter's threads (default: its own choice).

    Raises:
        ValueError: if the file is not a model from `export_tflite`, or its
            source length differs from `processor.max_length`.

    Example:

    >>> export_tflite(translator, "translator.tflite")  # doctest: +SKIP
    >>> TFLiteTranslator("translator.tflite", translator.processor
    ...                  ).translate(["¿Dónde está Tom?"])  # doctest: +SKIP
    ['where is tom ?']
    """

    def __init__(
        self,
        path: str | os.PathLike,
        processor,
        *,
        num_threads: int | None = None,
    ):
        path = pathlib.Path(path)
        if not _is_tflite_file(path):
            raise ValueError(
                f"'{path}' is not a TFLite model; expected a file written "
                "by keras_nmt.tflite_export.export_tflite."
            )
        self.path = path
        self.processor = processor
        self.interpreter = _interpreter(path, num_threads)
        signatures = self.interpreter.get_signature_list()
        expected = {"inputs": [INPUT], "outputs": [OUTPUT]}
        if signatures.get(SIGNATURE) != expected:
            raise ValueError(
                f"'{path}' has signatures {signatures}; expected "
                f"{{{SIGNATURE!r}: {expected}}}, as written by export_tflite."
            )
        self._runner = self.interpreter.get_signature_runner(SIGNATURE)
        shape = tuple(
            int(n) for n in self._runner.get_input_details()[INPUT]["shape"]
        )
        if shape != (1, processor.max_length):
            raise ValueError(
                f"'{path}' takes sources of shape {shape} but the processor "
                f"pads them to (1, {processor.max_length}); use the "
                "processor of the translator that was exported."
            )

    def translate_ids(self, source: np.ndarray) -> np.ndarray:
        """The target ids `(1, max_length)` for source ids
        `(1, processor.max_length)` (int32, 0-padded)."""
        source = np.asarray(source, dtype="int32")
        return self._runner(**{INPUT: source})[OUTPUT]

    def translate(self, sentences: Sequence[str]) -> list[str]:
        """One translation per sentence, as `Translator.translate` with the
        exported method (lowercase; `""` for a sentence without words)."""
        sentences = check_sentences(sentences, "TFLiteTranslator.translate")
        if not sentences:
            return []
        rows = self.processor.source.tokenize_ragged(sentences).to_list()
        out = [""] * len(sentences)
        todo = [i for i, row in enumerate(rows) if len(row) > 2]
        if not todo:  # only [START] and [END]: no words
            return out
        tokens = []
        for i in todo:
            source = np.zeros((1, self.processor.max_length), "int32")
            source[0, : len(rows[i])] = rows[i]
            tokens.append(self.translate_ids(source))
        texts = self.processor.target.detokenize(np.concatenate(tokens))
        for i, text in zip(todo, texts, strict=True):
            out[i] = text
        return out
