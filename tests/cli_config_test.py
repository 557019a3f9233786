"""`keras-nmt train --config FILE`, the data flags of `train` and the
default split of `evaluate`."""

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest

from keras_nmt import text
from keras_nmt.cli import main
from keras_nmt.cli.parser import parse_args
from keras_nmt.translator import Translator

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"
FLAGS = (
    "--epochs",
    "2",
    "--embedding-dim",
    "8",
    "--units",
    "16",
    "--max-length",
    "24",
    "--batch-size",
    "16",
    "--validation-sentences",
    "8",
    "--no-reverse",
    "--max-pairs",
    "150",
    "--split-fractions",
    "0.7,0.2,0.1",
    "--verbose",
    "0",
)
CONFIG = """\
# The same run as FLAGS.
epochs = 2
embedding-dim = 8
units = 16
max_length = 24
batch-size = 16
validation-sentences = 8
reverse = false
max-pairs = 150
split-fractions = [0.7, 0.2, 0.1]
verbose = 0
"""


def _history(out_dir):
    with open(out_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_run(a, b):
    rows_a, rows_b = _history(a), _history(b)
    assert len(rows_a) == len(rows_b) == 2
    for key in ("loss", "val_loss", "val_bleu"):
        assert [r[key] for r in rows_a] == [r[key] for r in rows_b], key
    weights_a = Translator.load(a).model.get_weights()
    weights_b = Translator.load(b).model.get_weights()
    for x, y in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("config")
    data = workdir / "pairs.tsv"
    shutil.copy(FIXTURE, data)
    config = workdir / "run.toml"
    config.write_text(CONFIG, encoding="utf-8")
    by_flags = workdir / "flags"
    by_config = workdir / "config"
    assert (
        main(["train", "--data", str(data), "--out", str(by_flags), *FLAGS])
        == 0
    )
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--data",
                str(data),
                "--out",
                str(by_config),
            ]
        )
        == 0
    )
    return workdir, data, by_flags, by_config


def test_a_config_file_reproduces_the_run_of_the_flags(runs):
    _, _, by_flags, by_config = runs
    _assert_same_run(by_flags, by_config)
    described = json.loads((by_config / "training.json").read_text())
    assert described["units"] == 16 and described["validation_sentences"] == 8
    # The split of --data: 150 sampled pairs, 70/20/10.
    assert described["data_source"]["max_pairs"] == 150
    assert described["data_source"]["split_fractions"] == [0.7, 0.2, 0.1]


def test_a_runs_training_json_is_a_config(runs):
    workdir, data, by_flags, _ = runs
    again = workdir / "again"
    code = main(
        [
            "train",
            "--config",
            str(by_flags / "training.json"),
            "--data",
            str(data),
            "--out",
            str(again),
            "--no-reverse",
            "--max-pairs",
            "150",
            "--split-fractions",
            "0.7,0.2,0.1",
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    _assert_same_run(by_flags, again)


def test_the_command_line_wins_over_the_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('units = 32\nout = "from-config"\ndata = "d.tsv"\n')
    args = parse_args(["train", "--config", str(config), "--units", "16"])
    assert args.units == 16
    assert (args.out, args.data) == ("from-config", "d.tsv")


@pytest.mark.parametrize(
    "content, message",
    [
        ("unit = 3\n", "unknown key 'unit'"),
        ("units = \n", "not valid TOML"),
        ('units = "many"\n', "argument --units"),
        ("dropout = 1.5\n", "argument --dropout"),
        ("resume = 1\n", "resume must be true or false; received 1"),
    ],
)
def test_a_bad_config_is_one_line(tmp_path, capsys, content, message):
    config = tmp_path / "c.toml"
    config.write_text(content)
    argv = ["train", "--config", str(config), "--data", "x", "--out", "y"]
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_train_needs_data_and_out(capsys):
    with pytest.raises(SystemExit):
        parse_args(["train", "--out", "y"])
    assert "--data" in capsys.readouterr().err


def test_evaluate_scores_the_held_out_part_of_the_training_file(runs, capsys):
    workdir, data, by_flags, _ = runs
    capsys.readouterr()
    assert (
        main(["evaluate", "--model", str(by_flags), "--data", str(data)]) == 0
    )
    out = capsys.readouterr().out
    # The run's own sample and split (from training.json): its test part.
    pairs = text.sample_pairs(text.read_pairs(data), 150, seed=0)
    test = text.split_pairs(pairs, fractions=(0.7, 0.2, 0.1), seed=0).test
    assert f"({len(test)} pairs, test split" in out
    assert "(cased)" in out and "(lowercased)" in out
    # Another file: all of it.
    other = workdir / "other.tsv"
    shutil.copy(data, other)
    assert (
        main(["evaluate", "--model", str(by_flags), "--data", str(other)]) == 0
    )
    out = capsys.readouterr().out
    assert f"({len(text.read_pairs(other))} pairs, all split" in out


def test_max_pairs_is_a_seeded_sample_in_file_order():
    pairs = text.read_pairs(FIXTURE)
    sample = text.sample_pairs(pairs, 20, seed=3)
    assert sample.sources == text.sample_pairs(pairs, 20, seed=3).sources
    positions = [pairs.sources.index(s) for s in sample.sources]
    assert positions == sorted(positions)  # file order kept
    assert positions != list(range(20))  # not the first (shortest) lines
    assert len(set(sample.sources)) == len(sample)
    assert text.sample_pairs(pairs, 10**6).sources == pairs.sources
    with pytest.raises(ValueError, match="n=0"):
        text.sample_pairs(pairs, 0)


def test_validation_and_test_files_replace_their_share(tmp_path, capsys):
    validation = tmp_path / "validation.tsv"
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    validation.write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    code = main(
        [
            "train",
            "--data",
            str(FIXTURE),
            "--validation-data",
            str(validation),
            "--out",
            str(tmp_path / "run"),
            *FLAGS[:12],  # sizes only; default split fractions
            "--epochs",
            "1",
            "--verbose",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    pairs = text.read_pairs(FIXTURE, reverse=True)
    train, _, test = text.split_pairs(pairs, fractions=(0.9, 0.0, 0.1), seed=0)
    assert f"{len(train)} train, 30 validation, {len(test)} test" in out, out
