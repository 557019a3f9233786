import collections
import gzip
import json
import pathlib

import numpy as np
import pytest

from keras_nmt import cli
from keras_nmt.text.dataset import length_buckets
from keras_nmt.text.dataset import make_dataset
from keras_nmt.text.pairs import DataFormatError
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.pairs import split_pairs
from keras_nmt.text.streaming import StreamingPairs
from keras_nmt.text.streaming import buckets_from_histogram
from keras_nmt.text.streaming import count_batches
from keras_nmt.text.streaming import make_streaming_dataset
from keras_nmt.text.streaming import streaming_processor
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.training.data import EpochData
from keras_nmt.training.data import StreamingEpochData

FIXTURE = pathlib.Path(__file__).parent.parent / "data" / "spa-eng-fixture.tsv"
TINY = {
    "tokenizer": "word",
    "embedding_dim": 8,
    "units": 16,
    "batch_size": 32,
    "max_length": 16,
    "learning_rate": 1e-2,
    "select_by": "loss",
    "validation_sentences": 0,
    "patience": 0,
    "lr_patience": 0,
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The fixture in three shards: plain; gzipped; CRLF line endings, a
    byte-order mark and trailing blank lines."""
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    directory = tmp_path_factory.mktemp("shards")
    (directory / "part-0.tsv").write_bytes(b"".join(lines[:100]))
    with gzip.open(directory / "part-1.tsv.gz", "wb") as f:
        f.write(b"".join(lines[100:200]))
    crlf = b"".join(line.rstrip(b"\n") + b"\r\n" for line in lines[200:])
    (directory / "part-2.tsv").write_bytes(b"\xef\xbb\xbf" + crlf + b"\n \n")
    return str(directory / "part-*")


@pytest.fixture(scope="module")
def memory():
    return split_pairs(read_pairs(FIXTURE, reverse=True), seed=0)


@pytest.fixture(scope="module")
def parts(shards):
    corpus = StreamingPairs(shards, reverse=True, shuffle_buffer=32)
    return corpus.split(seed=0)


@pytest.fixture(scope="module")
def processor(memory):
    return TextProcessor.from_sentences(
        memory.train.sources, memory.train.targets, max_length=16
    )


def unpad(row):
    row = list(row)
    while row and row[-1] == 0:
        row.pop()
    return tuple(row)


def batches(ds):
    return [(s.numpy(), t_in.numpy(), t_out.numpy()) for (s, t_in), t_out in ds]


def examples(ds):
    """Every (source, target_in, target_out) of an epoch, unpadded."""
    return [
        tuple(unpad(row) for row in rows)
        for batch in batches(ds)
        for rows in zip(*batch, strict=True)
    ]


# --- reading and splitting (no TensorFlow) ---------------------------------


@pytest.mark.parametrize(
    "fractions, seed", [((0.8, 0.1, 0.1), 0), ((0.5, 0.0, 0.5), 3)]
)
def test_each_part_is_that_of_split_pairs(shards, fractions, seed):
    corpus = StreamingPairs(shards, reverse=True)
    assert [pathlib.Path(f).name for f in corpus.files] == [
        "part-0.tsv",
        "part-1.tsv.gz",
        "part-2.tsv",
    ]
    expected = split_pairs(
        read_pairs(FIXTURE, reverse=True), fractions=fractions, seed=seed
    )
    for part, want in zip(
        corpus.split(fractions, seed=seed), expected, strict=True
    ):
        assert list(part.pairs()) == list(
            zip(want.sources, want.targets, strict=True)
        )
        assert part.count() == len(want)
        assert part.sample(10_000) == want  # groups too


def test_sample_is_bounded_seeded_and_in_file_order(parts, memory):
    sample = parts.train.sample(20, seed=5)
    assert len(sample) == 20
    assert parts.train.sample(20, seed=5) == sample
    assert parts.train.sample(20, seed=6) != sample
    pairs = list(zip(memory.train.sources, memory.train.targets, strict=True))
    positions = [
        pairs.index(p) for p in zip(sample.sources, sample.targets, strict=True)
    ]
    assert positions == sorted(positions)


def test_an_epoch_order_depends_only_on_seed_and_epoch(shards):
    def order(seed, epoch):
        corpus = StreamingPairs(shards, reverse=True, shuffle_buffer=16)
        return list(corpus.split(seed=0).train.shuffled(seed, epoch))

    first = order(1, 0)
    assert order(1, 0) == first
    assert order(1, 1) != first and order(2, 0) != first
    assert sorted(order(1, 1)) == sorted(first)
    unshuffled = StreamingPairs(FIXTURE, shuffle_buffer=0)
    assert list(unshuffled.shuffled(1, 0)) == list(unshuffled.pairs())


def test_malformed_lines_name_the_file_and_the_line(tmp_path):
    good = tmp_path / "a.tsv"
    good.write_text("Go.\tVe.\n", encoding="utf-8")
    content = b"Hi.\tHola.\nno tab here\n"
    with gzip.open(tmp_path / "b.tsv.gz", "wb") as f:
        f.write(content)
    corpus = StreamingPairs([good, tmp_path / "b.tsv.gz"])
    with pytest.raises(DataFormatError) as streamed:
        corpus.count()
    (tmp_path / "b.tsv").write_bytes(content)
    with pytest.raises(DataFormatError) as in_memory:
        read_pairs(tmp_path / "b.tsv")
    assert str(streamed.value).startswith(f"{tmp_path / 'b.tsv.gz'}, line 2:")
    assert str(streamed.value).replace(".gz", "") == str(in_memory.value)

    skipping = StreamingPairs(str(tmp_path / "*.gz"), on_error="skip")
    with pytest.warns(
        UserWarning, match=r"skipped 1 malformed line\(s\) \(line 2\)"
    ):
        assert skipping.count() == 1

    truncated = tmp_path / "c.tsv.gz"
    truncated.write_bytes(gzip.compress(b"Go.\tVe.\n" * 5000)[:-30])
    with pytest.raises(
        DataFormatError, match=r"c\.tsv\.gz, after line \d+: cannot"
    ):
        StreamingPairs(truncated).count()
    with pytest.raises(
        FileNotFoundError, match="No sentence-pair file matches"
    ):
        StreamingPairs(str(tmp_path / "*.nothing"))
    with pytest.raises(FileNotFoundError, match="not found"):
        StreamingPairs(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="split the whole corpus"):
        corpus.split()[0].split()


def test_bucket_boundaries_from_counts_are_length_buckets(rng):
    for n in (1, 2, 3, 10, 11, 21, 101, 1000, 4097):
        for high in (5, 40):
            lengths = rng.integers(3, high, n)
            histogram = np.bincount(lengths)
            assert buckets_from_histogram(histogram) == length_buckets(lengths)
    lengths = np.array([4] * 50 + [9] * 3)
    assert buckets_from_histogram(np.bincount(lengths)) == length_buckets(
        lengths
    )


# --- vocabularies and batches ------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 40])
def test_word_vocabularies_are_those_of_the_pairs_in_memory(
    parts, memory, max_tokens
):
    streamed = streaming_processor(parts.train, max_tokens=max_tokens)
    expected = TextProcessor.from_sentences(
        memory.train.sources, memory.train.targets, max_tokens=max_tokens
    )
    assert streamed.source_vocabulary == expected.source_vocabulary
    assert streamed.target_vocabulary == expected.target_vocabulary


def test_subword_vocabularies_are_those_of_the_pairs_in_memory(parts, memory):
    streamed = streaming_processor(
        parts.train, tokenizer="subword", max_tokens=400, max_length=24
    )
    expected = TextProcessor.from_sentences(
        memory.train.sources,
        memory.train.targets,
        tokenizer="subword",
        max_tokens=400,
        max_length=24,
    )
    assert streamed.source.model == expected.source.model
    assert streamed.target.model == expected.target.model


def test_each_epoch_holds_the_pairs_of_the_in_memory_epoch(
    parts, memory, processor
):
    streamed = StreamingEpochData(parts.train, processor, 16, 7, False)
    in_memory = EpochData(memory.train, processor, 16, 7, False)
    assert streamed.size == len(memory.train)
    assert streamed.boundaries == in_memory.boundaries
    assert streamed.steps_per_epoch == in_memory.steps_per_epoch
    epoch = streamed.epoch(0)
    assert epoch.element_spec == in_memory.epoch(0).element_spec
    assert len(epoch) == streamed.steps_per_epoch
    first = examples(epoch)
    assert collections.Counter(first) == collections.Counter(
        examples(in_memory.epoch(0))
    )
    second = examples(streamed.epoch(1))
    assert second != first
    assert collections.Counter(second) == collections.Counter(first)
    assert examples(streamed.epoch(0)) == first


def test_without_buckets_every_batch_is_full_but_the_last(
    parts, memory, processor
):
    ds = make_streaming_dataset(parts.train, processor, batch_size=50)
    sizes = [s.shape[0] for s, _, _ in batches(ds)]
    assert sum(sizes) == len(memory.train)
    assert sizes[:-1] == [50] * (len(sizes) - 1)
    expected = make_dataset(
        memory.train, processor, batch_size=50, shuffle=False
    )
    assert len(sizes) == len(expected)
    histogram = np.bincount([4] * len(memory.train))
    assert count_batches(histogram, None, 50) == len(sizes)


def test_a_resumed_epoch_skips_exactly_the_trained_batches(parts, processor):
    data = StreamingEpochData(parts.train, processor, 16, 7, False)
    full = batches(data.stream(0, 2))
    assert len(full) == 2 * data.steps_per_epoch
    for skip in (3, data.steps_per_epoch - 1):
        resumed = batches(data.stream(0, 2, skip=skip))
        assert len(resumed) == len(full) - skip
        for a, b in zip(resumed, full[skip:], strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


def test_truncation_is_counted_once_in_a_warning(parts, memory):
    short = TextProcessor.from_sentences(
        memory.train.sources, memory.train.targets, max_length=5
    )
    with pytest.warns(UserWarning, match="truncated to max_length=5"):
        StreamingEpochData(parts.train, short, 16, 0, False)


# --- training ----------------------------------------------------------------


def test_train_streams_a_glob_of_shards_and_resumes(
    shards, memory, tmp_path, capsys
):
    from keras_nmt.training.trainer import train_translator
    from keras_nmt.translator import Translator

    # keras-nmt train --streaming trains one epoch ...
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    out_dir = tmp_path / "run"
    status = cli.main(
        [
            "train",
            "--data",
            shards,
            "--streaming",
            "--shuffle-buffer",
            "8",
            "--out",
            str(out_dir),
            "--epochs",
            "1",
            "--verbose",
            "0",
            *flags,
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "3 file(s) from" in printed and "streamed" in printed
    described = json.loads((out_dir / "training.json").read_text())
    assert described["data_source"]["streaming"] is True
    assert described["data_source"]["shuffle_buffer"] == 8
    assert described["train_pairs"] == len(memory.train)
    assert described["validation_pairs"] == len(memory.validation)
    assert described["completed_epochs"] == 1

    # ... and train_translator continues it with the same StreamingPairs
    # (scanned again; the validation part sampled into memory).
    corpus = StreamingPairs(shards, reverse=True, shuffle_buffer=8)
    parts = corpus.split(seed=0)
    train_translator(
        parts.train,
        parts.validation,
        out_dir,
        epochs=2,
        resume=True,
        verbose=0,
        **TINY,
    )
    described = json.loads((out_dir / "training.json").read_text())
    assert described["completed_epochs"] == 2
    translator = Translator.load(out_dir)
    expected = streaming_processor(parts.train, max_length=16)
    assert translator.processor.source_vocabulary == expected.source_vocabulary
    (translation,) = translator.translate(["Hola."])
    assert isinstance(translation, str)

    status = cli.main(
        [
            "train",
            "--data",
            shards,
            "--streaming",
            "--max-pairs",
            "10",
            "--out",
            str(tmp_path / "other"),
        ]
    )
    assert status == 1
    assert "--max-pairs" in capsys.readouterr().err
