"""Strings in, strings out: translation, attention maps, BLEU, saving and
SavedModel export of a trained seq2seq model (TensorFlow + tensorflow-text).
"""

from __future__ import annotations

import json
import numbers
import os
import pathlib
import shutil
import unicodedata
import uuid
import zipfile
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from keras_nmt.seq2seq import Seq2SeqInference
from keras_nmt.text import TextProcessor
from keras_nmt.text import join_tokens
from keras_nmt.text import standardize

METHODS = ("greedy", "sample", "beam")
MODEL_FILE = "model.keras"
CONFIG_FILE = "translator.json"
_FORMAT_VERSION = 1
# Files and directories being written start with this prefix until they are
# complete and renamed (see `save_model_atomically`); a crash may leave some.
TEMP_PREFIX = ".keras-nmt-tmp-"


class TranslatorLoadError(ValueError):
    """A translator directory holds a file that cannot be read.

    Raised by `Translator.load` for a corrupted or foreign `model.keras` or
    `translator.json`; the message names the file, what went wrong and what
    was expected. (A missing file raises `FileNotFoundError`.)
    """


class Translation(NamedTuple):
    """One translated sentence with its attention map.

    Attributes:
        text: the translation, as `Translator.translate` returns it.
        source_tokens: the `T_source` source tokens the model read, with
            `[START]` and `[END]` (NFC, lowercase), to label the columns of
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


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_sentences(sentences, where: str) -> list[str]:
    if isinstance(sentences, (str, bytes)):
        raise ValueError(
            f"{where} expects a list of sentences; received a single string "
            f"{sentences!r:.80}. Pass a list: [sentence]."
        )
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    if not isinstance(sentences, Sequence):
        raise ValueError(
            f"{where} expects a list of strings; received "
            f"{type(sentences).__name__}."
        )
    out = []
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, bytes):
            sentence = sentence.decode("utf-8")
        if not isinstance(sentence, str):
            raise ValueError(
                f"{where} expects a list of strings; element {i} is a "
                f"{type(sentence).__name__}: {sentence!r:.60}."
            )
        out.append(sentence)
    return out


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


def _check_options(method, beam_width, length_penalty, temperature, top_k):
    if method not in METHODS:
        raise ValueError(
            f"Invalid method={method!r}; expected one of {list(METHODS)}."
        )
    if not _is_int(beam_width) or beam_width < 1:
        raise ValueError(
            f"Invalid beam_width={beam_width!r}; expected an integer >= 1 "
            "(the number of hypotheses kept per sentence, e.g. 5)."
        )
    if not _is_number(length_penalty) or length_penalty < 0:
        raise ValueError(
            f"Invalid length_penalty={length_penalty!r}; expected a number "
            ">= 0 (the GNMT alpha: 0 = none, 0.6 = the usual value)."
        )
    if not _is_number(temperature) or not temperature > 0:
        raise ValueError(
            f"Invalid temperature={temperature!r}; expected a number > 0 "
            "(1.0 samples from the model's distribution)."
        )
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(
            f"Invalid top_k={top_k!r}; expected None (all tokens) or an "
            "integer >= 1."
        )


def _display(token: str) -> str:
    return unicodedata.normalize("NFC", token)


def normalize_for_scoring(texts: Sequence[str]) -> list[str]:
    """The form in which translations and references are compared.

    Both sides go through the same steps as a model's output: the package's
    `standardize` (Unicode case folding, NFKD, spaces around punctuation,
    symbols dropped, whitespace collapsed), then `join_tokens` (punctuation
    re-attached, NFC). So `"Hello, Tom!"` and `"hello ,  tom !"` both become
    `"hello, tom!"`: case and spacing do not count, words and punctuation
    do.

    Args:
        texts: a list of strings.

    Returns:
        The normalised strings, in order.
    """
    texts = _check_sentences(texts, "normalize_for_scoring")
    if not texts:
        return []
    words = tf.strings.split(standardize(tf.constant(texts, tf.string)))
    return [s.decode("utf-8") for s in join_tokens(words).numpy()]


def corpus_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Corpus BLEU and exact match of translations against references.

    Both sides are first normalised with `normalize_for_scoring` (lowercase,
    NFC, canonical spacing: the form the translator outputs). BLEU is
    sacrebleu's `corpus_bleu` with its defaults (13a tokenisation, exponential
    smoothing off, case-sensitive on the already lowercased text); a sentence
    may have several references. A translation is an exact match when its
    normalised form equals the normalised form of any of its references.

    Args:
        hypotheses: one translation per sentence.
        references: for each sentence, a non-empty list of its reference
            translations.

    Returns:
        A dict: `"bleu"` (0-100), `"exact_match"` (percent of sentences,
        0-100), `"sentences"` (number of hypotheses), `"references"` (total
        number of references) and `"bleu_signature"` (sacrebleu's
        signature, for reproducibility).

    Raises:
        ValueError: if the lengths differ, a sentence has no reference, or
            the inputs are not strings.

    Example:

    >>> scores = corpus_scores(["Hello, Tom!"], [["hello, tom!", "Hi Tom."]])
    >>> round(scores["bleu"], 6), scores["exact_match"]
    (100.0, 100.0)
    """
    import sacrebleu

    hypotheses = _check_sentences(hypotheses, "corpus_scores (hypotheses)")
    if isinstance(references, (str, bytes)) or len(references) != len(
        hypotheses
    ):
        raise ValueError(
            "corpus_scores needs one list of references per hypothesis; "
            f"received {len(hypotheses)} hypotheses and "
            f"{'a string' if isinstance(references, str) else len(references)}"
            " reference lists."
        )
    groups = []
    for i, refs in enumerate(references):
        refs = _check_sentences(refs, f"corpus_scores (references[{i}])")
        if not refs:
            raise ValueError(
                f"corpus_scores: sentence {i} has no reference; every "
                "hypothesis needs at least one."
            )
        groups.append(refs)
    if not hypotheses:
        raise ValueError("corpus_scores received no sentences to score.")
    flat = normalize_for_scoring([r for refs in groups for r in refs])
    hyps = normalize_for_scoring(hypotheses)
    normalized, start = [], 0
    for refs in groups:
        normalized.append(flat[start : start + len(refs)])
        start += len(refs)
    width = max(len(refs) for refs in normalized)
    # sacrebleu takes reference *streams*; None fills the missing ones.
    streams = [
        [refs[k] if k < len(refs) else None for refs in normalized]
        for k in range(width)
    ]
    metric = sacrebleu.metrics.BLEU()
    bleu = metric.corpus_score(hyps, streams)
    exact = sum(h in refs for h, refs in zip(hyps, normalized, strict=True))
    return {
        "bleu": float(bleu.score),
        "exact_match": 100.0 * exact / len(hyps),
        "sentences": len(hyps),
        "references": len(flat),
        "bleu_signature": str(metric.get_signature()),
    }


