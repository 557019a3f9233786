"""Source and target vocabularies: sentences <-> token ids."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import warnings
from collections.abc import Iterable
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.text.standardize import END_TOKEN
from keras_nmt.text.standardize import PAD_TOKEN
from keras_nmt.text.standardize import START_TOKEN
from keras_nmt.text.standardize import UNK_TOKEN
from keras_nmt.text.standardize import join_tokens
from keras_nmt.text.standardize import standardize

RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN, START_TOKEN, END_TOKEN)
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3

SOURCE_VOCAB_FILE = "source_vocab.txt"
TARGET_VOCAB_FILE = "target_vocab.txt"
CONFIG_FILE = "text_processor.json"
# The padding token ("") as written in vocabulary files: TensorFlow's
# TextFileInitializer rejects empty lines. Like [START], standardize can
# never produce it (it splits off the brackets).
PAD_IN_FILE = "[PAD]"
_FORMAT_VERSION = 1
_CHUNK = 8192  # sentences standardised per op call when counting words

# Why not `keras.layers.TextVectorization`: its adapted vocabulary places
# [START]/[END] wherever their frequency puts them and does not document its
# tie order; its config cannot hold our standardize function without
# registering it; and truncating while keeping [END] needs token-level
# control anyway. So the same `standardize` op runs here, words are counted
# in Python with an explicit order (count, then token), and ids are looked
# up in a `tf.lookup.StaticHashTable`: a tracked TensorFlow resource that
# works eagerly, in tf.data and in an exported SavedModel loaded by plain
# TensorFlow.


def _as_sentence_batch(strings, where: str) -> tf.Tensor:
    if isinstance(strings, (str, bytes)):
        raise ValueError(
            f"{where} expects a batch of sentences; received a single "
            f"string {strings!r}. Wrap it in a list: [sentence]."
        )
    if isinstance(strings, tf.Tensor):
        text = strings
    else:
        strings = list(strings)
        if not all(isinstance(s, (str, bytes)) for s in strings):
            kinds = sorted({type(s).__name__ for s in strings})
            raise ValueError(
                f"{where} expects strings; received elements of type "
                f"{', '.join(kinds)}."
            )
        text = tf.constant(strings, dtype=tf.string, shape=[len(strings)])
    if text.dtype != tf.string or text.shape.rank != 1:
        raise ValueError(
            f"{where} expects a 1-D tf.string tensor (one sentence per "
            f"row); received dtype {text.dtype.name} and shape "
            f"{text.shape}."
        )
    return text


def build_vocabulary(
    sentences: Iterable[str], *, max_tokens: int | None = None
) -> list[str]:
    """Build a deterministic vocabulary from raw sentences.

    The sentences are standardised with `standardize` and split on spaces;
    words are ranked by count (most frequent first), ties by the word itself
    (code-point order), so the same data always gives the same ids.

    Args:
        sentences: raw (not standardised) sentences.
        max_tokens: if given, the vocabulary size including the four
            reserved tokens; the least frequent words are left out (they
            map to `[UNK]`). At least 4.

    Returns:
        A list of tokens: `["", "[UNK]", "[START]", "[END]", word, ...]`;
        the index of a token is its id.

    Raises:
        ValueError: on an invalid `max_tokens`.

    Example:

    >>> build_vocabulary(["a b b.", "B c"])
    ['', '[UNK]', '[START]', '[END]', 'b', '.', 'a', 'c']
    """
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or max_tokens < len(RESERVED_TOKENS)
    ):
        raise ValueError(
            f"Invalid max_tokens={max_tokens!r}; expected None (keep every "
            f"word) or an integer >= {len(RESERVED_TOKENS)} (the vocabulary "
            "size including padding, [UNK], [START] and [END])."
        )
    counts = collections.Counter()
    sentences = list(sentences)
    for begin in range(0, len(sentences), _CHUNK):
        chunk = _as_sentence_batch(
            sentences[begin : begin + _CHUNK], "build_vocabulary"
        )
        for line in standardize(chunk).numpy():
            counts.update(line.decode("utf-8").split())
    for token in RESERVED_TOKENS:
        counts.pop(token, None)
    words = sorted(counts, key=lambda word: (-counts[word], word))
    if max_tokens is not None:
        words = words[: max_tokens - len(RESERVED_TOKENS)]
    return [*RESERVED_TOKENS, *words]


def _check_vocabulary(vocabulary, side: str) -> tuple[str, ...]:
    if isinstance(vocabulary, (str, bytes)) or not isinstance(
        vocabulary, Sequence
    ):
        raise ValueError(
            f"The {side} vocabulary must be a list of strings; received "
            f"{type(vocabulary).__name__}."
        )
    vocabulary = tuple(vocabulary)
    if vocabulary[: len(RESERVED_TOKENS)] != RESERVED_TOKENS:
        raise ValueError(
            f"The {side} vocabulary must start with the reserved tokens "
            f"{list(RESERVED_TOKENS)} (ids 0-3); received "
            f"{list(vocabulary[: len(RESERVED_TOKENS)])}. Build it with "
            "`build_vocabulary` or prepend them."
        )
    bad = [t for t in vocabulary if not isinstance(t, str)]
    if bad:
        raise ValueError(
            f"The {side} vocabulary must hold strings; received {bad[:3]!r}."
        )
    spaced = [t for t in vocabulary if t != t.strip() or " " in t]
    spaced += [t for t in vocabulary if any(c.isspace() for c in t)]
    if spaced:
        raise ValueError(
            f"The {side} vocabulary holds tokens with whitespace, e.g. "
            f"{spaced[0]!r}; tokens are split on whitespace, so these can "
            "never match."
        )
    seen, duplicates = set(), []
    for token in vocabulary:
        if token in seen:
            duplicates.append(token)
        seen.add(token)
    if duplicates:
        raise ValueError(
            f"The {side} vocabulary has duplicate tokens, e.g. "
            f"{duplicates[0]!r}; each token needs exactly one id."
        )
    return vocabulary


def _check_max_length(max_length) -> int:
    if (
        isinstance(max_length, bool)
        or not isinstance(max_length, (int, np.integer))
        or max_length < 3
    ):
        raise ValueError(
            f"Invalid max_length={max_length!r}; expected an integer >= 3 "
            "(the longest token sequence, counting [START] and [END])."
        )
    return int(max_length)


class TextProcessor(tf.Module):
    """Source and target vocabularies, from sentences to ids and back.

    Ids: 0 = padding, 1 = `[UNK]` (every word not in the vocabulary),
    2 = `[START]`, 3 = `[END]`, then words by decreasing training count.
    Sentences are standardised with `standardize`, split on spaces,
    truncated, and wrapped in `[START]` ... `[END]` on both sides (as in the
    TensorFlow NMT tutorial).

    Truncation: a sentence with more than `max_length - 2` words keeps its
    first `max_length - 2` words and still ends with `[END]`, so its length
    is `max_length` and a model still learns where sentences stop. Eager
    calls warn with the number of truncated sentences; nothing fails, and
    memory stays bounded whatever the input.

    The processor is a `tf.Module`: its lookup tables are tracked, so a
    `tf.Module` or Keras model that holds it can export its methods into a
    SavedModel. It is rebuilt without this package's Python state from
    `get_config()` (JSON-serialisable vocabulary lists) or from the files
    written by `save(directory)`.

    Args:
        source_vocabulary: list of source tokens; index = id. Must start
            with `["", "[UNK]", "[START]", "[END]"]`.
        target_vocabulary: list of target tokens, likewise.
        max_length: the longest token sequence, `[START]` and `[END]`
            included (at least 3).
        name: the `tf.Module` name.

    Raises:
        ValueError: on a vocabulary that does not start with the reserved
            tokens, has duplicates or tokens with whitespace, or on a
            `max_length` below 3.

    Example:

    >>> processor = TextProcessor.from_sentences(
    ...     ["Hola.", "¿Qué tal?"], ["Hi.", "How are you?"], max_length=10)
    >>> processor.tokenize_source(["¡Hola!"]).numpy()
    array([[2, 1, 6, 1, 3]], dtype=int32)
    >>> processor.detokenize_target([[2, 7, 4, 3, 0]])
    ['hi.']
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    start_id = START_ID
    end_id = END_ID

    def __init__(
        self,
        source_vocabulary: Sequence[str],
        target_vocabulary: Sequence[str],
        max_length: int = 64,
        name: str = "text_processor",
    ):
        super().__init__(name=name)
        source = _check_vocabulary(source_vocabulary, "source")
        target = _check_vocabulary(target_vocabulary, "target")
        self.max_length = _check_max_length(max_length)
        self._vocabularies = {"source": source, "target": target}
        with self.name_scope:
            self._tables = {
                side: self._make_table(vocab)
                for side, vocab in self._vocabularies.items()
            }
            self._target_tokens = tf.constant(target, dtype=tf.string)

    @staticmethod
    def _make_table(vocabulary):
        initializer = tf.lookup.KeyValueTensorInitializer(
            keys=tf.constant(vocabulary, dtype=tf.string),
            values=tf.range(len(vocabulary), dtype=tf.int32),
        )
        return tf.lookup.StaticHashTable(initializer, default_value=UNK_ID)

    @classmethod
    def from_sentences(
        cls,
        sources: Sequence[str],
        targets: Sequence[str],
        *,
        max_tokens: int | None = None,
        max_length: int = 64,
    ) -> TextProcessor:
        """Build both vocabularies from training sentences.

        Use the training split only, so validation and test words that were
        never seen map to `[UNK]` as they will in use.

        Args:
            sources: raw source sentences.
            targets: raw target sentences.
            max_tokens: if given, the size of each vocabulary including the
                four reserved tokens (see `build_vocabulary`).
            max_length: the longest token sequence, `[START]` and `[END]`
                included.

        Returns:
            A `TextProcessor`.

        Raises:
            ValueError: if a side is empty, or on invalid arguments.
        """
        for side, sentences in (("sources", sources), ("targets", targets)):
            if isinstance(sentences, (str, bytes)) or not len(sentences):
                raise ValueError(
                    f"from_sentences needs a non-empty list of {side}; "
                    f"received {sentences!r:.60}."
                )
        return cls(
            build_vocabulary(sources, max_tokens=max_tokens),
            build_vocabulary(targets, max_tokens=max_tokens),
            max_length=max_length,
        )

    @property
    def source_vocabulary(self) -> list[str]:
        """The source tokens; a token's index is its id."""
        return list(self._vocabularies["source"])

    @property
    def target_vocabulary(self) -> list[str]:
        """The target tokens; a token's index is its id."""
        return list(self._vocabularies["target"])

    @property
    def source_vocab_size(self) -> int:
        return len(self._vocabularies["source"])

    @property
    def target_vocab_size(self) -> int:
        return len(self._vocabularies["target"])

    def _tokenize(self, strings, side: str):
        """`(ids, n_truncated)`: ragged int32 ids `(batch, None)` and the
        number of sentences that were truncated (a scalar tensor)."""
        text = _as_sentence_batch(strings, f"tokenize ({side})")
        words = tf.strings.split(standardize(text))
        limit = self.max_length - 2
        n_truncated = tf.math.count_nonzero(words.row_lengths() > limit)
        ids = self._tables[side].lookup(words[:, :limit])
        column = tf.ones([ids.nrows(), 1], dtype=tf.int32)
        ids = tf.concat([column * START_ID, ids, column * END_ID], axis=1)
        return ids, n_truncated

    def _warn_truncated(self, n_truncated, total, side: str):
        if tf.executing_eagerly() and int(n_truncated):
            warnings.warn(
                f"{int(n_truncated)} of {int(total)} {side} sentence(s) had "
                f"more than max_length - 2 = {self.max_length - 2} words "
                f"and were truncated to max_length={self.max_length} tokens "
                "(ending with [END]). Build the TextProcessor with a larger "
                "max_length to keep them whole.",
                stacklevel=3,
            )

    def tokenize_ragged(self, strings, side: str = "source") -> tf.RaggedTensor:
        """Sentences -> ragged ids, `[START]` ... `[END]`, no padding.

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.
            side: `"source"` or `"target"` (which vocabulary to use).

        Returns:
            An int32 `tf.RaggedTensor` of shape `(batch, None)`.
        """
        if side not in self._tables:
            raise ValueError(
                f"Invalid side={side!r}; expected 'source' or 'target'."
            )
        ids, n_truncated = self._tokenize(strings, side)
        self._warn_truncated(n_truncated, ids.nrows(), side)
        return ids

    def tokenize_source(self, strings) -> tf.Tensor:
        """Source sentences -> padded ids.

        Works eagerly and inside `tf.function` (for export). Truncates to
        `max_length` (and warns, when eager).

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            An int32 tensor `(batch, length)`, `[START]` ... `[END]`, padded
            with 0 to the longest sentence of the batch.
        """
        return self.tokenize_ragged(strings, "source").to_tensor(PAD_ID)

    def tokenize_target(self, strings) -> tf.Tensor:
        """Target sentences -> padded ids; see `tokenize_source`."""
        return self.tokenize_ragged(strings, "target").to_tensor(PAD_ID)

    def detokenize_target_tensor(self, ids) -> tf.Tensor:
        """Target ids -> display strings, with TensorFlow ops only.

        Reads each row up to its first `[END]`, drops padding and `[START]`,
        and joins the words with `join_tokens` (punctuation re-attached,
        NFC). Use this inside `tf.function` / SavedModel signatures; ids
        outside the vocabulary raise an `InvalidArgumentError`.

        Args:
            ids: integer ids `(batch, length)`, dense or ragged.

        Returns:
            A `tf.string` tensor of shape `(batch,)`.
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(PAD_ID)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int64)
        if ids.shape.rank != 2:
            raise ValueError(
                "detokenize_target expects ids of shape (batch, length); "
                f"received shape {ids.shape}. Wrap one sentence in a list."
            )
        size = self.target_vocab_size
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(
                    ids, message="target ids must be >= 0"
                ),
                tf.debugging.assert_less(
                    ids,
                    tf.constant(size, tf.int64),
                    message=f"target ids must be < target_vocab_size={size}",
                ),
            ]
        ):
            ids = tf.identity(ids)
        ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1)
        keep = (
            tf.equal(ended, 0)
            & tf.not_equal(ids, PAD_ID)
            & tf.not_equal(ids, START_ID)
        )
        tokens = tf.ragged.boolean_mask(
            tf.gather(self._target_tokens, ids), keep
        )
        return join_tokens(tokens)

    def detokenize_target(self, ids) -> list[str]:
        """Target ids -> display strings (eager).

        Reads each row up to its first `[END]` (the rest is ignored), drops
        padding and `[START]`, keeps `[UNK]` visible, re-attaches
        punctuation and NFC-normalises (see `join_tokens`).

        Args:
            ids: integer ids `(batch, length)`: a NumPy array, a tensor, a
                ragged tensor or a list of lists.

        Returns:
            A list of `batch` strings.

        Raises:
            ValueError: if ids are not 2-D or lie outside
                `[0, target_vocab_size)`.
        """
        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids, dtype=tf.int64, ragged_rank=1)
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(PAD_ID)
        array = np.asarray(ids)
        if array.ndim != 2:
            raise ValueError(
                "detokenize_target expects ids of shape (batch, length); "
                f"received shape {array.shape}. Wrap one sentence in a list."
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"detokenize_target expects integer ids; received dtype "
                f"{array.dtype}."
            )
        if array.size and (
            array.min() < 0 or array.max() >= self.target_vocab_size
        ):
            raise ValueError(
                f"Target ids must lie in [0, {self.target_vocab_size}) (the "
                f"target vocabulary size); received ids from {array.min()} "
                f"to {array.max()}. Use the processor the model was trained "
                "with."
            )
        text = self.detokenize_target_tensor(array)
        return [s.decode("utf-8") for s in text.numpy()]

    def ids_to_tokens(self, ids, side: str = "target") -> list[list[str]]:
        """Ids -> token strings, padding removed (e.g. to label plots).

        Args:
            ids: integer ids `(batch, length)`.
            side: `"source"` or `"target"`.

        Returns:
            One list of tokens per row (`[START]`, `[END]`, `[UNK]` kept;
            words in standardised NFKD form).
        """
        if side not in self._vocabularies:
            raise ValueError(
                f"Invalid side={side!r}; expected 'source' or 'target'."
            )
        vocabulary = self._vocabularies[side]
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_list()
        elif isinstance(ids, tf.Tensor):
            ids = ids.numpy()
        out = []
        for row in ids:
            tokens = []
            for i in row:
                i = int(i)
                if not 0 <= i < len(vocabulary):
                    raise ValueError(
                        f"{side} id {i} is outside [0, {len(vocabulary)}) "
                        f"(the {side} vocabulary size)."
                    )
                if i != PAD_ID:
                    tokens.append(vocabulary[i])
            out.append(tokens)
        return out

    def get_config(self) -> dict:
        """A JSON-serialisable dict; `from_config` rebuilds the processor."""
        return {
            "source_vocabulary": self.source_vocabulary,
            "target_vocabulary": self.target_vocabulary,
            "max_length": self.max_length,
        }

    @classmethod
    def from_config(cls, config: dict) -> TextProcessor:
        """Rebuild a processor from `get_config()`."""
        return cls(**config)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the processor into `directory` (created if needed).

        Files: `source_vocab.txt` and `target_vocab.txt` (UTF-8, one token
        per line in id order, so line number = id; the padding token of id
        0 is written as `[PAD]`) and `text_processor.json` (`max_length`
        and the format version). Plain TensorFlow can read the vocabularies
        with `tf.lookup.TextFileInitializer` (`LINE_NUMBER` as value).

        Args:
            directory: where to write, e.g. next to a saved model.
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for side, file in (
            ("source", SOURCE_VOCAB_FILE),
            ("target", TARGET_VOCAB_FILE),
        ):
            tokens = (PAD_IN_FILE, *self._vocabularies[side][1:])
            text = "".join(t + "\n" for t in tokens)
            (directory / file).write_text(text, encoding="utf-8")
        config = {
            "format_version": _FORMAT_VERSION,
            "max_length": self.max_length,
            "source_vocabulary_file": SOURCE_VOCAB_FILE,
            "target_vocabulary_file": TARGET_VOCAB_FILE,
        }
        (directory / CONFIG_FILE).write_text(
            json.dumps(config, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TextProcessor:
        """Read a processor written by `save(directory)`.

        Raises:
            FileNotFoundError: if a file is missing.
            ValueError: if a file is not in the expected format.
        """
        directory = pathlib.Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"No {CONFIG_FILE} in '{directory}'; expected a directory "
                "written by TextProcessor.save()."
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{config_path}: format_version "
                f"{config.get('format_version')!r} is not supported; "
                f"expected {_FORMAT_VERSION}."
            )
        vocabularies = []
        for key in ("source_vocabulary_file", "target_vocabulary_file"):
            path = directory / config[key]
            if not path.is_file():
                raise FileNotFoundError(
                    f"Vocabulary file '{path}' named in {config_path} is "
                    "missing."
                )
            text = path.read_text(encoding="utf-8")
            if not text.endswith("\n"):
                raise ValueError(
                    f"{path}: expected one token per line, ending with a "
                    "newline; the file looks truncated."
                )
            tokens = text[:-1].split("\n")
            if tokens[0] != PAD_IN_FILE:
                raise ValueError(
                    f"{path}: line 1 is {tokens[0]!r}; expected "
                    f"{PAD_IN_FILE!r} (the padding token, id 0)."
                )
            vocabularies.append([PAD_TOKEN, *tokens[1:]])
        return cls(*vocabularies, max_length=config["max_length"])

    def __repr__(self) -> str:
        return (
            f"<TextProcessor source_vocab_size={self.source_vocab_size} "
            f"target_vocab_size={self.target_vocab_size} "
            f"max_length={self.max_length}>"
        )
