"""Read tab-separated sentence-pair files and split them by group.

The format is the one of the Anki / Tatoeba files from manythings.org/anki:
UTF-8 text, one pair per line, `English<TAB>Other` with an optional third
column (the attribution). This module is plain Python (no TensorFlow), so
reading and splitting data costs nothing at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import os
import pathlib
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_nmt.datasets import SPA_ENG_SMALL

SPA_ENG_URL = (
    "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"
)
DATA_ENV_VAR = "KERAS_NMT_DATA"

# Skipped line numbers listed in the skip warning; the rest are counted.
_MAX_LISTED = 5


class DataFormatError(ValueError):
    """A sentence-pair file does not have the expected format.

    The message names the file, the 1-based line number, what was found
    there and what was expected.
    """


@dataclasses.dataclass(frozen=True)
class SentencePairs:
    """Parallel sentences read from a pair file.

    `len(pairs)` is the number of pairs.

    Attributes:
        sources: the source sentences (what the model reads).
        targets: the target sentences (what it should write), aligned with
            `sources`.
        groups: the file's first column for each pair (the English sentence
            in the Anki files). Pairs that share a group are alternative
            translations of one sentence; `split_pairs` keeps them together.

    Raises:
        ValueError: if the three lists differ in length.
    """

    sources: list[str]
    targets: list[str]
    groups: list[str]

    def __post_init__(self):
        lengths = (len(self.sources), len(self.targets), len(self.groups))
        if len(set(lengths)) != 1:
            raise ValueError(
                "SentencePairs needs sources, targets and groups of the same "
                f"length; received lengths {lengths}. Pass "
                "groups=list(sources) if you have no groups."
            )

    def __len__(self) -> int:
        return len(self.sources)

    def take(self, indices: Sequence[int]) -> SentencePairs:
        """The pairs at `indices`, in that order."""
        return SentencePairs(
            [self.sources[i] for i in indices],
            [self.targets[i] for i in indices],
            [self.groups[i] for i in indices],
        )


class PairSplits(NamedTuple):
    """The three parts returned by `split_pairs`."""

    train: SentencePairs
    validation: SentencePairs
    test: SentencePairs


def parse_pair_line(raw: bytes, path: str, number: int) -> tuple[str, str]:
    """Decode and split one line (without its line ending) of a pair file.

    Shared by `read_pairs` and the streaming reader
    (`keras_nmt.text.StreamingPairs`), so both accept and reject the same
    lines with the same messages.

    Args:
        raw: the line's bytes, without `\\n` / `\\r\\n`.
        path: the file's name, for the error message.
        number: the 1-based line number, for the error message.

    Returns:
        `(first, second)`: columns 1 and 2, stripped.

    Raises:
        DataFormatError: on invalid UTF-8, a wrong number of columns or
            an empty sentence.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.start + 4]
        raise DataFormatError(
            f"{path}, line {number}: invalid UTF-8 (byte "
            f"{raw[e.start]:#04x} at column {e.start + 1}, near {bad!r}). "
            "Expected a UTF-8 encoded file. If the file is Latin-1 or "
            "Windows-1252, convert it first, e.g. "
            "`iconv -f latin1 -t utf-8 in.txt > out.txt`."
        ) from None
    columns = line.split("\t")
    if len(columns) not in (2, 3):
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise DataFormatError(
            f"{path}, line {number}: found {len(columns)} tab-separated "
            f"column(s) in {shown!r}; expected 2 or 3 "
            "(`first<TAB>second[<TAB>attribution]`). Check that the "
            "columns are separated by tabs, not spaces, and that no "
            "sentence contains a tab or a line break."
        )
    first, second = columns[0].strip(), columns[1].strip()
    for index, side in ((1, first), (2, second)):
        if not side:
            raise DataFormatError(
                f"{path}, line {number}: column {index} is empty or only "
                f"whitespace in {line!r}; expected a sentence in columns 1 "
                "and 2."
            )
    return first, second


