"""Strings in, strings and attention out: translating with a trained seq2seq
model, and saving and loading it (TensorFlow + tensorflow-text).

Scoring lives in `keras_nmt.evaluation`, the SavedModel export in
`keras_nmt.export`, crash-safe writes in `keras_nmt.files`, and the decoding
methods and their options in `keras_nmt.decoding.methods`.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import unicodedata
import zipfile
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import keras
import numpy as np

# Importing the model module registers the custom layers for loading.
import keras_nmt.seq2seq.model  # noqa: F401
from keras_nmt import files
from keras_nmt.decoding.methods import DecodingOptions
from keras_nmt.decoding.methods import decode
from keras_nmt.options import flag
from keras_nmt.options import integer
from keras_nmt.sentences import check_sentences
from keras_nmt.seq2seq.ensemble import EnsembleInference
from keras_nmt.seq2seq.inference import Seq2SeqInference
from keras_nmt.text import TextProcessor
from keras_nmt.text import join_tokens
from keras_nmt.text import standardize

MODEL_FILE = "model.keras"
CONFIG_FILE = "translator.json"
# Written by `keras-nmt train` into a run directory (keras_nmt.training).
TRAINING_FILE = "training.json"
_FORMAT_VERSION = 2
# The output rows and beam buffers of one decoding call may use at most
# this fraction of the machine's memory (see `_check_fits`).
_MEMORY_FRACTION = 0.5


class TranslatorLoadError(ValueError):
    """A translator directory holds a file that cannot be read.

    Raised by `Translator.load` for a corrupted or foreign `model.keras` or
    `translator.json`, or a training run that has not completed an epoch;
    the message names the file, what went wrong and what was expected. (A
    missing directory raises `FileNotFoundError`.)
    """


class Translation(NamedTuple):
    """One translated sentence with its attention map.

    Attributes:
        text: the translation, as `Translator.translate` returns it.
        source_tokens: the `T_source` source tokens the model read, with
            `[START]` and `[END]` (NFC; lowercase words, or subword pieces
            with "▁" marking a word start), to label the columns of
            `attention`.
        target_tokens: the `T_target` generated tokens, with the final
            `[END]` when one was generated, to label the rows of `attention`.
        attention: float32 NumPy array `(T_target, T_source)`: row `i` is
            the attention distribution of the step that produced
            `target_tokens[i]` over the source tokens (each row sums to 1).
        score: the decoding score of the translation: the sum of its
            tokens' log-probabilities (greedy), of the sampled distribution's
            log-probabilities (sample), or the length-penalised beam score
            (beam).
    """

    text: str
    source_tokens: list[str]
    target_tokens: list[str]
    attention: np.ndarray
    score: float


class Hypothesis(NamedTuple):
    """One of the n-best translations of a sentence: its text and score
    (see `Translation.score`)."""

    text: str
    score: float


def _check_model(model, processor):
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Translator expects a keras.Model from "
            "keras_nmt.seq2seq.build_seq2seq as `model`; received "
            f"{type(model).__name__}."
        )
    try:
        encoder = model.get_layer("encoder")
        decoder = model.get_layer("decoder")
    except ValueError:
        raise ValueError(
            "Translator expects a model from build_seq2seq, with layers "
            f"named 'encoder' and 'decoder'; model {model.name!r} has layers "
            f"{[layer.name for layer in model.layers]}."
        ) from None
    if not isinstance(processor, TextProcessor):
        raise ValueError(
            "Translator expects a keras_nmt.text.TextProcessor as "
            f"`processor`; received {type(processor).__name__}."
        )
    sizes = (
        ("source", getattr(encoder, "vocab_size", None), "source_vocab_size"),
        ("target", getattr(decoder, "vocab_size", None), "target_vocab_size"),
    )
    for side, model_size, attribute in sizes:
        processor_size = getattr(processor, attribute)
        if model_size is not None and model_size != processor_size:
            raise ValueError(
                f"The model's {side} vocabulary has {model_size} tokens but "
                f"the processor's has {processor_size}. Use the processor "
                "the model was trained with."
            )


def _source_words(sentences) -> list[list[str]]:
    """The standardised words of each sentence, as the source vocabulary
    splits them (before lookup, so unknown words are kept as written)."""
    import tensorflow as tf

    lines = standardize(tf.constant(sentences, tf.string)).numpy()
    return [line.decode("utf-8").split() for line in lines]


def _display(token: str) -> str:
    return unicodedata.normalize("NFC", token)


def _row_bucket(rows: int, batch_size: int) -> int:
    """The rows of a decoding call for `rows` sentences: the next power of
    two (at most `batch_size`), so a handful of shapes compile, and a single
    sentence is decoded alone, not padded to a full batch."""
    return min(batch_size, 1 << max(rows - 1, 0).bit_length())


def _column_bucket(length: int, max_length: int) -> int:
    """The source columns of a decoding call whose longest source has
    `length` tokens: the first of 8, 16, 24, 32, 48, 64, 96, 128, ... (each
    at most 1.5 times the one before) that holds it, at most `max_length`.
    So a batch of short sentences runs the encoder and the attention over
    a few more columns than it has tokens, not over `max_length`, and a
    translator compiles for a few source shapes only."""
    bucket = 8
    while bucket < length:
        bucket += max(8, 1 << (bucket.bit_length() - 2))
    return min(bucket, max_length)


class _BucketRetracing(logging.Filter):
    """Drops TensorFlow's warning that a decoding function of
    `keras_nmt.seq2seq` "triggered tf.function retracing": the Translator
    compiles it once per row and column bucket, a small set of shapes, by
    design."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "triggered tf.function retracing" in message
            and "keras_nmt.seq2seq." in message
        )


