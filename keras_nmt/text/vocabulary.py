"""One side's vocabulary: sentences <-> token ids."""

from __future__ import annotations

import collections
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
# The padding token ("") as written in vocabulary files: TensorFlow's
# TextFileInitializer rejects empty lines. Like [START], standardize can
# never produce it (it splits off the brackets).
PAD_IN_FILE = "[PAD]"
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


def as_sentence_batch(strings, where: str) -> tf.Tensor:
    """`strings` (a list of strings or a 1-D `tf.string` tensor) as a 1-D
    `tf.string` tensor; `ValueError` naming `where` otherwise."""
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
    check_max_tokens(max_tokens)
    counts = collections.Counter()
    sentences = list(sentences)
    for begin in range(0, len(sentences), _CHUNK):
        chunk = as_sentence_batch(
            sentences[begin : begin + _CHUNK], "build_vocabulary"
        )
        count_words(counts, chunk)
    return ranked_vocabulary(counts, max_tokens)


def check_max_tokens(max_tokens) -> None:
    """Raise `ValueError` unless `max_tokens` is `None` or an integer of at
    least the number of reserved tokens."""
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


def count_words(counts: collections.Counter, sentences) -> None:
    """Add the words of `sentences` (a 1-D `tf.string` batch, standardised
    here) to `counts`."""
    for line in standardize(sentences).numpy():
        counts.update(line.decode("utf-8").split())


def ranked_vocabulary(
    counts: collections.Counter, max_tokens: int | None
) -> list[str]:
    """The vocabulary of word `counts`: the reserved tokens, then the words
    by count (most frequent first), ties by the word, cut at
    `max_tokens`."""
    words = [w for w in counts if w not in RESERVED_TOKENS]
    words.sort(key=lambda word: (-counts[word], word))
    if max_tokens is not None:
        words = words[: max_tokens - len(RESERVED_TOKENS)]
    return [*RESERVED_TOKENS, *words]


def _check_tokens(tokens, name: str) -> tuple[str, ...]:
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise ValueError(
            f"Vocabulary {name!r} must be a list of strings; received "
            f"{type(tokens).__name__}."
        )
    tokens = tuple(tokens)
    if tokens[: len(RESERVED_TOKENS)] != RESERVED_TOKENS:
        raise ValueError(
            f"Vocabulary {name!r} must start with the reserved tokens "
            f"{list(RESERVED_TOKENS)} (ids 0-3); received "
            f"{list(tokens[: len(RESERVED_TOKENS)])}. Build it with "
            "`build_vocabulary` or prepend them."
        )
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise ValueError(
            f"Vocabulary {name!r} must hold strings; received {bad[:3]!r}."
        )
    spaced = [t for t in tokens if any(c.isspace() for c in t)]
    if spaced:
        raise ValueError(
            f"Vocabulary {name!r} holds tokens with whitespace, e.g. "
            f"{spaced[0]!r}; tokens are split on whitespace, so these can "
            "never match."
        )
    seen, duplicates = set(), []
    for token in tokens:
        if token in seen:
            duplicates.append(token)
        seen.add(token)
    if duplicates:
        raise ValueError(
            f"Vocabulary {name!r} has duplicate tokens, e.g. "
            f"{duplicates[0]!r}; each token needs exactly one id."
        )
    return tokens


def check_max_length(max_length) -> int:
    """`max_length` as an int; `ValueError` unless an integer >= 3."""
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


def wrap_ids(
    ids: tf.RaggedTensor, max_length: int
) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """Truncate each row of token ids and wrap it in `[START]` ... `[END]`.

    A row with more than `max_length - 2` tokens keeps its first
    `max_length - 2`, so every result ends with `[END]` and is at most
    `max_length` long.

    Args:
        ids: an int32 `tf.RaggedTensor` `(batch, None)`, without
            `[START]` / `[END]`.
        max_length: the longest result, `[START]` and `[END]` included.

    Returns:
        `(ids, n_truncated)`: the wrapped int32 ragged ids and a scalar
        int64 tensor counting the truncated rows.
    """
    limit = max_length - 2
    n_truncated = tf.math.count_nonzero(ids.row_lengths() > limit)
    ids = ids[:, :limit]
    column = tf.ones([ids.nrows(), 1], dtype=tf.int32)
    ids = tf.concat([column * START_ID, ids, column * END_ID], axis=1)
    return ids, n_truncated


