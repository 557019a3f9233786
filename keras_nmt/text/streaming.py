"""Sentence-pair corpora larger than memory: read, split, sample and batch
them in passes over the files, never holding the corpus.

A `StreamingPairs` describes a corpus (one or many pair files, plain or
gzipped) and, after `split`, one part of it. Every pass reads the files
line by line with the parser of `read_pairs` and keeps the lines of its
part by the group hash of `split_pairs`, so a pair lands in the same part
as when the file is read into memory. What a pass keeps is bounded:

- `streaming_processor`: word vocabularies from word counts (memory: the
  distinct words), subword vocabularies from a reservoir sample;
- `scan_lengths`: a histogram of token lengths (memory: `max_length`
  numbers), which gives the bucket boundaries and the number of batches;
- `make_streaming_dataset`: a shuffle buffer of `shuffle_buffer` pairs.

Typical use:

>>> from keras_nmt import text
>>> corpus = text.StreamingPairs(
...     "shards/*.tsv.gz", reverse=True)  # doctest: +SKIP
>>> train, validation, _ = corpus.split(seed=0)  # doctest: +SKIP
>>> processor = text.streaming_processor(
...     train, tokenizer="word")  # doctest: +SKIP
>>> ds = text.make_streaming_dataset(
...     train, processor, seed=0, epoch=0)  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import glob
import gzip
import os
import pathlib
import random
import warnings
import zlib
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_nmt.text.pairs import DataFormatError
from keras_nmt.text.pairs import GroupSplit
from keras_nmt.text.pairs import SentencePairs
from keras_nmt.text.pairs import parse_pair_line
from keras_nmt.text.subword import DEFAULT_SAMPLE_SIZE
from keras_nmt.text.subword import SubwordVocabulary
from keras_nmt.text.text_processor import TOKENIZERS
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.vocabulary import PAD_ID
from keras_nmt.text.vocabulary import check_max_tokens
from keras_nmt.text.vocabulary import count_words
from keras_nmt.text.vocabulary import ranked_vocabulary

PARTS = ("train", "validation", "test")
DEFAULT_SHUFFLE_BUFFER = 100_000
# The quantiles of `length_buckets` ("auto" bucketing of make_dataset).
_AUTO_QUANTILES = np.linspace(0.1, 0.9, 9)
_CHUNK = 8192  # pairs per TensorFlow op call (and per tf.data element)
_DRAWS = 4096  # shuffle-buffer positions drawn at once
_BOM = b"\xef\xbb\xbf"
_MAX_LISTED = 5


class StreamingSplits(NamedTuple):
    """The three parts returned by `StreamingPairs.split`."""

    train: StreamingPairs
    validation: StreamingPairs
    test: StreamingPairs


class StreamingPairs:
    """A corpus of sentence pairs read from its files at each pass.

    The files have the format of `read_pairs` (UTF-8, `first<TAB>second`
    with an optional third column, blank lines skipped, a byte-order mark
    accepted); names ending in `.gz` are read as gzip. Nothing is read when
    the object is made: each method that reads makes one pass over the
    files, in the order given (each glob pattern's matches sorted).

    Args:
        paths: a path or glob pattern (`"shards/*.tsv.gz"`), or a list of
            them.
        reverse: as in `read_pairs`: `True` makes column 2 the source.
        on_error: `"raise"` (default) on the first malformed line (a
            `DataFormatError` naming the file and line), or `"skip"`:
            skip malformed lines, one warning per file and pass.
        shuffle_buffer: the pairs held by the shuffle buffer of
            `make_streaming_dataset` (memory: about 200 bytes a pair);
            0: none (each file's pairs in file order, the files in an
            order drawn for each epoch).

    Raises:
        FileNotFoundError: if a path does not exist or a pattern matches
            no file.
        ValueError: on invalid arguments.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
    >>> _ = path.write_text("Go.\\tVe.\\nHi.\\tHola.\\n")
    >>> list(StreamingPairs(path, reverse=True).pairs())
    [('Ve.', 'Go.'), ('Hola.', 'Hi.')]
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        reverse: bool = False,
        on_error: str = "raise",
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ):
        if on_error not in ("raise", "skip"):
            raise ValueError(
                f"Invalid on_error={on_error!r}; expected 'raise' (stop at "
                "the first malformed line) or 'skip' (skip and count them)."
            )
        if (
            isinstance(shuffle_buffer, bool)
            or not isinstance(shuffle_buffer, int)
            or shuffle_buffer < 0
        ):
            raise ValueError(
                f"Invalid shuffle_buffer={shuffle_buffer!r}; expected an "
                "integer >= 0 (0: no shuffling)."
            )
        self.files = _expand(paths)
        self.reverse = bool(reverse)
        self.on_error = on_error
        self.shuffle_buffer = shuffle_buffer
        self.part: str | None = None
        self._split: GroupSplit | None = None

    def split(
        self,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        *,
        seed: int = 0,
    ) -> StreamingSplits:
        """The train, validation and test parts, as `split_pairs` makes
        them from the same pairs, `fractions` and `seed` (a group's part is
        decided by a hash of the seed and the group, the file's column 1).

        Reads nothing; each part reads the files when used.

        Raises:
            ValueError: on invalid `fractions` or `seed`, or if this is
                already a part.
        """
        if self.part is not None:
            raise ValueError(
                f"This is the {self.part!r} part of a split corpus; split "
                "the whole corpus (a new StreamingPairs) instead."
            )
        rule = GroupSplit(fractions, seed)
        parts = []
        for part in PARTS:
            copy = object.__new__(StreamingPairs)
            copy.__dict__.update(self.__dict__)
            copy.part, copy._split = part, rule
            parts.append(copy)
        return StreamingSplits(*parts)

    def pairs(self) -> Iterator[tuple[str, str]]:
        """`(source, target)` of every pair (of this part), in file order
        (one pass)."""
        return self._read(self.files)

    def sources(self) -> Iterator[str]:
        """The source sentences, in file order (one pass)."""
        return (source for source, _ in self.pairs())

    def targets(self) -> Iterator[str]:
        """The target sentences, in file order (one pass)."""
        return (target for _, target in self.pairs())

    def count(self) -> int:
        """The number of pairs (one pass)."""
        return sum(1 for _ in self.pairs())

    def sample(self, n: int, *, seed: int = 0) -> SentencePairs:
        """At most `n` pairs drawn uniformly, in memory, in file order (one
        pass; reservoir sampling seeded with `seed`). All pairs when there
        are at most `n`. For a validation part small enough for memory.

        Raises:
            ValueError: on an invalid `n`.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"Invalid n={n!r}; expected an integer >= 1.")
        rng = random.Random(seed)
        kept = []  # (index, source, target)
        for i, (source, target) in enumerate(self.pairs()):
            if i < n:
                kept.append((i, source, target))
            else:
                j = rng.randrange(i + 1)
                if j < n:
                    kept[j] = (i, source, target)
        kept.sort()
        sources = [source for _, source, _ in kept]
        targets = [target for _, _, target in kept]
        return SentencePairs(
            sources, targets, list(targets if self.reverse else sources)
        )

    def shuffled(self, seed: int, epoch: int) -> Iterator[tuple[str, str]]:
        """`(source, target)` of every pair, in the order of epoch `epoch`:
        the files in an order drawn from `(seed, epoch)`, their pairs
        through a shuffle buffer of `shuffle_buffer` pairs drawn from the
        same generator. The order depends only on the files, `seed` and
        `epoch` (one pass)."""
        rng = np.random.default_rng([seed % 2**64, epoch])
        files = [self.files[i] for i in rng.permutation(len(self.files))]
        size = self.shuffle_buffer
        if not size:
            yield from self._read(files)
            return
        buffer, draws = [], iter(())
        for pair in self._read(files):
            if len(buffer) < size:
                buffer.append(pair)
                continue
            j = next(draws, None)
            if j is None:
                draws = iter(rng.integers(0, size, _DRAWS).tolist())
                j = next(draws)
            yield buffer[j]
            buffer[j] = pair
        for i in rng.permutation(len(buffer)).tolist():
            yield buffer[i]

    def __repr__(self) -> str:
        part = f" part={self.part!r}" if self.part else ""
        return (
            f"<StreamingPairs {len(self.files)} file(s){part} "
            f"reverse={self.reverse}>"
        )

    def _read(self, files) -> Iterator[tuple[str, str]]:
        keep = None if self.part is None else PARTS.index(self.part)
        for path in files:
            skipped = []
            opener = gzip.open if path.endswith(".gz") else open
            number = 0
            try:
                with opener(path, "rb") as f:
                    for number, raw in enumerate(f, start=1):
                        if number == 1 and raw.startswith(_BOM):
                            raw = raw[3:]
                        raw = raw.rstrip(b"\r\n")
                        if not raw.strip():
                            continue
                        try:
                            first, second = parse_pair_line(raw, path, number)
                        except DataFormatError:
                            if self.on_error == "raise":
                                raise
                            skipped.append(number)
                            continue
                        if keep is not None and self._split(first) != keep:
                            continue
                        yield (
                            (second, first) if self.reverse else (first, second)
                        )
            except (OSError, EOFError, zlib.error) as error:
                raise DataFormatError(
                    f"{path}, after line {number}: cannot read the file "
                    f"({error}). Expected a readable UTF-8 text file, or a "
                    "complete gzip file for a name ending in .gz."
                ) from None
            if skipped:
                listed = ", ".join(str(n) for n in skipped[:_MAX_LISTED])
                more = ", ..." if len(skipped) > _MAX_LISTED else ""
                warnings.warn(
                    f"{path}: skipped {len(skipped)} malformed line(s) (line "
                    f"{listed}{more}). Read it with on_error='raise' to see "
                    "what is wrong with each.",
                    stacklevel=2,
                )


def _expand(paths) -> tuple[str, ...]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError(
            "StreamingPairs needs at least one path or glob pattern."
        )
    files = []
    for pattern in paths:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            matches = [m for m in matches if pathlib.Path(m).is_file()]
            if not matches:
                raise FileNotFoundError(
                    f"No sentence-pair file matches '{pattern}'. Check the "
                    "pattern (quote it, so that the shell does not expand "
                    "it)."
                )
            files += matches
        elif pathlib.Path(pattern).is_file():
            files.append(pattern)
        else:
            raise FileNotFoundError(
                f"Sentence-pair file not found (or not a file): '{pattern}'. "
                "Pass UTF-8 tab-separated files (.gz: gzipped) or a glob "
                "pattern."
            )
    return tuple(dict.fromkeys(files))  # each file once, in order


def _chunks(pairs: Iterable[tuple[str, str]], size: int):
    """`(sources, targets)` lists of up to `size` pairs."""
    sources, targets = [], []
    for source, target in pairs:
        sources.append(source)
        targets.append(target)
        if len(sources) == size:
            yield sources, targets
            sources, targets = [], []
    if sources:
        yield sources, targets


def _no_pairs(pairs: StreamingPairs) -> DataFormatError:
    part = f"the {pairs.part} part of " if pairs.part else ""
    return DataFormatError(
        f"No sentence pairs in {part}{', '.join(pairs.files)}; expected at "
        "least one line `first<TAB>second[<TAB>attribution]`."
    )


def streaming_processor(
    pairs: StreamingPairs,
    *,
    tokenizer: str = "word",
    max_tokens: int | None = None,
    max_length: int = 64,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
) -> TextProcessor:
    """`TextProcessor.from_sentences` for a streaming corpus: the same
    vocabularies as from the same pairs in memory, in bounded memory.

    Word: one pass counts the standardised words of both sides, then
    ranks them as `build_vocabulary` does (the exact counts, so the same
    vocabulary as in memory; memory grows with the distinct words, which
    the vocabulary holds anyway unless `max_tokens` cuts it, not with the
    sentences). Subword: one pass per side feeds
    `SubwordVocabulary.from_sentences`, which learns from a reservoir
    sample of at most `sample_size` sentences (the same sample, hence the
    same model, as in memory).

    Args:
        pairs: the training pairs (a `StreamingPairs` part).
        tokenizer: `"word"` or `"subword"`.
        max_tokens: the size of each vocabulary (see `from_sentences`).
        max_length: the longest token sequence.
        sample_size: subword: the most sentences learnt from per side.

    Returns:
        A `TextProcessor`.

    Raises:
        ValueError: on invalid arguments or no pairs.
        DataFormatError: on a malformed line.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(
            f"Invalid tokenizer={tokenizer!r}; expected one of {TOKENIZERS}."
        )
    if tokenizer == "subword":
        reader = pairs.pairs()
        first = next(reader, None)
        reader.close()
        if first is None:
            raise _no_pairs(pairs)
        vocabularies = [
            SubwordVocabulary.from_sentences(
                side,
                max_tokens=max_tokens,
                max_length=max_length,
                sample_size=sample_size,
            )
            for side in (pairs.sources(), pairs.targets())
        ]
        return TextProcessor(*vocabularies, max_length=max_length)
    check_max_tokens(max_tokens)
    counts = (collections.Counter(), collections.Counter())
    empty = True
    for chunk in _chunks(pairs.pairs(), _CHUNK):
        empty = False
        for counter, sentences in zip(counts, chunk, strict=True):
            count_words(counter, tf.constant(sentences, tf.string))
    if empty:
        raise _no_pairs(pairs)
    vocabularies = [ranked_vocabulary(c, max_tokens) for c in counts]
    return TextProcessor(*vocabularies, max_length=max_length)