_RETRACING_FILTER = _BucketRetracing()


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


class Translator:
    """Translate strings with a trained seq2seq model.

    Holds a model from `keras_nmt.seq2seq.build_seq2seq` and the
    `TextProcessor` it was trained with. Sentences are standardised and
    tokenised by the processor, decoded in batches by one compiled loop
    (`keras_nmt.seq2seq.Seq2SeqInference`) with a method of
    `keras_nmt.decoding.METHODS`, and detokenised (a word processor's
    output is lowercase; a subword processor keeps case). The sentences
    of a call are decoded shortest first, `batch_size` at a time; a batch
    is padded to the length bucket of its longest sentence (8, 16, 24, 32,
    48, 64, ... tokens, at most `processor.max_length`) and to the next
    power of two of its sentences, so each method compiles for a few
    shapes only, a batch of short sentences is not padded to the longest
    possible one, and one sentence is decoded alone. The translations come
    back in input order and do not depend on the batching (the source
    masks make padding irrelevant). A sentence with no words after
    standardisation (empty, only whitespace or symbols) translates to `""`.

    Args:
        model: the trained seq2seq `keras.Model`.
        processor: the `TextProcessor` the model was trained with.
        max_length: the most tokens generated per sentence (`[END]`
            included); defaults to `processor.max_length`.
        batch_size: the most sentences decoded per compiled call. On 2
            CPU cores, 2,000 sentences of realistic lengths decoded
            greedily at 1,113, 1,630 and 1,799 sentences/s with batches of
            64, 128 and 256, and with beam 5 at 410, 423 and 395: the
            default is 128.
        jit_compile: bool, compile the decoding with XLA (the default) or,
            with `False`, as a plain TensorFlow graph. On 2 CPU cores XLA
            decoded 1.3x (greedy) and 1.8x (beam 5) as many sentences per
            second and single sentences in 0.7x the time, for a first call
            up to about 1 s longer per new shape
            (`python -m benchmarks.translator`). Other Keras backends
            ignore it (JAX always compiles with XLA).
        seed: optional int, seed of `method="sample"`.
        ensemble: more models trained with the same vocabularies, decoded
            together with `model` (the mean of their log-probabilities; see
            `keras_nmt.seq2seq.EnsembleInference`). An ensemble translates
            and exports; it is not saved as one directory.
        **options: the default decoding options (`DecodingOptions` fields,
            e.g. `beam_width=5`, `length_penalty=0.6`); each call may
            override them.

    Raises:
        ValueError: if the model is not a seq2seq model, its vocabulary sizes
            differ from the processor's, or an option is invalid.

    Example (an untrained model, so the words are random; see
    `keras_nmt.train_translator` to train one):

    >>> from keras_nmt.seq2seq import build_seq2seq
    >>> processor = TextProcessor.from_sentences(["Hola."], ["Hello."])
    >>> model = build_seq2seq(processor.source_vocab_size,
    ...                       processor.target_vocab_size,
    ...                       embedding_dim=8, units=16)
    >>> translator = Translator(model, processor, max_length=4)
    >>> out = translator.translate(["¡Hola!", "  "], method="beam")
    >>> len(out), out[1]
    (2, '')
    """

    def __init__(
        self,
        model: keras.Model,
        processor: TextProcessor,
        *,
        max_length: int | None = None,
        batch_size: int = 128,
        jit_compile: bool = True,
        seed: int | None = None,
        ensemble: Sequence[keras.Model] = (),
        **options,
    ):
        _check_model(model, processor)
        for member in ensemble:
            _check_model(member, processor)
        if max_length is None:
            max_length = processor.max_length
        for name, value, check in (
            ("max_length", max_length, integer()),
            ("batch_size", batch_size, integer()),
            ("jit_compile", jit_compile, flag()),
            ("seed", seed, integer(0, optional=True)),
        ):
            if not check.accepts(value):
                raise ValueError(
                    f"Invalid {name}={value!r}; expected {check.expected}."
                )
        self.model = model
        self.processor = processor
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self._jit_compile = bool(jit_compile)
        self.seed = seed
        self.ensemble = tuple(ensemble)
        self.options = DecodingOptions().replace(**options)
        self._inference = None

    @property
    def inference(self) -> Seq2SeqInference:
        """The `Seq2SeqInference` that decodes (created on first use).

        It reads the model's current weights at every call. A model built
        under a mixed-precision policy decodes in that policy (16-bit
        computations, float32 logits and scores).
        """
        if self._inference is None:
            options = {
                "start_token": self.processor.start_id,
                "end_token": self.processor.end_id,
                "max_length": self.max_length,
                "seed": self.seed,
                "jit_compile": self.jit_compile,
            }
            if self.ensemble:
                self._inference = EnsembleInference(
                    [self.model, *self.ensemble], **options
                )
            else:
                self._inference = Seq2SeqInference(self.model, **options)
            logging.getLogger("tensorflow").addFilter(_RETRACING_FILTER)
        return self._inference

    @property
    def jit_compile(self) -> bool:
        """Whether decoding compiles with XLA (`True`) or as a plain
        `tf.function` graph (`False`), on TensorFlow. Setting it
        recompiles at the next call."""
        return self._jit_compile

    @jit_compile.setter
    def jit_compile(self, value: bool) -> None:
        if not flag().accepts(value):
            raise ValueError(
                f"Invalid jit_compile={value!r}; expected {flag().expected}."
            )
        if value != self._jit_compile:
            self._jit_compile = value
            self._inference = None

    @classmethod
    def load_ensemble(
        cls, directories: Sequence[str | os.PathLike]
    ) -> Translator:
        """The translators saved in `directories`, decoding as one ensemble
        (the settings and decoding defaults of the first).

        Raises:
            ValueError: if there is no directory, or the translators'
                vocabularies differ (an ensemble shares them).
        """
        translators = [cls.load(d) for d in directories]
        if not translators:
            raise ValueError("load_ensemble needs at least one directory.")
        first = translators[0]
        for directory, other in zip(directories, translators, strict=True):
            if (
                other.processor.source_vocabulary
                != first.processor.source_vocabulary
                or other.processor.target_vocabulary
                != first.processor.target_vocabulary
            ):
                raise ValueError(
                    f"Cannot ensemble '{directory}' with '{directories[0]}': "
                    "their vocabularies differ. An ensemble decodes models "
                    "trained with the same vocabularies (the same data and "
                    "max_vocab)."
                )
        config = first.get_config()
        decoding = config.pop("decoding")
        return cls(
            first.model,
            first.processor,
            ensemble=[t.model for t in translators[1:]],
            **config,
            **decoding,
        )

    def get_config(self) -> dict[str, Any]:
        """The settings saved in `translator.json`."""
        return {
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "jit_compile": self.jit_compile,
            "seed": self.seed,
            "decoding": self.options.to_dict(),
        }

    # ---- translating -----------------------------------------------------

    def translate(self, sentences: Sequence[str], **options) -> list[str]:
        """Translate a list of sentences.

        Args:
            sentences: a list of strings (not a single string).
            **options: decoding options over the translator's defaults
                (`DecodingOptions` fields): `method` is `"greedy"` (the most
                probable token at each step), `"sample"` (tokens drawn from
                the model's distribution, with `temperature` and `top_k`)
                or `"beam"` (beam search with `beam_width` and the GNMT
                `length_penalty`; the best hypothesis is returned).

        Returns:
            One translation per sentence, in order (lowercase, punctuation
            attached; `""` for a sentence without words).

        Raises:
            ValueError: if `sentences` is a single string or holds
                non-strings, or on an invalid option.
        """
        options = self._options(options)
        decoded = self._decode(
            check_sentences(sentences, "Translator.translate"), options
        )
        return [texts[0] for texts in decoded["texts"]]

    def translate_n_best(
        self, sentences: Sequence[str], **options
    ) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each sentence, with scores.

        Args:
            sentences: a list of strings.
            **options: decoding options as in `translate`; `n_best` > 1
                needs `method="beam"` (and `n_best <= beam_width`).

        Returns:
            For each sentence, `n_best` `Hypothesis(text, score)`, best
            first (the length-penalised beam score for beam search); a
            sentence without words gets `n_best` empty hypotheses.
        """
        options = self._options(options)
        decoded = self._decode(
            check_sentences(sentences, "Translator.translate_n_best"), options
        )
        return [
            [Hypothesis(t, s) for t, s in zip(texts, scores, strict=True)]
            for texts, scores in zip(
                decoded["texts"], decoded["scores"], strict=True
            )
        ]

    def translate_with_attention(self, sentence: str, **options) -> Translation:
        """Translate one sentence and return its attention map.

        The options are those of `translate`; the translation equals
        `translate([sentence], ...)[0]` (for `"sample"`, a new draw).

        Args:
            sentence: one string.
            **options: decoding options, as in `translate`.

        Returns:
            A `Translation(text, source_tokens, target_tokens, attention,
            score)`; plot it with
            `keras_nmt.plot_attention(t.attention, t.source_tokens,
            t.target_tokens)`. For a sentence without words: empty text,
            token lists and a `(0, 0)` attention array.

        Raises:
            ValueError: if `sentence` is not a string, or on an invalid
                option.
        """
        if not isinstance(sentence, str):
            raise ValueError(
                "translate_with_attention expects one sentence as a string; "
                f"received {type(sentence).__name__}. For several sentences "
                "call it once per sentence, or use translate(list)."
            )
        options = self._options(options).replace(n_best=1)
        decoded = self._decode([sentence], options)
        if decoded["source_ids"][0] is None:
            return Translation("", [], [], np.zeros((0, 0), "float32"), 0.0)
        processor = self.processor
        source_ids = decoded["source_ids"][0]
        target_ids = decoded["tokens"][0][: decoded["lengths"][0]]
        source_tokens = processor.source.ids_to_tokens([source_ids])[0]
        target_tokens = processor.target.ids_to_tokens([target_ids])[0]
        attention = decoded["attention"][0][
            : len(target_tokens), : len(source_tokens)
        ]
        return Translation(
            decoded["texts"][0][0],
            [_display(t) for t in source_tokens],
            [_display(t) for t in target_tokens],
            np.asarray(attention, dtype="float32"),
            float(decoded["scores"][0][0]),
        )

    def evaluate(
        self, sources: Sequence[str], references: Sequence[str], **options
    ) -> dict[str, Any]:
        """`keras_nmt.evaluation.evaluate(self, sources, references,
        **options)`: corpus BLEU and exact match (see there)."""
        from keras_nmt.evaluation import evaluate

        return evaluate(self, sources, references, **options)

    def export(self, path: str | os.PathLike) -> None:
        """`keras_nmt.export.export_saved_model(self, path)`: a SavedModel
        that translates strings with TensorFlow alone (see there)."""
        from keras_nmt.export import export_saved_model

        export_saved_model(self, path)

    def _options(self, changes: dict) -> DecodingOptions:
        """The call's options over the defaults, refused before any tracing
        when they cannot work with this model."""
        options = self.options.replace(**changes)
        if options.replace_unknown and self.processor.tokenizer == "subword":
            raise ValueError(
                "replace_unknown=True needs a word processor; this "
                "translator's is 'subword', whose byte fallback spells any "
                "word in pieces, so no [UNK] is produced to replace. Leave "
                "replace_unknown=False."
            )
        vocab_size = self.processor.target_vocab_size
        if options.method == "sample" and (options.top_k or 0) > vocab_size:
            raise ValueError(
                f"Invalid top_k={options.top_k}: the target vocabulary has "
                f"{vocab_size} tokens; use top_k <= {vocab_size} (or None "
                "for all)."
            )
        if options.method == "beam":
            if options.beam_width > vocab_size:
                raise ValueError(
                    f"Invalid beam_width={options.beam_width}: the target "
                    f"vocabulary has {vocab_size} tokens; use beam_width <= "
                    f"{vocab_size}."
                )
            self._check_fits(options.beam_width)
        return options

    def _check_fits(self, beam_width: int) -> None:
        """Refuse a beam whose buffers cannot fit in memory: per row and
        beam, float32 logits, log-probs and candidates over the vocabulary,
        and the attention history `(max_length, source length)`."""
        memory = _available_memory()
        if memory is None:
            return
        per_beam = 4 * (
            3 * self.processor.target_vocab_size
            + self.max_length * self.processor.max_length
            + 3 * self.max_length
        )
        needed = self.batch_size * beam_width * per_beam
        if needed > _MEMORY_FRACTION * memory:
            budget = _MEMORY_FRACTION * memory
            fits = int(budget // (self.batch_size * per_beam))
            raise ValueError(
                f"Invalid beam_width={beam_width}: decoding {self.batch_size} "
                f"sentences at once would need about {needed / 2**30:.1f} "
                f"GiB of buffers, more than half of this machine's "
                f"{memory / 2**30:.1f} GiB; use beam_width <= {max(fits, 1)} "
                "or a smaller batch_size."
            )

    def _decode(self, sentences, options: DecodingOptions) -> dict[str, list]:
        """Translate `sentences`; per sentence: `n_best` texts and scores,
        and of the best hypothesis the source ids (unpadded; `None` for a
        sentence without words), tokens, length and attention.

        The sentences are decoded shortest first (a stable sort by token
        count), `batch_size` at a time, each batch padded to the length
        bucket of its longest sentence (`_column_bucket`) and to the row
        bucket of its size (`_row_bucket`); the results are returned in
        input order. The source masks make the padding irrelevant, so the
        order and the padding change the speed, not the translations."""
        n, k = len(sentences), options.n_best
        out = {
            "texts": [[""] * k for _ in range(n)],
            "scores": [[0.0] * k for _ in range(n)],
            "source_ids": [None] * n,
            "tokens": [None] * n,
            "lengths": [0] * n,
            "attention": [None] * n,
        }
        if not n:
            return out
        ids = self.processor.source.tokenize_ragged(sentences)
        rows = [np.asarray(r, dtype="int32") for r in ids.to_list()]
        todo = sorted(
            (i for i, r in enumerate(rows) if len(r) > 2),
            key=lambda i: len(rows[i]),
        )
        for begin in range(0, len(todo), self.batch_size):
            chunk = todo[begin : begin + self.batch_size]
            self._decode_batch(sentences, rows, chunk, options, out)
        return out

    def _decode_batch(self, sentences, rows, chunk, options, out) -> None:
        """Decode the sentences numbered `chunk` (one compiled call) into
        their places in `out` (see `_decode`)."""
        k = options.n_best
        width = _column_bucket(
            max(len(rows[i]) for i in chunk), self.processor.max_length
        )
        source = np.zeros(
            (_row_bucket(len(chunk), self.batch_size), width), dtype="int32"
        )
        for j, i in enumerate(chunk):
            source[j, : len(rows[i])] = rows[i]
        # Padding rows repeat the last sentence: they end when it does,
        # so they never prolong the decoding loop.
        source[len(chunk) :] = source[len(chunk) - 1]
        result = decode(self.inference, source, options)
        tokens, scores, _, attention, lengths = (
            keras.ops.convert_to_numpy(x) for x in result
        )
        if not options.beams:  # one hypothesis per source
            tokens, scores = tokens[:, None], scores[:, None]
            attention, lengths = attention[:, None], lengths[:, None]
        texts = [
            self.processor.target.detokenize(tokens[: len(chunk), b])
            for b in range(k)
        ]
        if options.replace_unknown:
            words = _source_words([sentences[i] for i in chunk])
            for j in range(len(chunk)):
                for b in range(k):
                    texts[b][j] = self._unknown_replaced(
                        texts[b][j], tokens[j, b], attention[j, b], words[j]
                    )
        for j, i in enumerate(chunk):
            out["texts"][i] = [texts[b][j] for b in range(k)]
            out["scores"][i] = [float(scores[j, b]) for b in range(k)]
            out["source_ids"][i] = rows[i]
            out["tokens"][i] = tokens[j, 0]
            out["lengths"][i] = int(lengths[j, 0])
            out["attention"][i] = attention[j, 0]

    def _unknown_replaced(self, text, tokens, attention, words) -> str:
        """`text` with each `[UNK]` replaced by the source word its step
        attended to most (Luong et al. 2015, "Addressing the rare word
        problem in neural machine translation": copy the most-attended
        source word; an unknown source word is copied as written)."""
        unk = self.processor.target.unk_id
        end = self.processor.target.end_id
        if unk not in tokens:
            return text
        if not words:
            return text
        out = []
        for t, token in enumerate(tokens):
            if token == end or token == self.processor.target.pad_id:
                break
            if token == unk:
                # Source position 0 is [START]; words are 1 .. len(words).
                scores = attention[t, 1 : len(words) + 1]
                out.append(words[int(np.argmax(scores))])
            else:
                out.append(self.processor.target.tokens[token])
        return join_tokens([out]).numpy()[0].decode("utf-8")

    # ---- saving ----------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> None:
        """Write the translator into `directory` (created if needed).

        Files: `model.keras` (the whole model, one file), the processor's
        `text_processor.json` and vocabularies (`source_vocab.txt` and
        `target_vocab.txt`, or subword `source.model` and `target.model`),
        and `translator.json` (`max_length`, `batch_size`, `jit_compile`,
        `seed` and the default decoding options). Existing
        files of those names are overwritten.

        Crash-safe: every file is first written completely under a
        temporary name in `directory` (starting with
        `files.TEMP_PREFIX`), flushed to disk, and only then renamed
        over the real name (`os.replace`, atomic on POSIX and Windows),
        `translator.json` last. So a crash, a full disk or a kill while
        saving leaves each file either entirely old or entirely new, never
        truncated; temporary files left by a crash are ignored by `load`
        and removed by the next `save`.

        Args:
            directory: the output directory.
        """
        if self.ensemble:
            raise ValueError(
                "An ensemble is not saved as one translator: save each "
                "model's translator, and load them with "
                "Translator.load_ensemble([...])."
            )
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files.remove_temporary_files(directory)
        config = {
            "format_version": _FORMAT_VERSION,
            "model_file": MODEL_FILE,
            **self.get_config(),
        }
        staging = files.temporary_path(directory, "save")
        staging.mkdir()
        try:
            self.model.save(staging / MODEL_FILE)
            self.processor.save(staging)
            (staging / CONFIG_FILE).write_text(
                json.dumps(config, indent=2) + "\n", encoding="utf-8"
            )
            # Everything is complete on disk before the first rename; the
            # config, which `load` reads first, is renamed last.
            names = sorted(p.name for p in staging.iterdir())
            names.remove(CONFIG_FILE)
            for name in [*names, CONFIG_FILE]:
                files.fsync(staging / name)
                os.replace(staging / name, directory / name)
            files.fsync_directory(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Translator:
        """Read a translator written by `save(directory)`.

        The model is loaded with `keras.saving.load_model(...,
        safe_mode=True)`: a `.keras` file that holds Python code (a `Lambda`
        layer's pickled function) is refused, never executed. The models of
        this package contain none.

        Args:
            directory: the directory given to `save`.

        Returns:
            A `Translator` with the saved model, processor and settings.

        Raises:
            FileNotFoundError: if the directory or one of its files is
                missing.
            TranslatorLoadError: (a `ValueError`) if `directory` is a file,
                or if `translator.json` or `model.keras` cannot be read
                (corrupted, not written by `save`, or holding code that
                safe mode refuses).
        """
        directory = pathlib.Path(directory)
        expected = (
            f"expected a directory written by Translator.save() (with "
            f"{MODEL_FILE}, {CONFIG_FILE} and the vocabulary files), e.g. "
            "the --out directory of `keras-nmt train`"
        )
        if directory.is_file():
            raise TranslatorLoadError(
                f"'{directory}' is a file, not a translator directory; "
                f"{expected}. Pass the directory that holds {MODEL_FILE}."
            )
        if not directory.is_dir():
            raise FileNotFoundError(
                f"Translator directory not found: '{directory}'; {expected}."
            )
        config = _read_config(directory, expected)
        model_path = directory / config.get("model_file", MODEL_FILE)
        if not model_path.is_file():
            raise FileNotFoundError(
                f"Model file not found: '{model_path}'; {expected}."
            )
        try:
            processor = TextProcessor.load(directory)
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise TranslatorLoadError(
                f"Could not read the vocabularies in '{directory}' "
                f"({type(error).__name__}: {error}); {expected}."
            ) from None
        model = _load_model(model_path)
        options = {
            key: config[key]
            for key in ("max_length", "batch_size", "jit_compile", "seed")
            if key in config
        }
        try:
            decoding = DecodingOptions.from_dict(config.get("decoding", {}))
            return cls(model, processor, **options, **decoding.to_dict())
        except ValueError as error:
            raise TranslatorLoadError(
                f"'{directory}' holds a model and a processor that do not "
                f"fit together, or invalid settings: {error}"
            ) from None


def _read_config(directory: pathlib.Path, expected: str) -> dict:
    """The `translator.json` of `directory`, checked."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file() and (directory / TRAINING_FILE).is_file():
        raise TranslatorLoadError(
            f"'{directory}' holds a training run that has not completed "
            "an epoch yet, so it has no model to load. Let it finish, "
            "or continue it with `keras-nmt train ... --resume`."
        )
    if not config_path.is_file():
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in '{directory}'; {expected}."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise TranslatorLoadError(
            f"'{config_path}' is not a valid translator config "
            f"({error}); {expected}."
        ) from None
    if config.get("format_version") != _FORMAT_VERSION:
        raise TranslatorLoadError(
            f"'{config_path}': format_version "
            f"{config.get('format_version')!r} is not supported; expected "
            f"{_FORMAT_VERSION}."
        )
    return config


def _load_model(model_path: pathlib.Path) -> keras.Model:
    """The model of a `.keras` file written by `Translator.save`, loaded in
    safe mode, or a `TranslatorLoadError` saying what is wrong with it."""
    advice = (
        "Expected a .keras file written by Translator.save(); the file "
        "may be truncated or corrupted: save or train it again."
    )
    if not zipfile.is_zipfile(model_path):
        raise TranslatorLoadError(
            f"Could not load the model file '{model_path}': it is not a "
            f".keras (zip) archive. {advice}"
        )
    try:
        # Importing keras_nmt.seq2seq registered the custom layers.
        model = keras.saving.load_model(
            model_path, compile=False, safe_mode=True
        )
    except Exception as error:  # zip, HDF5, JSON or Keras errors
        message = str(error).strip().splitlines()
        detail = f"{type(error).__name__}: {message[0] if message else ''}"
        if "safe_mode" in str(error):
            advice = (
                "The file holds Python code (e.g. a Lambda layer), which "
                "safe mode refuses to run; Translator.save never writes "
                "any, so this file does not come from it."
            )
        raise TranslatorLoadError(
            f"Could not load the model file '{model_path}' ({detail}). {advice}"
        ) from error
    return model
