"""Source and target vocabularies, held together for a translation model."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import tensorflow as tf

from keras_nmt.text.vocabulary import END_ID
from keras_nmt.text.vocabulary import PAD_ID
from keras_nmt.text.vocabulary import START_ID
from keras_nmt.text.vocabulary import UNK_ID
from keras_nmt.text.vocabulary import Vocabulary
from keras_nmt.text.vocabulary import build_vocabulary

SOURCE_VOCAB_FILE = "source_vocab.txt"
TARGET_VOCAB_FILE = "target_vocab.txt"
CONFIG_FILE = "text_processor.json"
_FORMAT_VERSION = 1


class TextProcessor(tf.Module):
    """Source and target vocabularies, from sentences to ids and back.

    Holds one `Vocabulary` per side, `processor.source` and
    `processor.target`, sharing one `max_length`; tokenise and detokenise
    through them (`processor.source.tokenize(...)`,
    `processor.target.detokenize(...)`). See `Vocabulary` for the ids, the
    standardisation and the truncation (which keeps `[END]`).

    The processor is a `tf.Module`: its vocabularies and their lookup tables
    are tracked, so a `tf.Module` or Keras model that holds it can export
    their methods into a SavedModel. It is rebuilt without this package's
    Python state from `get_config()` (JSON-serialisable vocabulary lists)
    or from the files written by `save(directory)`.

    Args:
        source_vocabulary: list of source tokens; index = id. Must start
            with `["", "[UNK]", "[START]", "[END]"]`.
        target_vocabulary: list of target tokens, likewise.
        max_length: the longest token sequence, `[START]` and `[END]`
            included (at least 3), on both sides.
        name: the `tf.Module` name.

    Raises:
        ValueError: on a vocabulary that does not start with the reserved
            tokens, has duplicates or tokens with whitespace, or on a
            `max_length` below 3.

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
        source_vocabulary: Sequence[str],
        target_vocabulary: Sequence[str],
        max_length: int = 64,
        name: str = "text_processor",
    ):
        super().__init__(name=name)
        with self.name_scope:
            self.source = Vocabulary(
                source_vocabulary, max_length=max_length, name="source"
            )
            self.target = Vocabulary(
                target_vocabulary, max_length=max_length, name="target"
            )

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
    def max_length(self) -> int:
        """The longest token sequence, `[START]` and `[END]` included."""
        return self.source.max_length

    @property
    def source_vocabulary(self) -> list[str]:
        """The source tokens; a token's index is its id."""
        return self.source.tokens

    @property
    def target_vocabulary(self) -> list[str]:
        """The target tokens; a token's index is its id."""
        return self.target.tokens

    @property
    def source_vocab_size(self) -> int:
        return self.source.size

    @property
    def target_vocab_size(self) -> int:
        return self.target.size

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

        Files: `source_vocab.txt` and `target_vocab.txt` (written by
        `Vocabulary.save`: UTF-8, one token per line in id order, so line
        number = id; the padding token of id 0 is written as `[PAD]`) and
        `text_processor.json` (`max_length` and the format version). Plain
        TensorFlow can read the vocabularies with
        `tf.lookup.TextFileInitializer` (`LINE_NUMBER` as value).

        Args:
            directory: where to write, e.g. next to a saved model.
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.source.save(directory / SOURCE_VOCAB_FILE)
        self.target.save(directory / TARGET_VOCAB_FILE)
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
        for side in ("source", "target"):
            path = directory / config[f"{side}_vocabulary_file"]
            if not path.is_file():
                raise FileNotFoundError(
                    f"Vocabulary file '{path}' named in {config_path} is "
                    "missing."
                )
            vocabulary = Vocabulary.load(
                path, max_length=config["max_length"], name=side
            )
            vocabularies.append(vocabulary.tokens)
        return cls(*vocabularies, max_length=config["max_length"])

    def __repr__(self) -> str:
        return (
            f"<TextProcessor source_vocab_size={self.source_vocab_size} "
            f"target_vocab_size={self.target_vocab_size} "
            f"max_length={self.max_length}>"
        )