class Translator:
    """Translate strings with a trained seq2seq model.

    Holds a model from `keras_nmt.seq2seq.build_seq2seq` and the
    `TextProcessor` it was trained with. Sentences are standardised and
    tokenised by the processor, decoded in batches by one compiled loop
    (`keras_nmt.seq2seq.Seq2SeqInference`), and detokenised (case is
    not restored: output is lowercase). Every batch is padded to
    `(batch_size, processor.max_length)` tokens, so each decoding method
    (and option values) compiles once, whatever the number and length of
    the sentences. A sentence with no words after
    standardisation (empty, only whitespace or symbols) translates to `""`.

    Args:
        model: the trained seq2seq `keras.Model`.
        processor: the `TextProcessor` the model was trained with.
        max_length: the most tokens generated per sentence (`[END]`
            included); defaults to `processor.max_length`.
        beam_width: the default beam width of `method="beam"`.
        length_penalty: the default GNMT length penalty (alpha) of beam
            search.
        batch_size: sentences decoded per compiled call.
        seed: optional int, seed of `method="sample"`.

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
        beam_width: int = 5,
        length_penalty: float = 0.6,
        batch_size: int = 64,
        seed: int | None = None,
    ):
        _check_model(model, processor)
        if max_length is None:
            max_length = processor.max_length
        if not _is_int(max_length) or max_length < 1:
            raise ValueError(
                f"Invalid max_length={max_length!r}; expected None or an "
                "integer >= 1 (tokens generated per sentence)."
            )
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(
                f"Invalid batch_size={batch_size!r}; expected an integer >= 1."
            )
        if seed is not None and not _is_int(seed):
            raise ValueError(f"Invalid seed={seed!r}; expected None or an int.")
        _check_options("greedy", beam_width, length_penalty, 1.0, None)
        self.model = model
        self.processor = processor
        self.max_length = int(max_length)
        self.beam_width = int(beam_width)
        self.length_penalty = float(length_penalty)
        self.batch_size = int(batch_size)
        self.seed = seed
        self._inference = None

    @property
    def inference(self) -> Seq2SeqInference:
        """The `Seq2SeqInference` that decodes (created on first use).

        It reads the model's current weights at every call. A model built
        under a mixed-precision policy decodes in that policy (16-bit
        computations, float32 logits and scores).
        """
        if self._inference is None:
            self._inference = Seq2SeqInference(
                self.model,
                start_token=self.processor.start_id,
                end_token=self.processor.end_id,
                max_length=self.max_length,
                seed=self.seed,
            )
        return self._inference

    def get_config(self) -> dict[str, Any]:
        """The decoding settings saved in `translator.json`."""
        return {
            "max_length": self.max_length,
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    # ---- translating -----------------------------------------------------

    def translate(
        self,
        sentences: Sequence[str],
        *,
        method: str = "greedy",
        beam_width: int | None = None,
        length_penalty: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> list[str]:
        """Translate a list of sentences.

        Args:
            sentences: a list of strings (not a single string).
            method: `"greedy"` (the most probable token at each step),
                `"sample"` (tokens drawn from the model's distribution, with
                `temperature` and `top_k`) or `"beam"` (beam search; the best
                hypothesis is returned).
            beam_width: hypotheses kept by beam search; `None` = the
                translator's default.
            length_penalty: GNMT alpha of beam search (0 = none); `None` =
                the translator's default.
            temperature: sampling temperature, > 0.
            top_k: sample among the `top_k` most probable tokens only;
                `None` = all.

        Returns:
            One translation per sentence, in order (lowercase, punctuation
            attached; `""` for a sentence without words).

        Raises:
            ValueError: if `sentences` is a single string or holds
                non-strings, or on an invalid option.
        """
        decoded = self._decode(
            _check_sentences(sentences, "Translator.translate"),
            method,
            beam_width,
            length_penalty,
            temperature,
            top_k,
        )
        return decoded["text"]

    def translate_with_attention(
        self,
        sentence: str,
        *,
        method: str = "greedy",
        beam_width: int | None = None,
        length_penalty: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Translation:
        """Translate one sentence and return its attention map.

        The options are those of `translate`; the translation equals
        `translate([sentence], ...)[0]` (for `"sample"`, a new draw).

        Args:
            sentence: one string.
            method, beam_width, length_penalty, temperature, top_k: as in
                `translate`.

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
        decoded = self._decode(
            [sentence], method, beam_width, length_penalty, temperature, top_k
        )
        if not decoded["nonempty"][0]:
            return Translation("", [], [], np.zeros((0, 0), "float32"), 0.0)
        source_ids = decoded["source_ids"][0]
        target_ids = decoded["tokens"][0][: decoded["lengths"][0]]
        source_tokens = self.processor.ids_to_tokens([source_ids], "source")[0]
        target_tokens = self.processor.ids_to_tokens([target_ids], "target")[0]
        attention = decoded["attention"][0][
            : len(target_tokens), : len(source_tokens)
        ]
        return Translation(
            decoded["text"][0],
            [_display(t) for t in source_tokens],
            [_display(t) for t in target_tokens],
            np.asarray(attention, dtype="float32"),
            float(decoded["scores"][0]),
        )

    def _decode(
        self, sentences, method, beam_width, length_penalty, temperature, top_k
    ) -> dict[str, list]:
        """Translate `sentences`; per sentence: text, source ids (unpadded),
        generated tokens, lengths, attention and score (best beam)."""
        beam_width = self.beam_width if beam_width is None else beam_width
        if length_penalty is None:
            length_penalty = self.length_penalty
        _check_options(method, beam_width, length_penalty, temperature, top_k)
        n = len(sentences)
        out = {
            "text": [""] * n,
            "nonempty": [False] * n,
            "source_ids": [None] * n,
            "tokens": [None] * n,
            "lengths": [0] * n,
            "attention": [None] * n,
            "scores": [0.0] * n,
        }
        if not n:
            return out
        ids = self.processor.tokenize_ragged(sentences, "source")
        rows = [np.asarray(r, dtype="int32") for r in ids.to_list()]
        todo = [i for i, r in enumerate(rows) if len(r) > 2]
        for begin in range(0, len(todo), self.batch_size):
            chunk = todo[begin : begin + self.batch_size]
            source = _pad_sources(
                [rows[i] for i in chunk],
                self.batch_size,
                self.processor.max_length,
            )
            if method == "greedy":
                result = self.inference.greedy(source)
            elif method == "sample":
                result = self.inference.sample(
                    source, temperature=float(temperature), top_k=top_k
                )
            else:
                result = self.inference.beam_search(
                    source,
                    beam_width=int(beam_width),
                    length_penalty=float(length_penalty),
                )
            result = [keras.ops.convert_to_numpy(x) for x in result]
            tokens, scores, _, attention, lengths = result
            if method == "beam":  # the best hypothesis of each source
                tokens, scores = tokens[:, 0], scores[:, 0]
                attention, lengths = attention[:, 0], lengths[:, 0]
            texts = self.processor.detokenize_target(tokens)
            for j, i in enumerate(chunk):
                out["text"][i] = texts[j]
                out["nonempty"][i] = True
                out["source_ids"][i] = rows[i]
                out["tokens"][i] = tokens[j]
                out["lengths"][i] = int(lengths[j])
                out["attention"][i] = attention[j]
                out["scores"][i] = float(scores[j])
        return out

    # ---- evaluation ------------------------------------------------------

    def evaluate(
        self,
        sources: Sequence[str],
        references: Sequence[str],
        *,
        method: str = "greedy",
        beam_width: int | None = None,
        length_penalty: float | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> dict[str, Any]:
        """Corpus BLEU and exact match on parallel sentences.

        Pairs that share a source sentence (spa.txt has several
        translations of many sentences) are grouped: the source is
        translated once and scored against all its references. Scoring is
        `corpus_scores`: sacrebleu's corpus BLEU (13a tokenisation) and exact
        match, after `normalize_for_scoring` on both sides.

        Args:
            sources: source sentences, one per pair.
            references: the reference translation of each pair.
            method, beam_width, length_penalty, temperature, top_k: as in
                `translate`.

        Returns:
            The dict of `corpus_scores` (`"bleu"`, `"exact_match"`,
            `"sentences"` = distinct sources, `"references"`,
            `"bleu_signature"`), plus `"method"`.

        Raises:
            ValueError: on lists of different lengths, no pairs, or invalid
                options.
        """
        sources = _check_sentences(sources, "Translator.evaluate (sources)")
        references = _check_sentences(
            references, "Translator.evaluate (references)"
        )
        if len(sources) != len(references) or not sources:
            raise ValueError(
                "Translator.evaluate needs one reference per source and at "
                f"least one pair; received {len(sources)} sources and "
                f"{len(references)} references."
            )
        grouped: dict[str, list[str]] = {}
        for source, reference in zip(sources, references, strict=True):
            grouped.setdefault(source, []).append(reference)
        hypotheses = self.translate(
            list(grouped),
            method=method,
            beam_width=beam_width,
            length_penalty=length_penalty,
            temperature=temperature,
            top_k=top_k,
        )
        scores = corpus_scores(hypotheses, list(grouped.values()))
        scores["method"] = method
        return scores

    # ---- saving ----------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> None:
        """Write the translator into `directory` (created if needed).

        Files: `model.keras` (the whole model, one file), the processor's
        `source_vocab.txt`, `target_vocab.txt` and `text_processor.json`,
        and `translator.json` (decoding settings: `max_length`,
        `beam_width`, `length_penalty`, `batch_size`, `seed`). Existing
        files of those names are overwritten.

        Crash-safe: every file is first written completely under a
        temporary name in `directory` (starting with
        `.keras-nmt-tmp-`), flushed to disk, and only then renamed
        over the real name (`os.replace`, atomic on POSIX and Windows),
        `translator.json` last. So a crash, a full disk or a kill while
        saving leaves each file either entirely old or entirely new, never
        truncated; temporary files left by a crash are ignored by `load`
        and removed by the next `save`.

        Args:
            directory: the output directory.
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        remove_temporary_files(directory)
        config = {
            "format_version": _FORMAT_VERSION,
            "model_file": MODEL_FILE,
            **self.get_config(),
        }
        staging = _temporary_path(directory, "save")
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
                _fsync(staging / name)
                os.replace(staging / name, directory / name)
            _fsync_directory(directory)
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
        config_path = directory / CONFIG_FILE
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
                f"Could not load the model file '{model_path}' ({detail}). "
                f"{advice}"
            ) from error
        options = {
            key: config[key]
            for key in (
                "max_length",
                "beam_width",
                "length_penalty",
                "batch_size",
                "seed",
            )
            if key in config
        }
        try:
            return cls(model, processor, **options)
        except ValueError as error:
            raise TranslatorLoadError(
                f"'{directory}' holds a model and a processor that do not "
                f"fit together, or invalid settings: {error}"
            ) from None

    # ---- export ----------------------------------------------------------

    def export(self, path: str | os.PathLike) -> None:
        """Write a SavedModel that translates strings with TensorFlow alone.

        The SavedModel's signatures take a 1-D `tf.string` tensor of
        sentences and return a 1-D `tf.string` tensor of translations, with
        standardisation, vocabulary lookup, decoding and detokenisation all
        in the graph: `"translate"` (greedy) and `"translate_beam"` (beam
        search with this translator's `beam_width` and `length_penalty`).
        Their outputs equal `translate(..., method="greedy")` and
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
                "Translator.export writes a TensorFlow SavedModel and needs "
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
        remove_temporary_files(path.parent, path.name)
        archive = keras.export.ExportArchive()
        archive.track(self.inference.model)
        archive.track(self.processor)
        spec = [tf.TensorSpec([None], tf.string, name="sentences")]
        archive.add_endpoint(
            "translate", self._graph_translate("greedy"), input_signature=spec
        )
        archive.add_endpoint(
            "translate_beam",
            self._graph_translate("beam"),
            input_signature=spec,
        )
        staging = _temporary_path(path.parent, path.name)
        staging.mkdir()
        try:
            archive.write_out(str(staging), verbose=False)
            _replace_directory(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _graph_translate(self, method: str):
        """The in-graph `sentences -> translations` for `export`: the same
        steps (and padded shapes) as `_decode`."""
        processor = self.processor
        inference = self.inference
        beam_width, length_penalty = self.beam_width, self.length_penalty

        def translate(sentences):
            ids = processor.tokenize_ragged(sentences, "source")
            nonempty = ids.row_lengths() > 2
            indices = tf.where(nonempty)[:, 0]
            source = tf.gather(ids, indices).to_tensor(
                0, shape=[None, processor.max_length]
            )
            if method == "beam":
                tokens = inference.beam_search(
                    source, beam_width=beam_width, length_penalty=length_penalty
                ).tokens[:, 0]
            else:
                tokens = inference.greedy(source).tokens
            text = processor.detokenize_target_tensor(tokens)
            return tf.tensor_scatter_nd_update(
                tf.fill(tf.shape(sentences), ""), indices[:, None], text
            )

        return translate


# ---- crash-safe writes ------------------------------------------------------
# Shared by Translator.save/export and train_translator: a file is written
# completely under a temporary name in the same directory, flushed, then
# renamed over the real name with os.replace (atomic), so a reader never sees
# a half-written file under the real name.


def _fsync(path: pathlib.Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory: pathlib.Path) -> None:
    """Make renames in `directory` durable (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_path(directory, name: str, suffix: str = "") -> pathlib.Path:
    """A new name in `directory` for what becomes `name` once complete
    (created by the caller, so it gets the usual permissions)."""
    unique = uuid.uuid4().hex[:12]
    return pathlib.Path(directory) / f"{TEMP_PREFIX}{name}-{unique}{suffix}"


def write_atomically(path, write, suffix: str = "") -> None:
    """Crash-safe `write(path)`: never a partial file at `path`.

    Calls `write(temporary)` with a new path in the same directory (named
    `TEMP_PREFIX + path.stem + "-..." + suffix`), flushes the file to disk,
    then renames it over `path` with `os.replace`, which is atomic: readers
    see the old file or the new one, whole. On an error the temporary file
    is deleted and the error raised.

    Args:
        path: the file to write.
        write: a function that writes the file at the path it is given.
        suffix: the ending the writer needs (e.g. `".keras"`).
    """
    path = pathlib.Path(path)
    temporary = _temporary_path(path.parent, path.stem, suffix)
    try:
        write(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def save_model_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.save(path)` (a `.keras` file) that never leaves a partial file
    at `path`: the previous file stays until the new one is complete."""
    write_atomically(path, model.save, suffix=".keras")


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` through a temporary file and a rename."""
    write_atomically(
        path, lambda p: p.write_text(text, encoding="utf-8"), suffix=".tmp"
    )


def remove_temporary_files(
    directory: str | os.PathLike, name: str | None = None
) -> None:
    """Delete what interrupted crash-safe writes left in `directory`: every
    entry named `TEMP_PREFIX...`, or only `TEMP_PREFIX + name + "-..."`."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return
    prefix = TEMP_PREFIX if name is None else f"{TEMP_PREFIX}{name}-"
    for entry in directory.iterdir():
        if not entry.name.startswith(prefix):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _replace_directory(new: pathlib.Path, path: pathlib.Path) -> None:
    """Rename the complete directory `new` to `path`, replacing (and then
    deleting) a previous `path`."""
    if path.exists():
        old = path.parent / f"{TEMP_PREFIX}{path.name}-old-{uuid.uuid4().hex}"
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)
    _fsync_directory(path.parent)


def _pad_sources(rows: list[np.ndarray], batch: int, length: int) -> np.ndarray:
    """Token rows -> int32 `(batch, length)`, zero-padded on the right, and
    filled up to `batch` rows with copies of the last row (which end when it
    does, so they never prolong the decoding loop)."""
    source = np.zeros((batch, length), dtype="int32")
    for i in range(batch):
        row = rows[min(i, len(rows) - 1)]
        source[i, : len(row)] = row
    return source