def warn_truncated(
    where: str, n_truncated, n_rows, max_length: int, unit: str
) -> None:
    """Warn (eagerly only) that `n_truncated` of `n_rows` sentences had
    more than `max_length - 2` `unit`s (e.g. "words") and were cut."""
    if tf.executing_eagerly() and int(n_truncated):
        warnings.warn(
            f"{where}: {int(n_truncated)} of {int(n_rows)} sentence(s) had "
            f"more than max_length - 2 = {max_length - 2} {unit} and were "
            f"truncated to max_length={max_length} tokens (ending with "
            "[END]). Use a larger max_length (of the Vocabulary or "
            "TextProcessor) to keep them whole.",
            stacklevel=4,
        )


def checked_ids(ids, size: int, name: str) -> tf.Tensor:
    """Ids `(batch, length)`, dense or ragged, as a dense int64 tensor
    (padded with 0) that fails at run time on an id outside `[0, size)`;
    TensorFlow ops only. `ValueError` on another rank."""
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor(PAD_ID)
    ids = tf.cast(tf.convert_to_tensor(ids), tf.int64)
    if ids.shape.rank != 2:
        raise ValueError(
            "detokenize expects ids of shape (batch, length); "
            f"received shape {ids.shape}. Wrap one sentence in a list."
        )
    with tf.control_dependencies(
        [
            tf.debugging.assert_non_negative(
                ids, message=f"{name} ids must be >= 0"
            ),
            tf.debugging.assert_less(
                ids,
                tf.constant(size, tf.int64),
                message=f"{name} ids must be < the vocabulary size={size}",
            ),
        ]
    ):
        return tf.identity(ids)


def content_mask(ids: tf.Tensor) -> tf.Tensor:
    """True where `ids` `(batch, length)` hold a token to show: before the
    row's first `[END]`, and neither padding nor `[START]`."""
    ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1)
    return (
        tf.equal(ended, 0)
        & tf.not_equal(ids, PAD_ID)
        & tf.not_equal(ids, START_ID)
    )


def ids_array(ids, size: int, name: str) -> np.ndarray:
    """Ids `(batch, length)` (array, tensor, ragged tensor or list of
    lists) as a 2-D integer NumPy array padded with 0; `ValueError` on
    another rank, a non-integer dtype or an id outside `[0, size)`."""
    if isinstance(ids, (list, tuple)):
        ids = tf.ragged.constant(ids, dtype=tf.int64, ragged_rank=1)
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor(PAD_ID)
    array = np.asarray(ids)
    if array.ndim != 2:
        raise ValueError(
            "detokenize expects ids of shape (batch, length); "
            f"received shape {array.shape}. Wrap one sentence in a list."
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"detokenize expects integer ids; received dtype {array.dtype}."
        )
    if array.size and (array.min() < 0 or array.max() >= size):
        raise ValueError(
            f"Ids of vocabulary {name!r} must lie in [0, {size}) (its "
            f"size); received ids from {array.min()} to {array.max()}. Use "
            "the vocabulary the model was trained with."
        )
    return array


def ids_to_token_lists(ids, tokens: Sequence[str], name: str) -> list:
    """Ids `(batch, length)` -> one list of `tokens[id]` per row, padding
    left out; `ValueError` on an id outside `[0, len(tokens))`."""
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_list()
    elif isinstance(ids, tf.Tensor):
        ids = ids.numpy()
    size = len(tokens)
    out = []
    for row in ids:
        row_tokens = []
        for i in row:
            i = int(i)
            if not 0 <= i < size:
                raise ValueError(
                    f"Id {i} is outside [0, {size}) (the size of "
                    f"vocabulary {name!r})."
                )
            if i != PAD_ID:
                row_tokens.append(tokens[i])
        out.append(row_tokens)
    return out


