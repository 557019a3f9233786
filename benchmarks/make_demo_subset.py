"""Make the embedded demo corpus and the test fixture from Tatoeba spa-eng.

Usage:

    python -m benchmarks.make_demo_subset PATH
    KERAS_NMT_DATA=DIR python -m benchmarks.make_demo_subset

PATH is `spa.txt` or a directory holding `spa-eng/spa.txt` (or `spa.txt`);
without it, the directory named by `$KERAS_NMT_DATA` is used. Writes
`keras_nmt/datasets/spa-eng-small.tsv` and
`tests/data/spa-eng-fixture.tsv` (paths can be changed with options).

How pairs are chosen (deterministic, pure Python, no TensorFlow):

1. Keep pairs whose English side has at most `--max-words` words.
2. Count lower-cased words (`\\w+`) over those pairs; keep only pairs whose
   English words are all among the `--english-words` most frequent English
   words and whose Spanish words are all among the `--spanish-words` most
   frequent Spanish words. A small, dense vocabulary lets a small model
   learn useful translations in a few minutes on a CPU.
3. Shuffle the distinct English sentences with `random.Random(--seed)` and
   take all the pairs of each in turn until `--size` pairs are reached, so
   all translations of one English sentence stay together.
4. Write the chosen lines verbatim, in the order of the original file.

The fixture is drawn the same way (seed `--seed + 1`) from the demo subset.
"""

import argparse
import collections
import hashlib
import os
import pathlib
import random
import re
import sys

# sha256 of the spa.txt inside spa-eng.zip (TensorFlow NMT tutorial), the
# file the committed subset was made from.
EXPECTED_SHA256 = (
    "6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c"
)
ROOT = pathlib.Path(__file__).resolve().parent.parent
WORD = re.compile(r"\w+")


def _words(text):
    return WORD.findall(text.lower())


def _resolve(path):
    if path is None:
        env = os.environ.get("KERAS_NMT_DATA")
        if not env:
            sys.exit(
                "error: pass the path of spa.txt (or of a directory holding "
                "spa-eng/spa.txt), or set KERAS_NMT_DATA."
            )
        path = env
    path = pathlib.Path(path)
    for candidate in (path, path / "spa-eng" / "spa.txt", path / "spa.txt"):
        if candidate.is_file():
            return candidate
    sys.exit(f"error: no spa.txt at '{path}'.")


def _select(lines, size, seed):
    """Whole English groups in a seeded order until `size` lines."""
    by_group = collections.defaultdict(list)
    for index, line in enumerate(lines):
        by_group[line.split("\t")[0]].append(index)
    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    chosen = []
    for group in groups:
        if len(chosen) >= size:
            break
        chosen.extend(by_group[group])
    return [lines[i] for i in sorted(chosen)]


def make_subset(lines, *, max_words, english_words, spanish_words, size, seed):
    """The demo subset of `lines` (strings without line endings)."""
    short = [
        line for line in lines if len(line.split("\t")[0].split()) <= max_words
    ]
    english = collections.Counter()
    spanish = collections.Counter()
    for line in short:
        columns = line.split("\t")
        english.update(_words(columns[0]))
        spanish.update(_words(columns[1]))

    def top(counter, n):
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        return {word for word, _ in ranked[:n]}

    english_vocab = top(english, english_words)
    spanish_vocab = top(spanish, spanish_words)
    dense = [
        line
        for line in short
        if set(_words(line.split("\t")[0])) <= english_vocab
        and set(_words(line.split("\t")[1])) <= spanish_vocab
    ]
    return _select(dense, size, seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", help="spa.txt or its directory")
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--fixture-size", type=int, default=300)
    parser.add_argument("--max-words", type=int, default=6)
    parser.add_argument("--english-words", type=int, default=600)
    parser.add_argument("--spanish-words", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=str(ROOT / "keras_nmt/datasets/spa-eng-small.tsv"),
    )
    parser.add_argument(
        "--fixture-out", default=str(ROOT / "tests/data/spa-eng-fixture.tsv")
    )
    args = parser.parse_args(argv)

    source = _resolve(args.path)
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPECTED_SHA256:
        print(
            f"warning: {source} has sha256 {digest}, not the file the "
            f"committed subset was made from ({EXPECTED_SHA256}); the "
            "output will differ.",
            file=sys.stderr,
        )
    lines = [line for line in data.decode("utf-8").split("\n") if line]

    subset = make_subset(
        lines,
        max_words=args.max_words,
        english_words=args.english_words,
        spanish_words=args.spanish_words,
        size=args.size,
        seed=args.seed,
    )
    fixture = _select(subset, args.fixture_size, args.seed + 1)
    for out, chosen in ((args.out, subset), (args.fixture_out, fixture)):
        pathlib.Path(out).write_text(
            "".join(line + "\n" for line in chosen), encoding="utf-8"
        )
        groups = len({line.split("\t")[0] for line in chosen})
        print(f"wrote {out}: {len(chosen)} pairs, {groups} English sentences")


if __name__ == "__main__":
    main()
