"""The `keras-nmt` command, end to end in subprocesses.

Each subprocess imports TensorFlow (seconds), so the commands that do not
depend on each other run concurrently.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from keras_nmt import cli

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"
TIMEOUT = 600


def _start(*args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("KERAS_NMT_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "keras_nmt", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process):
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    # Nothing but our own lines: TensorFlow's start-up logs are silenced.
    return process.returncode, stdout, stderr.splitlines(), stderr


def _run(*args, cwd):
    return _finish(_start(*args, cwd=cwd))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained(workdir):
    """`keras-nmt train` for one epoch on 200 pairs."""
    code, stdout, stderr, raw = _run(
        "train",
        "--data",
        FIXTURE,
        "--out",
        "model",
        "--epochs",
        "1",
        "--max-pairs",
        "200",
        "--embedding-dim",
        "8",
        "--units",
        "16",
        "--max-length",
        "16",
        cwd=workdir,
    )
    assert code == 0, raw[-3000:]
    return workdir / "model", stdout


@pytest.fixture(scope="module")
def runs(trained, workdir):
    """translate, evaluate and every error path, run concurrently."""
    model = trained[0]
    bad = workdir / "bad.tsv"
    bad.write_text("Go.\tVe.\nHi.\tHola.\nno tab on this line\n", "utf-8")
    (workdir / "empty").mkdir()
    (workdir / "empty.tsv").write_text("\n  \n", "utf-8")
    latin1 = "Hi.\tHola.\nWho?\t¿Quién?\n".encode("latin-1")
    (workdir / "latin1.tsv").write_bytes(latin1)
    corrupted = workdir / "corrupted"
    shutil.copytree(model, corrupted)
    (corrupted / "model.keras").write_bytes(b"not a zip archive")
    commands = {
        "translate": (
            "translate",
            "--model",
            model,
            "--method",
            "beam",
            "--beam-width",
            "3",
            "--plot",
            "attention.png",
            "¿Dónde está Tom?",
            "Hola.",
            "",
        ),
        "evaluate": (
            "evaluate",
            "--model",
            model,
            "--data",
            FIXTURE,
            "--max-pairs",
            "200",
            "--split",
            "test",
            "--json",
            "scores.json",
        ),
        "missing_file": ("train", "--data", "missing.tsv", "--out", "x"),
        "malformed_file": ("evaluate", "--model", model, "--data", bad),
        "unknown_choice": (
            "train",
            "--data",
            FIXTURE,
            "--out",
            "x",
            "--cell",
            "rnn",
        ),
        "no_model": ("translate", "--model", "empty", "Hola."),
        "model_is_a_file": (
            "translate",
            "--model",
            model / "model.keras",
            "Hola.",
        ),
        "empty_file": ("train", "--data", "empty.tsv", "--out", "x"),
        "latin1_file": ("train", "--data", "latin1.tsv", "--out", "x"),
        "corrupted_model": ("translate", "--model", corrupted, "Hola."),
        "nonexistent_model": ("translate", "--model", "/nonexistent", "x"),
        "train_over_a_model": (
            "train",
            "--data",
            FIXTURE,
            "--out",
            model,
            "--max-pairs",
            "50",
        ),
    }
    started = {
        name: _start(*args, cwd=workdir) for name, args in commands.items()
    }
    return {name: _finish(process) for name, process in started.items()}


def test_train(trained):
    model, stdout = trained
    assert {"model.keras", "translator.json", "history.csv"} <= {
        p.name for p in model.iterdir()
    }
    assert "Validation BLEU" in stdout
    assert "val_loss" in stdout  # Keras progress output


def test_translate_prints_one_line_per_sentence_and_plots(runs, workdir):
    code, stdout, stderr, raw = runs["translate"]
    assert code == 0, raw[-3000:]
    lines = stdout.split("\n")
    assert len(lines) == 4 and lines[-1] == ""  # 3 translations + newline
    assert lines[2] == ""  # the empty sentence
    png = workdir / "attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_prints_and_writes_json(runs, workdir):
    code, stdout, stderr, raw = runs["evaluate"]
    assert code == 0, raw[-3000:]
    assert "BLEU" in stdout and "exact match" in stdout
    scores = json.loads((workdir / "scores.json").read_text())
    assert 0 <= scores["bleu"] <= 100 and 0 <= scores["exact_match"] <= 100
    assert scores["split"] == "test" and scores["method"] == "greedy"
    assert f"{scores['bleu']:.2f}" in stdout


@pytest.mark.parametrize(
    "name, status, message",
    [
        ("missing_file", 1, r"not found.*'missing\.tsv'"),
        ("malformed_file", 1, r"bad\.tsv, line 3: found 1 tab-separated"),
        ("unknown_choice", 2, r"--cell: invalid choice: 'rnn'"),
        ("no_model", 1, r"No translator\.json in 'empty'"),
        ("corrupted_model", 1, r"model file '.*corrupted.model\.keras'.*zip"),
        ("model_is_a_file", 1, r"model\.keras' is a file, not a translator"),
        ("empty_file", 1, r"empty\.tsv: no sentence pairs found"),
        ("latin1_file", 1, r"line 2: invalid UTF-8 .*iconv"),
        ("nonexistent_model", 1, r"not found: '/nonexistent'"),
        ("train_over_a_model", 1, r"holds a trained model.*--overwrite"),
    ],
)
def test_errors_are_one_line_without_traceback(runs, name, status, message):
    code, stdout, stderr, raw = runs[name]
    assert code == status
    assert "Traceback" not in raw
    assert len(stderr) == 1, raw
    assert stderr[0].startswith("keras-nmt")
    assert re.search(message, stderr[0]), stderr[0]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "translate", "evaluate", "export", "demo"):
        assert command in out


def test_translate_help_lists_the_decoding_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["translate", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--beam-width",
        "--plot",
        "--top-k",
        "--top-p",
        "--coverage-penalty",
        "--n-best",
        "--replace-unknown",
        "--ensemble",
    ):
        assert option in out


def test_train_help_lists_the_distribution_and_fault_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--strategy {default,mirrored}",
        "--cpu-devices",
        "--backup-every",
        "--mixed-precision",
        "--resume",
    ):
        assert option in out


_IMPORTS = """
import json, sys
from keras_nmt.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        (["train", "--help"], 0),
        (["translate", "--help"], 0),
        (["train", "--data", "x", "--out", "y", "--learning-rate", "inf"], 2),
        (["translate", "--model", "m", "--beam-width", "0", "x"], 2),
        (["nope"], 2),
    ],
)
def test_help_version_and_usage_errors_import_no_framework(args, code):
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report == {"code": code, "heavy": []}, result.stderr
    if code == 2:  # a usage error: one line, and the report
        assert len(result.stderr.strip().splitlines()) == 2, result.stderr


def test_version(capsys):
    from keras_nmt import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out == f"keras-nmt {__version__}\n"


def test_the_cli_and_the_function_train_with_the_same_settings():
    import dataclasses

    from keras_nmt.cli.parser import build_parser
    from keras_nmt.cli.parser import options_from
    from keras_nmt.training.settings import TrainingSettings

    args = build_parser().parse_args(["train", "--data", "x", "--out", "y"])
    assert options_from(args, TrainingSettings) == TrainingSettings()
    # Every setting is a flag, with the dataclass's default.
    for field in dataclasses.fields(TrainingSettings):
        assert getattr(args, field.name) == field.default, field.name
    args = build_parser().parse_args(
        [
            "train",
            "--data",
            "x",
            "--out",
            "y",
            "--units",
            "64",
            "--no-mixed-precision",
            "--cell",
            "gru",
            "--learning-rate",
            "2e-3",
        ]
    )
    assert options_from(args, TrainingSettings) == TrainingSettings(
        units=64, cell="gru", learning_rate=2e-3
    )
