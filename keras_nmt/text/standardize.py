"""Unicode-aware text standardisation and detokenisation (tensorflow-text).

Every function here is made of TensorFlow string ops, so it runs eagerly, in
`tf.data` pipelines and inside an exported SavedModel alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_text as tf_text

START_TOKEN = "[START]"
END_TOKEN = "[END]"
UNK_TOKEN = "[UNK]"
PAD_TOKEN = ""

# RE2 classes: letters, combining marks, numbers, punctuation, separators.
_PUNCTUATION = r"(\p{P})"
_NOT_KEPT = r"[^\p{L}\p{M}\p{N}\p{P}\p{Z}\s]"
_SPACES = r"[\p{Z}\s]+"

# Spaces that `join_tokens` removes again.
_BEFORE_CLOSING = r" ([.,!?;:…%)\]}»。、，！？；：」』])"
_AFTER_OPENING = r"([¿¡(\[{«「『]) "
# "don ' t" -> "don't", "l ' homme" -> "l'homme".
_APOSTROPHE = r"(\p{L}) (['’]) (\p{L})"


def _as_string_tensor(text) -> tf.Tensor:
    if isinstance(text, (tf.Tensor, tf.RaggedTensor)):
        if text.dtype != tf.string:
            raise ValueError(
                "Expected a tf.string tensor; received dtype "
                f"{text.dtype.name}. Pass the sentences as strings, not "
                "token ids."
            )
        return text
    return tf.convert_to_tensor(text, dtype=tf.string)


def standardize(text) -> tf.Tensor:
    """Standardise sentences the Unicode-aware way, keeping every script.

    Steps: case folding (`tensorflow_text.case_fold_utf8`, full Unicode
    folding, so "ß" -> "ss" and "Σ" -> "σ"); NFKD normalisation
    (`tensorflow_text.normalize_utf8`; done after folding because folding
    recomposes), so "á" becomes "a" + a combining acute accent and the
    vocabulary shares base letters; spaces around every punctuation mark
    (`\\p{P}`), so "¿Qué?" gives the tokens "¿", "que\\u0301", "?"; every
    character that is not a letter, combining mark, number, punctuation or
    space (symbols, emoji, control characters) replaced by a space; runs of
    whitespace collapsed to one space; leading and trailing space stripped.
    Letters of all scripts (Latin with diacritics, Greek, Cyrillic, CJK,
    ...) are kept. CJK text is not segmented: a run of CJK characters stays
    one token.

    Args:
        text: a string, a list of strings or a `tf.string` tensor of any
            shape.

    Returns:
        A `tf.string` tensor of the same shape: words and punctuation
        separated by single spaces.

    Example:

    >>> standardize(["¿Todavía está en casa?"]).numpy()[0]
    b'\\xc2\\xbf todavi\\xcc\\x81a esta\\xcc\\x81 en casa ?'
    """
    text = _as_string_tensor(text)
    text = tf_text.case_fold_utf8(text)
    text = tf_text.normalize_utf8(text, "NFKD")
    text = tf.strings.regex_replace(text, _PUNCTUATION, r" \1 ")
    text = tf.strings.regex_replace(text, _NOT_KEPT, " ")
    text = tf.strings.regex_replace(text, _SPACES, " ")
    return tf.strings.strip(text)


def standardize_cased(text) -> tf.Tensor:
    """Standardise sentences for subword tokenisation, keeping case.

    Steps: NFC normalisation (`tensorflow_text.normalize_utf8`), so a
    letter typed decomposed ("e" + combining acute) and precomposed ("é")
    give the same subwords; every run of whitespace (`\\s` and Unicode
    separators `\\p{Z}`, e.g. no-break spaces) collapsed to one space;
    leading and trailing space stripped. Nothing else changes: case,
    punctuation, digits, symbols and emoji are kept as written, and the
    subword model's byte fallback covers any character.

    Args:
        text: a string, a list of strings or a `tf.string` tensor of any
            shape.

    Returns:
        A `tf.string` tensor of the same shape.

    Example:

    >>> text = standardize_cased(["  Que\\u0301  tal,\\u00a0Ana? "])
    >>> text.numpy()[0].decode()
    'Qué tal, Ana?'
    """
    text = _as_string_tensor(text)
    text = tf_text.normalize_utf8(text, "NFC")
    text = tf.strings.regex_replace(text, _SPACES, " ")
    return tf.strings.strip(text)


def add_start_end(text) -> tf.Tensor:
    """Wrap standardised sentences in `[START]` and `[END]` tokens.

    Args:
        text: a string, a list of strings or a `tf.string` tensor, usually
            the output of `standardize`.

    Returns:
        A `tf.string` tensor of the same shape: `"[START] " + text +
        " [END]"`.

    Example:

    >>> add_start_end(standardize(["Hi!"])).numpy()[0].decode()
    '[START] hi ! [END]'
    """
    text = _as_string_tensor(text)
    return tf.strings.join([START_TOKEN, " ", text, " ", END_TOKEN])


def join_tokens(
    tokens, *, drop: Sequence[str] = (PAD_TOKEN, START_TOKEN, END_TOKEN)
) -> tf.Tensor:
    """Turn token sequences back into display strings.

    Drops the tokens in `drop` (padding, `[START]`, `[END]`), joins the rest
    with spaces, removes the space before closing punctuation
    (`. , ! ? ; : …`, their CJK forms and closing brackets) and after
    opening punctuation (`¿ ¡` and opening brackets), re-attaches
    apostrophes between letters ("don ' t" -> "don't"), and NFC-normalises,
    so decomposed accents come back composed ("camio\\u0301n" ->
    "camión"). Case is not restored. `[UNK]` is kept visible.

    Args:
        tokens: a `tf.RaggedTensor` or `tf.Tensor` of `tf.string` with shape
            `(batch, length)`, or a list of lists of strings.
        drop: tokens to leave out.

    Returns:
        A `tf.string` tensor of shape `(batch,)`.

    Example:

    >>> text = join_tokens([["[START]", "¿", "que\\u0301", "?", "[END]"]])
    >>> text.numpy()[0].decode()
    '¿qué?'
    """
    if isinstance(tokens, (list, tuple)):
        tokens = (
            tf.ragged.constant(
                [list(row) for row in tokens], dtype=tf.string, ragged_rank=1
            )
            if len(tokens)
            else tf.zeros([0, 0], tf.string)
        )
    tokens = _as_string_tensor(tokens)
    if isinstance(tokens, tf.Tensor):
        if tokens.shape.rank != 2:
            raise ValueError(
                "join_tokens expects tokens of shape (batch, length); "
                f"received shape {tokens.shape}. Wrap one sentence's tokens "
                "in a list."
            )
        tokens = tf.RaggedTensor.from_tensor(tokens)
    keep = tf.ones_like(tokens, dtype=tf.bool)
    for token in drop:
        keep = tf.logical_and(keep, tf.not_equal(tokens, token))
    tokens = tf.ragged.boolean_mask(tokens, keep)
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    text = tf.strings.regex_replace(text, _BEFORE_CLOSING, r"\1")
    text = tf.strings.regex_replace(text, _AFTER_OPENING, r"\1")
    text = tf.strings.regex_replace(text, _APOSTROPHE, r"\1\2\3")
    return tf_text.normalize_utf8(text, "NFC")