class Vocabulary(tf.Module):
    """One side's tokens and sequence length: from sentences to ids and back.

    Ids: 0 = padding, 1 = `[UNK]` (every word not in the vocabulary),
    2 = `[START]`, 3 = `[END]`, then the words. Sentences are standardised
    with `standardize`, split on spaces, truncated, and wrapped in
    `[START]` ... `[END]` (as in the TensorFlow NMT tutorial).

    Truncation: a sentence with more than `max_length - 2` words keeps its
    first `max_length - 2` words and still ends with `[END]`, so its length
    is `max_length` and a model still learns where sentences stop. Eager
    calls of `tokenize` / `tokenize_ragged` warn with the number of
    truncated sentences; nothing fails, and memory stays bounded whatever
    the input.

    A `tf.Module`: its lookup table is tracked, so a `tf.Module` or Keras
    model that holds it can export its methods into a SavedModel. It is
    rebuilt from `get_config()` (JSON-serialisable) or from the file
    written by `save(path)`. `len(vocabulary)` is its size.

    Args:
        tokens: the tokens; index = id. Must start with
            `["", "[UNK]", "[START]", "[END]"]` (see `build_vocabulary`).
        max_length: the longest token sequence, `[START]` and `[END]`
            included (at least 3).
        name: the `tf.Module` name (a Python identifier), also used in
            messages, e.g. `"source"` or `"target"`.

    Raises:
        ValueError: on tokens that do not start with the reserved tokens,
            have duplicates or whitespace, or on a `max_length` below 3.

    Example:

    >>> vocabulary = Vocabulary.from_sentences(
    ...     ["Hola.", "¿Qué tal?"], max_length=10)
    >>> ids = vocabulary.tokenize(["¡Hola!", "¿Qué?"])
    >>> ids.numpy()
    array([[2, 1, 6, 1, 3],
           [2, 9, 7, 5, 3]], dtype=int32)
    >>> vocabulary.detokenize(ids)
    ['[UNK] hola [UNK]', '¿qué?']
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    start_id = START_ID
    end_id = END_ID

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        max_length: int = 64,
        name: str = "vocabulary",
    ):
        super().__init__(name=name)
        self._tokens = _check_tokens(tokens, name)
        self.max_length = check_max_length(max_length)
        with self.name_scope:
            initializer = tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(self._tokens, dtype=tf.string),
                values=tf.range(len(self._tokens), dtype=tf.int32),
            )
            self._table = tf.lookup.StaticHashTable(
                initializer, default_value=UNK_ID
            )
            self._token_strings = tf.constant(self._tokens, dtype=tf.string)

    @classmethod
    def from_sentences(
        cls,
        sentences: Sequence[str],
        *,
        max_tokens: int | None = None,
        max_length: int = 64,
        name: str = "vocabulary",
    ) -> Vocabulary:
        """Build a vocabulary from training sentences.

        Use the training split only, so validation and test words that were
        never seen map to `[UNK]` as they will in use.

        Args:
            sentences: raw sentences.
            max_tokens: if given, the vocabulary size including the four
                reserved tokens (see `build_vocabulary`).
            max_length: the longest token sequence, `[START]` and `[END]`
                included.
            name: the vocabulary's name.

        Returns:
            A `Vocabulary`.

        Raises:
            ValueError: on no sentences or invalid arguments.
        """
        if isinstance(sentences, (str, bytes)) or not len(sentences):
            raise ValueError(
                "from_sentences needs a non-empty list of sentences; "
                f"received {sentences!r:.60}."
            )
        return cls(
            build_vocabulary(sentences, max_tokens=max_tokens),
            max_length=max_length,
            name=name,
        )

    @property
    def tokens(self) -> list[str]:
        """The tokens; a token's index is its id."""
        return list(self._tokens)

    @property
    def size(self) -> int:
        """The number of tokens (ids are `0 ... size - 1`)."""
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def tokenize_counting(self, strings) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """Sentences -> ragged ids and the number of truncated sentences.

        Like `tokenize_ragged`, but never warns: for callers that report
        truncation themselves.

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            `(ids, n_truncated)`: an int32 `tf.RaggedTensor` of shape
            `(batch, None)`, `[START]` ... `[END]`, and a scalar int64
            tensor counting the sentences with more than `max_length - 2`
            words.
        """
        text = as_sentence_batch(strings, f"Vocabulary {self.name!r}")
        words = tf.strings.split(standardize(text))
        return wrap_ids(self._table.lookup(words), self.max_length)

    def _tokenize_and_warn(self, strings) -> tf.RaggedTensor:
        ids, n_truncated = self.tokenize_counting(strings)
        warn_truncated(
            f"Vocabulary {self.name!r}",
            n_truncated,
            ids.nrows(),
            self.max_length,
            "words",
        )
        return ids

    def tokenize_ragged(self, strings) -> tf.RaggedTensor:
        """Sentences -> ragged ids, `[START]` ... `[END]`, no padding.

        Works eagerly and inside `tf.function`. Truncates to `max_length`
        (and warns, when eager).

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            An int32 `tf.RaggedTensor` of shape `(batch, None)`.
        """
        return self._tokenize_and_warn(strings)

    def tokenize(self, strings) -> tf.Tensor:
        """Sentences -> padded ids.

        Works eagerly and inside `tf.function` (for export). Truncates to
        `max_length` (and warns, when eager).

        Args:
            strings: a list of strings or a 1-D `tf.string` tensor.

        Returns:
            An int32 tensor `(batch, length)`, `[START]` ... `[END]`, padded
            with 0 to the longest sentence of the batch.
        """
        return self._tokenize_and_warn(strings).to_tensor(PAD_ID)

    def detokenize_tensor(self, ids) -> tf.Tensor:
        """Ids -> display strings, with TensorFlow ops only.

        Reads each row up to its first `[END]`, drops padding and `[START]`,
        and joins the words with `join_tokens` (punctuation re-attached,
        NFC). Use this inside `tf.function` / SavedModel signatures; ids
        outside the vocabulary raise an `InvalidArgumentError`.

        Args:
            ids: integer ids `(batch, length)`, dense or ragged.

        Returns:
            A `tf.string` tensor of shape `(batch,)`.
        """
        ids = checked_ids(ids, self.size, self.name)
        tokens = tf.ragged.boolean_mask(
            tf.gather(self._token_strings, ids), content_mask(ids)
        )
        return join_tokens(tokens)

    def detokenize(self, ids) -> list[str]:
        """Ids -> display strings (eager).

        Reads each row up to its first `[END]` (the rest is ignored), drops
        padding and `[START]`, keeps `[UNK]` visible, re-attaches
        punctuation and NFC-normalises (see `join_tokens`).

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
        """Ids -> token strings, padding removed (e.g. to label plots).

        Args:
            ids: integer ids `(batch, length)`.

        Returns:
            One list of tokens per row (`[START]`, `[END]`, `[UNK]` kept;
            words in standardised NFKD form).

        Raises:
            ValueError: on an id outside `[0, size)`.
        """
        return ids_to_token_lists(ids, self._tokens, self.name)

    def get_config(self) -> dict:
        """A JSON-serialisable dict; `from_config` rebuilds the vocabulary."""
        return {
            "tokens": self.tokens,
            "max_length": self.max_length,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> Vocabulary:
        """Rebuild a vocabulary from `get_config()`."""
        return cls(**config)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokens to the file `path` (parents created if needed).

        UTF-8, one token per line in id order, so line number = id; the
        padding token of id 0 is written as `[PAD]`. Plain TensorFlow can
        read it with `tf.lookup.TextFileInitializer` (`LINE_NUMBER` as
        value). `max_length` is not written: pass it to `load`.

        Args:
            path: the file to write.
        """
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tokens = (PAD_IN_FILE, *self._tokens[1:])
        path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int,
        name: str = "vocabulary",
    ) -> Vocabulary:
        """Read a vocabulary file written by `save(path)`.

        Args:
            path: the file.
            max_length: the longest token sequence (not in the file).
            name: the vocabulary's name.

        Returns:
            A `Vocabulary`.

        Raises:
            FileNotFoundError: if the file is missing.
            ValueError: if the file is not in the expected format.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No vocabulary file '{path}'; expected a file written by "
                "Vocabulary.save() (one token per line)."
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
        return cls([PAD_TOKEN, *tokens[1:]], max_length=max_length, name=name)

    def __repr__(self) -> str:
        return (
            f"<Vocabulary name={self.name!r} size={self.size} "
            f"max_length={self.max_length}>"
        )
