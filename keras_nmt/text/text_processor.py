"""Source and target vocabularies, held together for a translation model."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import tensorflow as tf

from keras_nmt.text.subword import SubwordVocabulary
from keras_nmt.text.vocabulary import END_ID
from keras_nmt.text.vocabulary import PAD_ID
from keras_nmt.text.vocabulary import START_ID
from keras_nmt.text.vocabulary import UNK_ID
from keras_nmt.text.vocabulary import Vocabulary
from keras_nmt.text.vocabulary import build_vocabulary

SOURCE_VOCAB_FILE = "source_vocab.txt"
TARGET_VOCAB_FILE = "target_vocab.txt"
SOURCE_MODEL_FILE = "source.model"
TARGET_MODEL_FILE = "target.model"
CONFIG_FILE = "text_processor.json"
TOKENIZERS = ("word", "subword")
# 2: "tokenizer" ("word" or "subword") and subword model files. Version 1
# (word vocabularies only, no "tokenizer") is still read.
_FORMAT_VERSION = 2
_KINDS = {"word": Vocabulary, "subword": SubwordVocabulary}
_FILES = {
    "word": (SOURCE_VOCAB_FILE, TARGET_VOCAB_FILE),
    "subword": (SOURCE_MODEL_FILE, TARGET_MODEL_FILE),
}


def _check_tokenizer(tokenizer) -> str:
    if tokenizer not in TOKENIZERS:
        raise ValueError(
            f"Invalid tokenizer={tokenizer!r}; expected 'word' (whole "
            "lowercased words) or 'subword' (SentencePiece pieces, case "
            "kept)."
        )
    return tokenizer


class TextProcessor(tf.Module):
    """Source and target vocabularies, from sentences to ids and back.

    Holds one vocabulary per side, `processor.source` and
    `processor.target`, sharing one `max_length` and one kind of
    tokenizer: `"word"` (`Vocabulary`: lowercased, NFKD, whole words and
    punctuation marks) or `"subword"` (`SubwordVocabulary`: SentencePiece
    pieces, case kept, any character round-trips). Tokenise and detokenise
    through them (`processor.source.tokenize(...)`,
    `processor.target.detokenize(...)`); both kinds share the ids 0-3
    (padding, `[UNK]`, `[START]`, `[END]`) and the truncation that keeps
    `[END]`.

    The processor is a `tf.Module`: its vocabularies (lookup tables or
    SentencePiece models) are tracked, so a `tf.Module` or Keras model that
    holds it can export their methods into a SavedModel. It is rebuilt
    without this package's Python state from `get_config()`
    (JSON-serialisable) or from the files written by `save(directory)`.

    Args:
        source_vocabulary: a list of source tokens (index = id; must start
            with `["", "[UNK]", "[START]", "[END]"]`), which gives a word
            `Vocabulary`; or a built `Vocabulary` or `SubwordVocabulary`.
        target_vocabulary: the same for the target side, of the same kind.
        max_length: the longest token sequence, `[START]` and `[END]`
            included (at least 3), on both sides. Default: that of built
            vocabularies (which must agree), else 64.
        name: the `tf.Module` name.

    Raises:
        ValueError: on a token list that does not start with the reserved
            tokens, has duplicates or tokens with whitespace; on sides of
            different kinds or max_lengths; or on a `max_length` below 3.

    Example:

    >>> processor = TextProcessor.from_sentences(
    ...     ["Hola.", "¿Qué tal?"], ["Hi.", "How are you?"], max_length=10)
    >>> processor.source.tokenize(["¡Hola!"]).numpy()
    array([[2, 1, 6, 1, 3]], dtype=int32)
    >>> processor.target.detokenize([[2, 7, 4, 3, 0]])
    ['hi.']
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    start_id = START_ID
    end_id = END_ID

    def __init__(
        self,
        source_vocabulary: Sequence[str] | Vocabulary | SubwordVocabulary,
        target_vocabulary: Sequence[str] | Vocabulary | SubwordVocabulary,
        max_length: int | None = None,
        name: str = "text_processor",
    ):
        super().__init__(name=name)
        built = {
            side: v
            for side, v in (
                ("source", source_vocabulary),
                ("target", target_vocabulary),
            )
            if isinstance(v, (Vocabulary, SubwordVocabulary))
        }
        lengths = {v.max_length for v in built.values()}
        if max_length is None and len(lengths) > 1:
            raise ValueError(
                "The source and target vocabularies have different "
                f"max_length ({built['source'].max_length} and "
                f"{built['target'].max_length}); pass "
                "TextProcessor(..., max_length=N) to use one for both."
            )
        if max_length is None:
            max_length = lengths.pop() if lengths else 64
        with self.name_scope:
            self.source = _side(source_vocabulary, "source", max_length)
            self.target = _side(target_vocabulary, "target", max_length)
        kinds = [_tokenizer_of(v) for v in (self.source, self.target)]
        if kinds[0] != kinds[1]:
            raise ValueError(
                f"The source vocabulary is {kinds[0]!r} and the target "
                f"vocabulary {kinds[1]!r}; a TextProcessor needs one kind "
                "on both sides. Build both with the same tokenizer."
            )

    @classmethod
    def from_sentences(
        cls,
        sources: Sequence[str],
        targets: Sequence[str],
        *,
        tokenizer: str = "word",
        max_tokens: int | None = None,
        max_length: int = 64,
    ) -> TextProcessor:
        """Build both vocabularies from training sentences.

        Use the training split only, so validation and test sentences are
        tokenised as they will be in use.

        Args:
            sources: raw source sentences.
            targets: raw target sentences.
            tokenizer: `"word"` (lowercased words, see `Vocabulary`) or
                `"subword"` (SentencePiece unigram, case kept, see
                `SubwordVocabulary`).
            max_tokens: the size of each vocabulary, reserved tokens
                included. Word: default None keeps every word (see
                `build_vocabulary`). Subword: default 8000, a soft limit
                (a side whose sentences support fewer pieces gets fewer);
                at least 261 (4 reserved and 256 byte pieces, plus the
                characters of the text).
            max_length: the longest token sequence, `[START]` and `[END]`
                included.

        Returns:
            A `TextProcessor`.

        Raises:
            ValueError: if a side is empty, or on invalid arguments.
        """
        _check_tokenizer(tokenizer)
        for side, sentences in (("sources", sources), ("targets", targets)):
            if isinstance(sentences, (str, bytes)) or not len(sentences):
                raise ValueError(
                    f"from_sentences needs a non-empty list of {side}; "
                    f"received {sentences!r:.60}."
                )
        if tokenizer == "subword":
            return cls(
                SubwordVocabulary.from_sentences(
                    sources, max_tokens=max_tokens, max_length=max_length
                ),
                SubwordVocabulary.from_sentences(
                    targets, max_tokens=max_tokens, max_length=max_length
                ),
                max_length=max_length,
            )
        return cls(
            build_vocabulary(sources, max_tokens=max_tokens),
            build_vocabulary(targets, max_tokens=max_tokens),
            max_length=max_length,
        )

    @property
    def tokenizer(self) -> str:
        """`"word"` or `"subword"`: the kind of both vocabularies."""
        return _tokenizer_of(self.source)

    @property
    def max_length(self) -> int:
        """The longest token sequence, `[START]` and `[END]` included."""
        return self.source.max_length

    @property
    def source_vocabulary(self) -> list[str]:
        """The source tokens (words or pieces); a token's index is its id."""
        return self.source.tokens

    @property
    def target_vocabulary(self) -> list[str]:
        """The target tokens (words or pieces); a token's index is its id."""
        return self.target.tokens

    @property
    def source_vocab_size(self) -> int:
        return self.source.size

    @property
    def target_vocab_size(self) -> int:
        return self.target.size

    def get_config(self) -> dict:
        """A JSON-serialisable dict; `from_config` rebuilds the processor.

        Word: the token lists. Subword: the SentencePiece models in base64.
        """
        if self.tokenizer == "subword":
            return {
                "tokenizer": "subword",
                "source_model": self.source.get_config()["model"],
                "target_model": self.target.get_config()["model"],
                "max_length": self.max_length,
            }
        return {
            "tokenizer": "word",
            "source_vocabulary": self.source_vocabulary,
            "target_vocabulary": self.target_vocabulary,
            "max_length": self.max_length,
        }

    @classmethod
    def from_config(cls, config: dict) -> TextProcessor:
        """Rebuild a processor from `get_config()` (a config without
        `"tokenizer"`, from an earlier version, is a word processor)."""
        config = dict(config)
        if _check_tokenizer(config.pop("tokenizer", "word")) == "word":
            return cls(**config)
        max_length = config.pop("max_length", 64)
        sides = [
            SubwordVocabulary.from_config(
                {"model": config.pop(f"{side}_model", None), "name": side}
            )
            for side in ("source", "target")
        ]
        return cls(*sides, max_length=max_length, **config)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the processor into `directory` (created if needed).

        Files: `text_processor.json` (`format_version` 2, `tokenizer`,
        `max_length` and the vocabulary file names) and per side, word:
        `source_vocab.txt` and `target_vocab.txt` (written by
        `Vocabulary.save`: UTF-8, one token per line in id order, so line
        number = id; the padding token of id 0 is written as `[PAD]`; plain
        TensorFlow reads them with `tf.lookup.TextFileInitializer`);
        subword: `source.model` and `target.model` (binary SentencePiece
        models, read by `sentencepiece` and
        `tensorflow_text.SentencepieceTokenizer`).

        Args:
            directory: where to write, e.g. next to a saved model.
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        source_file, target_file = _FILES[self.tokenizer]
        self.source.save(directory / source_file)
        self.target.save(directory / target_file)
        config = {
            "format_version": _FORMAT_VERSION,
            "tokenizer": self.tokenizer,
            "max_length": self.max_length,
            "source_vocabulary_file": source_file,
            "target_vocabulary_file": target_file,
        }
        (directory / CONFIG_FILE).write_text(
            json.dumps(config, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TextProcessor:
        """Read a processor written by `save(directory)` (format version 2,
        or 1: word vocabularies written by earlier versions).

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
        version = config.get("format_version")
        if version not in (1, _FORMAT_VERSION):
            raise ValueError(
                f"{config_path}: format_version {version!r} is not "
                f"supported; expected 1 or {_FORMAT_VERSION}. It was "
                "written by another version of keras_nmt: load it with that "
                "version or retrain."
            )
        tokenizer = config.get("tokenizer", "word") if version > 1 else "word"
        if tokenizer not in TOKENIZERS:
            raise ValueError(
                f"{config_path}: tokenizer {tokenizer!r} is not supported; "
                f"expected one of {list(TOKENIZERS)}."
            )
        vocabularies = []
        for side in ("source", "target"):
            path = directory / config[f"{side}_vocabulary_file"]
            if not path.is_file():
                raise FileNotFoundError(
                    f"Vocabulary file '{path}' named in {config_path} is "
                    "missing."
                )
            vocabularies.append(
                _KINDS[tokenizer].load(
                    path, max_length=config["max_length"], name=side
                )
            )
        return cls(*vocabularies)

    def __repr__(self) -> str:
        return (
            f"<TextProcessor tokenizer={self.tokenizer!r} "
            f"source_vocab_size={self.source_vocab_size} "
            f"target_vocab_size={self.target_vocab_size} "
            f"max_length={self.max_length}>"
        )


def _tokenizer_of(vocabulary) -> str:
    return "subword" if isinstance(vocabulary, SubwordVocabulary) else "word"


def _side(vocabulary, side: str, max_length: int):
    """One side as a vocabulary named `side` with `max_length`: a token
    list becomes a `Vocabulary`; a built vocabulary is kept, or rebuilt
    when its name or max_length differ."""
    if not isinstance(vocabulary, (Vocabulary, SubwordVocabulary)):
        return Vocabulary(vocabulary, max_length=max_length, name=side)
    if vocabulary.name == side and vocabulary.max_length == max_length:
        return vocabulary
    config = {**vocabulary.get_config(), "max_length": max_length}
    return type(vocabulary).from_config({**config, "name": side})
