"""One side's subword vocabulary (SentencePiece unigram), case kept."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import pathlib
import random
import re
from collections.abc import Iterable

import sentencepiece
import tensorflow as tf
from tensorflow_text.python.ops.sentencepiece_tokenizer import (
    gen_sentencepiece_tokenizer,
)

from keras_nmt.native import native_stderr_to_devnull
from keras_nmt.text.standardize import END_TOKEN
from keras_nmt.text.standardize import PAD_TOKEN
from keras_nmt.text.standardize import START_TOKEN
from keras_nmt.text.standardize import UNK_TOKEN
from keras_nmt.text.standardize import standardize_cased
from keras_nmt.text.vocabulary import END_ID
from keras_nmt.text.vocabulary import PAD_ID
from keras_nmt.text.vocabulary import PAD_IN_FILE
from keras_nmt.text.vocabulary import START_ID
from keras_nmt.text.vocabulary import UNK_ID
from keras_nmt.text.vocabulary import as_sentence_batch
from keras_nmt.text.vocabulary import check_max_length
from keras_nmt.text.vocabulary import checked_ids
from keras_nmt.text.vocabulary import content_mask
from keras_nmt.text.vocabulary import ids_array
from keras_nmt.text.vocabulary import ids_to_token_lists
from keras_nmt.text.vocabulary import warn_truncated
from keras_nmt.text.vocabulary import wrap_ids

DEFAULT_VOCAB_SIZE = 8000
DEFAULT_SAMPLE_SIZE = 1_000_000
# Pieces every model holds besides the learned ones: the four reserved
# tokens and the 256 byte pieces of byte fallback.
_FIXED_PIECES = 4 + 256
_CHUNK = 8192  # sentences standardised per op call when training
_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")

# Why SentencePiece unigram (Kudo 2018) and not BPE or WordPiece: it
# learns from raw text without pre-tokenisation, so scripts without spaces
# (Japanese, Chinese) and attached punctuation ("¿qué", "l'homme") need no
# language rules; its pieces keep the word-start marker "▁", so
# `detokenize` restores the exact text (no "2024 - 08 - 02"); byte
# fallback maps any character never seen to its UTF-8 bytes instead of
# [UNK]; and tensorflow-text runs the same model as a TensorFlow op, so it
# works eagerly, in tf.data and in an exported SavedModel.


def train_sentencepiece(
    sentences: Iterable[str],
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> bytes:
    """Train a SentencePiece unigram model with our reserved ids.

    The sentences are read once: a uniform sample of at most `sample_size`
    of them is kept (reservoir sampling with `random.Random(seed)`, so
    memory stays bounded on a huge corpus and the same data and seed give
    the same model), standardised with `standardize_cased`, and passed to
    SentencePiece (normalisation "identity": case and characters are
    kept; character coverage 0.9995; byte fallback). Ids: 0 `[PAD]`,
    1 `[UNK]`, 2 `[START]`, 3 `[END]`, 4-259 the bytes `<0x00>` ...
    `<0xFF>`, then the learned pieces.

    Args:
        sentences: raw sentences (an iterable, read once).
        vocab_size: the requested number of pieces, reserved and byte
            pieces included. A soft limit: a corpus that supports fewer
            pieces gives a smaller vocabulary instead of an error.
        sample_size: the most sentences to learn from.
        seed: the sampling seed.

    Returns:
        The serialized model (`ModelProto` bytes).

    Raises:
        ValueError: on invalid arguments, no text, or a `vocab_size` below
            what the corpus' characters need.
    """
    for name, value, low in (
        ("vocab_size", vocab_size, _FIXED_PIECES + 1),
        ("sample_size", sample_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"Invalid {name}={value!r}; expected an integer >= {low}."
            )
    sample = _reservoir_sample(sentences, sample_size, seed)
    lines = []
    for begin in range(0, len(sample), _CHUNK):
        chunk = as_sentence_batch(sample[begin : begin + _CHUNK], "train")
        lines += [s for s in standardize_cased(chunk).numpy().tolist() if s]
    if not lines:
        raise ValueError(
            "Cannot learn subwords: the sentences hold no text (all are "
            "empty or whitespace). Pass the training sentences."
        )
    writer = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=(line.decode("utf-8") for line in lines),
            model_writer=writer,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=0.9995,
            byte_fallback=True,
            normalization_rule_name="identity",
            input_sentence_size=0,  # sampled above, deterministically
            shuffle_input_sentence=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            pad_piece=PAD_IN_FILE,
            unk_piece=UNK_TOKEN,
            bos_piece=START_TOKEN,
            eos_piece=END_TOKEN,
            unk_surface=UNK_TOKEN,
            num_threads=min(os.cpu_count() or 1, 16),
            minloglevel=2,
        )
    except RuntimeError as error:
        match = _TOO_SMALL.search(str(error))
        if not match:
            raise
        raise ValueError(
            f"vocab_size={vocab_size} is too small for these sentences: "
            f"their characters need at least {match.group(2)} pieces (4 "
            "reserved, 256 bytes and the characters covering 99.95% of the "
            f"text). Use a vocab_size >= {match.group(2)}."
        ) from None
    return writer.getvalue()


def _reservoir_sample(sentences, size: int, seed: int) -> list[str]:
    if isinstance(sentences, (str, bytes)):
        raise ValueError(
            "Expected an iterable of sentences; received a single string "
            f"{sentences!r:.60}. Wrap it in a list: [sentence]."
        )
    rng = random.Random(seed)
    sample = []
    for n, sentence in enumerate(sentences):
        if n < size:
            sample.append(sentence)
        else:
            j = rng.randrange(n + 1)
            if j < size:
                sample[j] = sentence
    return sample


def _check_model(model, name: str) -> sentencepiece.SentencePieceProcessor:
    if not isinstance(model, bytes):
        raise ValueError(
            f"SubwordVocabulary {name!r} expects the serialized SentencePiece "
            f"model as bytes; received {type(model).__name__}. Build it with "
            "SubwordVocabulary.from_sentences or load a .model file."
        )
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except (RuntimeError, OSError):
        raise ValueError(
            f"SubwordVocabulary {name!r}: the bytes are not a SentencePiece "
            "model. Pass a model written by SubwordVocabulary.save or "
            "sentencepiece."
        ) from None
    layout = [
        (processor.pad_id(), PAD_ID),
        (processor.unk_id(), UNK_ID),
        (processor.bos_id(), START_ID),
        (processor.eos_id(), END_ID),
    ]
    pieces = [processor.id_to_piece(i) for i in range(min(4, len(processor)))]
    reserved = [PAD_IN_FILE, UNK_TOKEN, START_TOKEN, END_TOKEN]
    if any(got != want for got, want in layout) or pieces != reserved:
        raise ValueError(
            f"SubwordVocabulary {name!r}: the model's ids 0-3 are {pieces} "
            f"(pad/unk/bos/eos ids {[got for got, _ in layout]}); expected "
            f"{reserved} (ids 0, 1, 2, 3). Train it with "
            "SubwordVocabulary.from_sentences."
        )
    return processor


class _SentencepieceModel(tf.saved_model.experimental.TrackableResource):
    """The SentencePiece model as a TensorFlow resource, with the
    tensorflow-text ops that tokenise and detokenise with it.

    Why not `tensorflow_text.SentencepieceTokenizer` itself: its resource
    is private to the kernel that created it, so
    `keras.utils.clear_session()` (which clears the kernel cache) deletes
    it, and every later call, eager or in a `tf.function` / `tf.data`
    pipeline that captured it, fails with "Resource ... does not exist".
    Created under a shared name (the model's hash) the resource lives in
    the device's resource manager instead, and survives. Same ops, same
    results; a SavedModel re-creates it when loaded.
    """

    def __init__(self, model: bytes):
        super().__init__()
        self._model = model
        digest = hashlib.sha256(model).hexdigest()[:32]
        self._shared_name = f"keras_nmt_sentencepiece_{digest}"
        # Created now; SentencePiece's C++ logs a line to fd 2 for every
        # model with identity normalisation ("precompiled_charsmap is
        # empty"), which no setting silences.
        with native_stderr_to_devnull():
            _ = self.resource_handle

    def _create_resource(self):
        return gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self._model, shared_name=self._shared_name
        )

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """1-D `tf.string` -> int32 ragged piece ids, no [START]/[END]."""
        values, splits = gen_sentencepiece_tokenizer.sentencepiece_tokenize_op(
            self.resource_handle,
            text,
            nbest_size=0,
            alpha=1.0,
            add_bos=False,
            add_eos=False,
            reverse=False,
            out_type=tf.int32,
        )
        return tf.RaggedTensor.from_row_splits(values, splits)

    def detokenize(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """Int32 ragged piece ids -> 1-D `tf.string`."""
        return gen_sentencepiece_tokenizer.sentencepiece_detokenize_op(
            self.resource_handle,
            ids.flat_values,
            ids.row_splits,
            add_bos=False,
            add_eos=False,
            reverse=False,
        )


class SubwordVocabulary(tf.Module):
    """One side's subword tokens: sentences to SentencePiece ids and back.

    The subword counterpart of `Vocabulary`, with the same interface and
    ids 0 = padding, 1 = `[UNK]`, 2 = `[START]`, 3 = `[END]`; then the
    256 byte pieces `<0x00>` ... `<0xFF>` (byte fallback: a character the
    model has no piece for is spelled as its UTF-8 bytes, so any text
    round-trips and `[UNK]` does not occur) and the learned pieces. Case
    is kept: sentences are standardised with `standardize_cased` (NFC,
    whitespace collapsed) and cut into unigram pieces by
    the tensorflow-text SentencePiece ops; `detokenize` returns the
    standardised text exactly ("2024-08-02", "l'homme", "¿Qué tal?").

    Truncation, as in `Vocabulary`: a sentence of more than
    `max_length - 2` pieces keeps its first `max_length - 2` and still
    ends with `[END]`; eager calls of `tokenize` / `tokenize_ragged` warn.

    A `tf.Module`: the tokenizer (holding the model proto) is tracked, so
    a model that holds the vocabulary exports its methods into a
    SavedModel that plain TensorFlow with tensorflow-text loads. Rebuilt
    from `get_config()` (JSON-serialisable: the model in base64) or from
    the `.model` file written by `save(path)`.

    Args:
        model: the serialized SentencePiece model (bytes), with the
            reserved ids above (see `train_sentencepiece`).
        max_length: the longest token sequence, `[START]` and `[END]`
            included (at least 3).
        name: the `tf.Module` name, also used in messages.

    Raises:
        ValueError: if `model` is not a SentencePiece model with the
            reserved ids, or on a `max_length` below 3.

    Example:

    >>> vocabulary = SubwordVocabulary.from_sentences(
    ...     ["¿Qué tal?", "Hola, Ana."] * 50, max_length=32)
    >>> ids = vocabulary.tokenize(["Hola, ¿qué tal?"])
    >>> vocabulary.detokenize(ids)
    ['Hola, ¿qué tal?']
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    start_id = START_ID
    end_id = END_ID

    def __init__(
        self, model: bytes, *, max_length: int = 64, name: str = "vocabulary"
    ):
        super().__init__(name=name)
        processor = _check_model(model, name)
        self.max_length = check_max_length(max_length)
        self._model = model
        self._tokens = (
            PAD_TOKEN,
            *(processor.id_to_piece(i) for i in range(1, len(processor))),
        )
        with self.name_scope:
            self._tokenizer = _SentencepieceModel(model)

    @classmethod
    def from_sentences(
        cls,
        sentences: Iterable[str],
        *,
        max_tokens: int | None = None,
        max_length: int = 64,
        name: str = "vocabulary",
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
    ) -> SubwordVocabulary:
        """Learn a subword vocabulary from training sentences.

        Args:
            sentences: raw sentences (read once).
            max_tokens: the requested vocabulary size, reserved and byte
                pieces included; default 8000. A soft limit: small corpora
                give fewer pieces (see `train_sentencepiece`).
            max_length: the longest token sequence.
            name: the vocabulary's name.
            sample_size: the most sentences to learn from (a uniform
                sample of a larger corpus).
            seed: the sampling seed.

        Returns:
            A `SubwordVocabulary`.

        Raises:
            ValueError: on no text or invalid arguments.
        """
        model = train_sentencepiece(
            sentences,
            vocab_size=DEFAULT_VOCAB_SIZE if max_tokens is None else max_tokens,
            sample_size=sample_size,
            seed=seed,
        )
        return cls(model, max_length=max_length, name=name)

    @property
    def model(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._model

    @property
    def tokens(self) -> list[str]:
        """The pieces in id order (id 0, padding, as `""`)."""
        return list(self._tokens)

    @property
    def size(self) -> int:
        """The number of pieces (ids are `0 ... size - 1`)."""
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def tokenize_counting(self, strings) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """Sentences -> ragged ids and the number of truncated sentences.

        Like `tokenize_ragged`, but never warns.

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            `(ids, n_truncated)`: int32 ragged ids `(batch, None)`,
            `[START]` ... `[END]`, and a scalar int64 count of the
            sentences with more than `max_length - 2` pieces.
        """
        text = as_sentence_batch(strings, f"SubwordVocabulary {self.name!r}")
        pieces = self._tokenizer.tokenize(standardize_cased(text))
        return wrap_ids(pieces, self.max_length)

    def _tokenize_and_warn(self, strings) -> tf.RaggedTensor:
        ids, n_truncated = self.tokenize_counting(strings)
        warn_truncated(
            f"SubwordVocabulary {self.name!r}",
            n_truncated,
            ids.nrows(),
            self.max_length,
            "subword pieces",
        )
        return ids

    def tokenize_ragged(self, strings) -> tf.RaggedTensor:
        """Sentences -> ragged ids, `[START]` ... `[END]`, no padding.

        Works eagerly, in `tf.data` and inside `tf.function`. Truncates to
        `max_length` (and warns, when eager).

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            An int32 `tf.RaggedTensor` of shape `(batch, None)`.
        """
        return self._tokenize_and_warn(strings)

    def tokenize(self, strings) -> tf.Tensor:
        """Sentences -> ids `(batch, length)`, padded with 0.

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            An int32 tensor, `[START]` ... `[END]`, padded to the longest
            sentence of the batch.
        """
        return self._tokenize_and_warn(strings).to_tensor(PAD_ID)

    def detokenize_tensor(self, ids) -> tf.Tensor:
        """Ids -> display strings, with TensorFlow ops only.

        Reads each row up to its first `[END]`, drops padding and
        `[START]`, decodes the pieces with SentencePiece (bytes joined back
        into characters, `[UNK]` shown as "[UNK]") and applies
        `standardize_cased` (NFC, single spaces). Ids outside the
        vocabulary raise an `InvalidArgumentError`.

        Args:
            ids: integer ids `(batch, length)`, dense or ragged.

        Returns:
            A `tf.string` tensor of shape `(batch,)`.
        """
        ids = checked_ids(ids, self.size, self.name)
        pieces = tf.ragged.boolean_mask(
            tf.cast(ids, tf.int32), content_mask(ids)
        )
        return standardize_cased(self._tokenizer.detokenize(pieces))

    def detokenize(self, ids) -> list[str]:
        """Ids -> display strings (eager); see `detokenize_tensor`.

        Args:
            ids: integer ids `(batch, length)`: a NumPy array, a tensor, a
                ragged tensor or a list of lists.

        Returns:
            A list of `batch` strings.

        Raises:
            ValueError: if ids are not 2-D or lie outside `[0, size)`.
        """
        array = ids_array(ids, self.size, self.name)
        text = self.detokenize_tensor(array)
        return [s.decode("utf-8") for s in text.numpy()]

    def ids_to_tokens(self, ids) -> list[list[str]]:
        """Ids -> pieces, padding removed (e.g. to label attention plots).

        Pieces are shown as SentencePiece writes them: a piece that starts
        a word begins with "▁" (U+2581), so word boundaries stay visible
        ("▁Buenos", "▁d", "ías"); a character without a piece appears as
        its bytes ("<0xE2>"); `[START]`, `[END]`, `[UNK]` are kept.

        Args:
            ids: integer ids `(batch, length)`.

        Returns:
            One list of pieces per row.

        Raises:
            ValueError: on an id outside `[0, size)`.
        """
        return ids_to_token_lists(ids, self._tokens, self.name)

    def get_config(self) -> dict:
        """A JSON-serialisable dict (the model in base64); `from_config`
        rebuilds the vocabulary."""
        return {
            "model": base64.b64encode(self._model).decode("ascii"),
            "max_length": self.max_length,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> SubwordVocabulary:
        """Rebuild a vocabulary from `get_config()`."""
        config = dict(config)
        encoded = config.pop("model", None)
        try:
            model = base64.b64decode(encoded, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise ValueError(
                "SubwordVocabulary.from_config expects 'model': the base64 "
                f"text of a SentencePiece model; received {encoded!r:.40}. "
                "Use the dict written by get_config()."
            ) from None
        return cls(model, **config)

    def save(self, path: str | os.PathLike) -> None:
        """Write the SentencePiece model (binary) to the file `path`.

        The file is a standard `.model` file: `sentencepiece` and
        `tensorflow_text.SentencepieceTokenizer` read it. `max_length` is
        not written: pass it to `load`.

        Args:
            path: the file to write (parents created if needed).
        """
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self._model)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int,
        name: str = "vocabulary",
    ) -> SubwordVocabulary:
        """Read a model file written by `save(path)`.

        Raises:
            FileNotFoundError: if the file is missing.
            ValueError: if it is not a SentencePiece model with our ids.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No subword model file '{path}'; expected a file written by "
                "SubwordVocabulary.save()."
            )
        return cls(path.read_bytes(), max_length=max_length, name=name)

    def __repr__(self) -> str:
        return (
            f"<SubwordVocabulary name={self.name!r} size={self.size} "
            f"max_length={self.max_length}>"
        )