class LengthCounts(NamedTuple):
    """What `scan_lengths` found.

    Attributes:
        pairs: the number of pairs.
        histogram: int64 array, `histogram[n]` = the pairs of length `n`
            tokens (`max(len(source), len(target))`, after truncation).
        truncated_sources: sources longer than `max_length` (truncated).
        truncated_targets: targets longer than `max_length` (truncated).
    """

    pairs: int
    histogram: np.ndarray
    truncated_sources: int
    truncated_targets: int


def scan_lengths(
    pairs: StreamingPairs, processor: TextProcessor
) -> LengthCounts:
    """Tokenise every pair once (one pass) and count them by length.

    Raises:
        DataFormatError: on a malformed line, or no pairs.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def lengths(sources, targets):
        source_ids, source_cut = processor.source.tokenize_counting(sources)
        target_ids, target_cut = processor.target.tokenize_counting(targets)
        longest = tf.maximum(source_ids.row_lengths(), target_ids.row_lengths())
        return longest, source_cut, target_cut

    histogram = np.zeros(processor.max_length + 1, np.int64)
    cut = np.zeros(2, np.int64)
    for sources, targets in _chunks(pairs.pairs(), _CHUNK):
        longest, source_cut, target_cut = lengths(
            tf.constant(sources, tf.string), tf.constant(targets, tf.string)
        )
        histogram += np.bincount(longest.numpy(), minlength=len(histogram))
        cut += (int(source_cut), int(target_cut))
    total = int(histogram.sum())
    if not total:
        raise _no_pairs(pairs)
    return LengthCounts(total, histogram, int(cut[0]), int(cut[1]))


def buckets_from_histogram(histogram: np.ndarray) -> list[int]:
    """`length_buckets` of the lengths that `histogram` counts (the same
    boundaries, from counts instead of every length).

    Raises:
        ValueError: on an empty histogram.
    """
    histogram = np.asarray(histogram, np.int64)
    n = int(histogram.sum())
    if histogram.ndim != 1 or n == 0:
        raise ValueError(
            "buckets_from_histogram expects a 1-D array of counts with at "
            f"least one length; received {histogram!r:.80}."
        )
    # np.quantile(..., method="higher") takes sorted[ceil((n - 1) * q)].
    ranks = np.ceil((n - 1) * _AUTO_QUANTILES).astype(np.intp)
    cumulative = np.cumsum(histogram)
    quantiles = np.searchsorted(cumulative, ranks, side="right")
    smallest = int(np.flatnonzero(histogram)[0])
    return sorted({int(q) + 1 for q in quantiles if q + 1 > smallest})


def count_batches(
    histogram: np.ndarray,
    boundaries: Sequence[int] | None,
    batch_size: int,
    drop_remainder: bool = False,
) -> int:
    """The batches of an epoch of the pairs that `histogram` counts by
    length, batched in `boundaries`' buckets (as `make_dataset`)."""
    histogram = np.asarray(histogram, np.int64)
    if boundaries:
        bucket = np.searchsorted(
            boundaries, np.arange(len(histogram)), side="right"
        )
        counts = np.bincount(
            bucket, weights=histogram, minlength=len(boundaries) + 1
        ).astype(np.int64)
    else:
        counts = np.array([histogram.sum()])
    if drop_remainder:
        return int((counts // batch_size).sum())
    return int((-(-counts // batch_size)).sum())


def make_streaming_dataset(
    pairs: StreamingPairs,
    processor: TextProcessor,
    *,
    batch_size: int = 64,
    seed: int = 0,
    epoch: int = 0,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    n_batches: int | None = None,
) -> tf.data.Dataset:
    """One epoch of a streaming corpus as a `tf.data.Dataset` of
    `((source, target_in), target_out)` batches, as `make_dataset` makes.

    Pipeline: the pairs in the order of `pairs.shuffled(seed, epoch)` (the
    files in a seeded order, through a shuffle buffer of
    `pairs.shuffle_buffer` pairs; read in a Python generator) -> tokenised
    in chunks by `processor` -> length-bucketed padded batches -> split
    target -> prefetch. The order of the batches depends only on the
    files, `seed` and `epoch`, so `.skip(k)` resumes an epoch exactly
    after its first `k` batches.

    Args:
        pairs: a `StreamingPairs` (e.g. the train part of a split).
        processor: the `TextProcessor`.
        batch_size: pairs per batch.
        seed: the seed of the orders.
        epoch: the epoch number (each epoch has its own order).
        bucket_boundaries: exclusive upper bounds of the length buckets
            (e.g. `buckets_from_histogram(scan_lengths(...).histogram)`),
            or `None`: padded batches in order.
        drop_remainder: drop the smaller last batch of each bucket.
        n_batches: the number of batches, if known (`count_batches`):
            the dataset's cardinality, so Keras knows the epoch's length.

    Returns:
        A `tf.data.Dataset`.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"Invalid batch_size={batch_size!r}; expected a positive integer."
        )
    spec = tf.TensorSpec([None], tf.string)

    def chunks():
        return _chunks(pairs.shuffled(seed, epoch), _CHUNK)

    def tokenize(sources, targets):
        source_ids, _ = processor.source.tokenize_counting(sources)
        target_ids, _ = processor.target.tokenize_counting(targets)
        return source_ids, target_ids

    def row(source, target):
        # As make_dataset: shift before padding.
        return source, target[:-1], target[1:]

    ds = tf.data.Dataset.from_generator(chunks, output_signature=(spec, spec))
    ds = ds.map(
        tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    ds = ds.unbatch()
    ds = ds.map(row, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padded_shapes = ([None], [None], [None])
    padding_values = (tf.constant(PAD_ID, tf.int32),) * 3
    if bucket_boundaries:
        boundaries = [int(b) for b in bucket_boundaries]
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda s, t_in, t_out: tf.maximum(
                tf.shape(s)[0], tf.shape(t_in)[0] + 1
            ),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[int(batch_size)] * (len(boundaries) + 1),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    else:
        ds = ds.padded_batch(
            int(batch_size),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    if n_batches is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    ds = ds.map(
        lambda s, t_in, t_out: ((s, t_in), t_out),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