def read_pairs(
    path: str | os.PathLike,
    *,
    reverse: bool = False,
    max_pairs: int | None = None,
    on_error: str = "raise",
) -> SentencePairs:
    """Read a tab-separated sentence-pair file (the Anki / Tatoeba format).

    Each line is `first<TAB>second` or `first<TAB>second<TAB>attribution`,
    UTF-8 encoded; `\\n` and `\\r\\n` line endings and a leading byte-order
    mark are accepted, and whitespace around each sentence is stripped.
    Blank lines (empty or only whitespace) hold no pair and are skipped
    wherever they are, like a trailing newline at the end of the file.
    Every other line must parse: a line with the wrong number of columns,
    an empty sentence or invalid UTF-8 is an error, or with
    `on_error="skip"` it is skipped and all skips are reported in one
    warning. No line is dropped silently.

    Args:
        path: the file to read.
        reverse: if `False`, column 1 is the source and column 2 the target;
            if `True`, column 2 is the source and column 1 the target (for
            the Anki files, which put English first, `True` translates into
            English).
        max_pairs: if given, read only the first `max_pairs` pairs.
        on_error: `"raise"` (default) to raise on the first malformed line,
            or `"skip"` to skip malformed lines and warn once with their
            count and first line numbers.

    Returns:
        A `SentencePairs(sources, targets, groups)` where `groups` is column
        1 of each pair, whatever `reverse` is.

    Raises:
        FileNotFoundError: if `path` does not exist.
        DataFormatError: (a `ValueError`) on a malformed line when
            `on_error="raise"`, or when the file holds no valid pair.
        ValueError: on an invalid `on_error` or `max_pairs`.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
    >>> _ = path.write_text("Go.\\tVe.\\nHi.\\tHola.\\tCC-BY 2.0\\n")
    >>> pairs = read_pairs(path, reverse=True)
    >>> pairs.sources, pairs.targets
    (['Ve.', 'Hola.'], ['Go.', 'Hi.'])
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(
            f"Invalid on_error={on_error!r}; expected 'raise' (stop at the "
            "first malformed line) or 'skip' (skip and count them)."
        )
    if max_pairs is not None and (
        isinstance(max_pairs, bool)
        or not isinstance(max_pairs, int)
        or max_pairs < 1
    ):
        raise ValueError(
            f"Invalid max_pairs={max_pairs!r}; expected a positive integer "
            "or None (read every pair)."
        )
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Sentence-pair file not found (or not a file): '{path}'. Pass "
            "the path of a UTF-8 tab-separated file."
        )

    firsts, seconds, skipped = [], [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                first, second = parse_pair_line(raw, str(path), number)
            except DataFormatError:
                if on_error == "raise":
                    raise
                skipped.append(number)
                continue
            firsts.append(first)
            seconds.append(second)
            if max_pairs is not None and len(firsts) >= max_pairs:
                break

    if skipped:
        listed = ", ".join(str(n) for n in skipped[:_MAX_LISTED])
        more = ", ..." if len(skipped) > _MAX_LISTED else ""
        warnings.warn(
            f"{path}: skipped {len(skipped)} malformed line(s) (line "
            f"{listed}{more}). Read the file with on_error='raise' to see "
            "what is wrong with each.",
            stacklevel=2,
        )
    if not firsts:
        detail = (
            f" ({len(skipped)} malformed line(s) skipped)" if skipped else ""
        )
        raise DataFormatError(
            f"{path}: no sentence pairs found{detail}; expected at least one "
            "line `first<TAB>second[<TAB>attribution]`."
        )
    if reverse:
        return SentencePairs(seconds, firsts, list(firsts))
    return SentencePairs(firsts, seconds, list(firsts))


def _unit_interval(seed: int, group: str) -> float:
    """A platform-independent pseudo-random number in [0, 1) per group."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class GroupSplit:
    """The part of each group in a split by `split_pairs`: 0 (train),
    1 (validation) or 2 (test).

    Shared by `split_pairs` and the streaming reader, so a group lands in
    the same part in both. Calls are cached per group (the Anki files list
    the translations of a sentence together).

    Args:
        fractions: the (train, validation, test) fractions; non-negative,
            summing to 1.
        seed: an integer.

    Raises:
        ValueError: on invalid `fractions` or `seed`.
    """

    _CACHE = 65_536  # groups remembered; enough for consecutive repeats

    def __init__(self, fractions: tuple[float, float, float], seed: int):
        if (
            len(fractions) != 3
            or any(f < 0 for f in fractions)
            or abs(sum(fractions) - 1.0) > 1e-6
        ):
            raise ValueError(
                f"Invalid fractions={tuple(fractions)!r}; expected three "
                "non-negative numbers (train, validation, test) that sum to "
                "1, e.g. (0.8, 0.1, 0.1)."
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Invalid seed={seed!r}; expected an integer.")
        self.fractions, self.seed = tuple(fractions), seed
        self._bounds = (fractions[0], fractions[0] + fractions[1])
        # Rounding can leave u above the last bound: use the last non-empty
        # part.
        self._last = max(i for i, f in enumerate(fractions) if f > 0)
        self._cache = {}

    def __call__(self, group: str) -> int:
        part = self._cache.get(group)
        if part is None:
            u = _unit_interval(self.seed, group)
            part = 0 if u < self._bounds[0] else 1 if u < self._bounds[1] else 2
            part = part if self.fractions[part] > 0 else self._last
            if len(self._cache) >= self._CACHE:
                self._cache.clear()
            self._cache[group] = part
        return part


def split_pairs(
    pairs: SentencePairs,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> PairSplits:
    """Split pairs into train / validation / test by group.

    All pairs of one group (in the Anki files: all translations of one
    English sentence) land in the same part, so alternative translations do
    not leak from training into evaluation. Each group's part is decided by
    a SHA-256 hash of the seed and the group text, so a split is the same on
    every platform and Python version, and a group keeps its part when other
    pairs are added to or removed from the file. The fractions are met
    approximately (they are probabilities per group). Within each part the
    pairs keep their input order.

    Args:
        pairs: the pairs to split, e.g. from `read_pairs`.
        fractions: the (train, validation, test) fractions; non-negative,
            summing to 1. A zero fraction gives an empty part.
        seed: an integer; a different seed gives a different split.

    Returns:
        `PairSplits(train, validation, test)`, each a `SentencePairs`.

    Raises:
        ValueError: if `fractions` is not three non-negative numbers that
            sum to 1.

    Example:

    >>> pairs = SentencePairs(["Ve.", "Vete.", "Hola."],
    ...                       ["Go.", "Go.", "Hi."], ["Go.", "Go.", "Hi."])
    >>> parts = split_pairs(pairs, fractions=(0.5, 0.5, 0.0), seed=1)
    >>> sum(len(p) for p in parts)
    3
    """
    part_of = GroupSplit(fractions, seed)
    indices = ([], [], [])
    for i, group in enumerate(pairs.groups):
        indices[part_of(group)].append(i)
    return PairSplits(*(pairs.take(idx) for idx in indices))


def sample_pairs(pairs: SentencePairs, n: int, *, seed: int = 0):
    """A seeded sample of `n` pairs, in their file order.

    The Anki / Tatoeba files are sorted by sentence length, so their first
    `n` lines are the `n` shortest pairs: a sample keeps the mix of
    lengths. The same `(pairs, n, seed)` always gives the same sample; all
    pairs (in order) when `n >= len(pairs)`.

    Args:
        pairs: a `SentencePairs`.
        n: how many pairs to keep, at least 1.
        seed: an integer.

    Returns:
        A `SentencePairs`.

    Raises:
        ValueError: on an invalid `n` or `seed`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Invalid n={n!r}; expected an integer >= 1.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"Invalid seed={seed!r}; expected an integer >= 0.")
    if n >= len(pairs):
        return pairs
    rng = np.random.default_rng([seed, 2])
    chosen = np.sort(rng.choice(len(pairs), size=n, replace=False))
    return pairs.take(chosen.tolist())


def _find_spa_txt(directory: pathlib.Path) -> pathlib.Path | None:
    for candidate in (
        directory / "spa-eng" / "spa.txt",
        directory / "spa.txt",
    ):
        if candidate.is_file():
            return candidate
    return None


def spa_eng_path(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Locate (and, if needed, download) the Tatoeba spa-eng file.

    Looks, in order, at `path`, at the directory named by the environment
    variable `KERAS_NMT_DATA`, and otherwise downloads
    `spa-eng.zip` (the file of the TensorFlow NMT tutorial) with
    `keras.utils.get_file` into the Keras cache (`~/.keras/datasets`).

    Args:
        path: `None`, the `spa.txt` file itself, or a directory that holds
            `spa-eng/spa.txt` or `spa.txt`.

    Returns:
        The path of `spa.txt`.

    Raises:
        FileNotFoundError: if `path` or `$KERAS_NMT_DATA` is given
            but holds no `spa.txt`.
    """
    if path is not None:
        where, origin = pathlib.Path(path), "path"
    elif os.environ.get(DATA_ENV_VAR):
        where, origin = pathlib.Path(os.environ[DATA_ENV_VAR]), DATA_ENV_VAR
    else:
        import keras

        extracted = keras.utils.get_file(
            "spa-eng.zip", origin=SPA_ENG_URL, extract=True
        )
        extracted = pathlib.Path(extracted)
        # Keras 3 returns the extraction folder; Keras 2 returned the zip.
        for directory in (extracted, extracted.parent):
            found = _find_spa_txt(directory)
            if found is not None:
                return found
        raise FileNotFoundError(
            f"Downloaded {SPA_ENG_URL} to '{extracted}' but found no "
            "spa-eng/spa.txt in it. Delete it and try again, or pass "
            "path=... to a local copy."
        )
    if where.is_file():
        return where
    found = _find_spa_txt(where) if where.is_dir() else None
    if found is None:
        raise FileNotFoundError(
            f"No spa.txt at {origin}='{where}': expected the file itself "
            "or a directory containing spa-eng/spa.txt or spa.txt (the "
            "content of spa-eng.zip from the TensorFlow NMT tutorial)."
        )
    return found


def load_spa_eng(
    path: str | os.PathLike | None = None,
    *,
    reverse: bool = True,
    max_pairs: int | None = None,
) -> SentencePairs:
    """Load the Tatoeba English–Spanish pairs (118,964 lines).

    The data comes from the Tatoeba Project (tatoeba.org) via
    manythings.org/anki, under CC BY 2.0 FR; attribution:
    "www.manythings.org/anki and tatoeba.org". Where the file is found:
    see `spa_eng_path` (a path argument, then `$KERAS_NMT_DATA`, then
    a download).

    Args:
        path: `None`, the `spa.txt` file, or a directory holding
            `spa-eng/spa.txt` or `spa.txt`.
        reverse: `True` (default) for Spanish -> English (Spanish sources,
            English targets, as in the TensorFlow NMT tutorial); `False` for
            English -> Spanish.
        max_pairs: if given, read only the first `max_pairs` pairs (the file
            is sorted by length, so these are the shortest).

    Returns:
        A `SentencePairs`; `groups` holds the English sentences.

    Raises:
        FileNotFoundError: if the file cannot be found.
        DataFormatError: if the file is malformed.
    """
    return read_pairs(spa_eng_path(path), reverse=reverse, max_pairs=max_pairs)


def load_demo_pairs(
    *, reverse: bool = True, max_pairs: int | None = None
) -> SentencePairs:
    """Load the small English–Spanish demo corpus shipped with the package.

    About 5,000 short pairs chosen from the Tatoeba spa-eng file (see
    `keras_nmt/datasets/NOTICE`: CC BY 2.0 FR, attribution
    "www.manythings.org/anki and tatoeba.org"). Needs no network.

    Args:
        reverse: `True` (default) for Spanish -> English, `False` for
            English -> Spanish.
        max_pairs: if given, read only the first `max_pairs` pairs.

    Returns:
        A `SentencePairs`; `groups` holds the English sentences.

    Example:

    >>> pairs = load_demo_pairs()
    >>> len(pairs) > 1000
    True
    """
    resource = importlib.resources.files("keras_nmt.datasets")
    with importlib.resources.as_file(resource / SPA_ENG_SMALL) as file:
        return read_pairs(file, reverse=reverse, max_pairs=max_pairs)
