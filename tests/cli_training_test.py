"""`keras-nmt train` on two devices and after a kill, end to end.

Four subprocesses on the same data with the same seed: one device (the
reference), `--strategy mirrored` on two logical CPUs, and a run killed with
SIGKILL in the middle of an epoch and then resumed with `--resume`. The data
is a slice of the fixture whose target sentences all have 6 words, so both
halves of every batch hold the same number of target tokens: Keras averages
the per-replica means of the masked loss, which then equals the mean over
the whole batch, and the two-device run differs from the one-device run only
by floating-point summation order. A resumed run restores the weights, the
optimizer, the position in the data, the dropout seeds and the running
metrics, so it reproduces the uninterrupted run.
"""

import csv
import json
import os
import pathlib
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt import cli
from keras_nmt import text
from keras_nmt.files import TEMP_PREFIX
from keras_nmt.translator import Translator
from tests.cli_test import _finish
from tests.cli_test import _start

FIXTURE = pathlib.Path(__file__).parent / "data" / "spa-eng-fixture.tsv"
EPOCHS = 3
ARGS = (
    "--epochs",
    str(EPOCHS),
    "--embedding-dim",
    "8",
    "--units",
    "16",
    "--max-length",
    "16",
    "--batch-size",
    "10",
    "--learning-rate",
    "0.01",
    "--backup-every",
    "2",
    # The slice has equal word counts (see _write_equal_length_slice), and
    # replicas draw their own dropout masks: word vocabularies, no dropout.
    "--tokenizer",
    "word",
    "--dropout",
    "0",
    "--verbose",
    "2",
)
# Summation order is the only difference between the runs: float32 rounding
# (~1e-7 relative per operation) accumulated over 15 steps stays far below.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5


def _write_equal_length_slice(path):
    """The fixture's pairs whose target has 6 words (source: at most 6), with
    an even number of train and validation pairs in the split that `train`
    makes (`split_pairs`, seed 0): every batch of 10, and the last smaller
    one, splits into two halves with equal numbers of target tokens."""
    pairs = text.read_pairs(FIXTURE, reverse=True)
    lines = [
        line
        for line in FIXTURE.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    source_words, target_words = (
        [len(s.split()) for s in text.standardize(side).numpy()]
        for side in (pairs.sources, pairs.targets)
    )
    chosen = [
        i
        for i in range(len(pairs))
        if target_words[i] == 6 and source_words[i] <= 6
    ]
    kept = []
    for part in text.split_pairs(pairs.take(chosen), seed=0):
        members = set(zip(part.sources, part.targets, strict=True))
        indices = [
            i for i in chosen if (pairs.sources[i], pairs.targets[i]) in members
        ]
        kept += indices[: len(indices) - len(indices) % 2]
    path.write_text(
        "".join(lines[i] + "\n" for i in sorted(kept)), encoding="utf-8"
    )
    train, validation, _ = text.split_pairs(
        text.read_pairs(path, reverse=True), seed=0
    )
    assert len(train) % 2 == 0 and len(validation) % 2 == 0
    assert len(train) >= 40 and len(validation) >= 2
    return path


def _read_state(out_dir):
    try:
        return json.loads((out_dir / "backup" / "state.json").read_text())
    except (OSError, ValueError):
        return None


def _kill_mid_epoch(process, out_dir, timeout=600):
    """SIGKILL `process` as soon as it has backed up a step in the middle of
    its second epoch; return the backup state and history rows it left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _read_state(out_dir)
        if state and state["epoch"] >= 1 and state["step"] > 0:
            os.kill(process.pid, signal.SIGKILL)
            break
        if process.poll() is not None:
            pytest.fail(
                "the run ended before a mid-epoch backup of its second "
                f"epoch:\n{process.stderr.read()[-3000:]}"
            )
        time.sleep(0.02)
    else:
        pytest.fail("no mid-epoch backup within the timeout")
    process.wait(timeout=60)
    return _read_state(out_dir), _history(out_dir)


def _history(out_dir):
    path = out_dir / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _weights(out_dir):
    return Translator.load(out_dir).model.get_weights()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli-training")
    data = _write_equal_length_slice(workdir / "pairs.tsv")
    common = ("train", "--data", data, *ARGS)
    started = {
        "single": _start(*common, "--out", "single", cwd=workdir),
        "mirrored": _start(
            *common,
            "--out",
            "mirrored",
            "--strategy",
            "mirrored",
            "--cpu-devices",
            "2",
            cwd=workdir,
        ),
        "killed": _start(*common, "--out", "killed", cwd=workdir),
    }
    at_kill = _kill_mid_epoch(started["killed"], workdir / "killed")
    started["resumed"] = _start(
        *common, "--out", "killed", "--resume", cwd=workdir
    )
    finished = {name: _finish(p) for name, p in started.items()}
    return workdir, finished, at_kill


def _assert_same_training(out_dir, reference):
    rows, expected = _history(out_dir), _history(reference)
    assert [r["epoch"] for r in rows] == [str(e) for e in range(EPOCHS)]
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(
            [float(r[key]) for r in rows],
            [float(r[key]) for r in expected],
            rtol=LOSS_RTOL,
            err_msg=key,
        )
    for a, b in zip(_weights(out_dir), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=WEIGHT_ATOL)
    done = json.loads((out_dir / "training.json").read_text())
    expected_done = json.loads((reference / "training.json").read_text())
    assert done["completed_epochs"] == expected_done["completed_epochs"]
    assert done["steps"] == expected_done["steps"]


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_device(runs):
    workdir, finished, _ = runs
    for name in ("single", "mirrored"):
        code, stdout, stderr, raw = finished[name]
        assert code == 0, raw[-3000:]
    assert "MirroredStrategy: 2 replica(s)" in finished["mirrored"][1]
    _assert_same_training(workdir / "mirrored", workdir / "single")


@pytest.mark.slow
def test_killed_run_resumes_as_if_it_had_not_stopped(runs):
    workdir, finished, (state, history) = runs
    assert finished["killed"][0] == -signal.SIGKILL
    # Killed in the middle of an epoch: its rows are the finished epochs.
    assert state["step"] > 0
    assert [int(r["epoch"]) for r in history] == list(range(state["epoch"]))
    code, stdout, stderr, raw = finished["resumed"]
    assert code == 0, raw[-3000:]
    assert f"at epoch {state['epoch'] + 1}/{EPOCHS}" in stdout
    out_dir = workdir / "killed"
    # Same number of epochs and optimizer steps, same numbers.
    _assert_same_training(out_dir, workdir / "single")
    steps = json.loads((out_dir / "training.json").read_text())["steps"]
    assert steps == EPOCHS * state["steps_per_epoch"]
    names = {p.name for p in out_dir.iterdir()}
    final = json.loads((out_dir / "backup" / "state.json").read_text())
    assert (final["epoch"], final["step"]) == (EPOCHS, 0)  # continuable
    assert not [n for n in names if n.startswith(TEMP_PREFIX)]


def test_cpu_devices_after_tensorflow_started_is_a_one_line_error(
    tmp_path, capsys
):
    tf.constant(0)  # TensorFlow's runtime is initialised in this process
    status = cli.main(
        [
            "train",
            "--data",
            str(FIXTURE),
            "--out",
            str(tmp_path / "x"),
            "--cpu-devices",
            "3",
        ]
    )
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--cpu-devices 3: TensorFlow has already initialised" in err[0]
    assert not (tmp_path / "x").exists()


def _wait_for(condition, process, what, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def test_one_run_per_directory_and_ctrl_c_says_what_is_true(tmp_path):
    data = _write_equal_length_slice(tmp_path / "pairs.tsv")
    common = ("train", "--data", data, *ARGS, "--out", "run")
    first = _start(*common, "--epochs", "500", cwd=tmp_path)
    _wait_for(lambda: _read_state(tmp_path / "run"), first, "its first backup")
    code, stdout, stderr, raw = _finish(_start(*common, cwd=tmp_path))
    assert code == 1 and len(stderr) == 1, raw
    assert "'run' is in use by another `keras-nmt train` run" in stderr[0]
    first.send_signal(signal.SIGINT)
    code, stdout, stderr, raw = _finish(first)
    assert code == 130, raw[-3000:]
    assert stderr[-1] == (
        "keras-nmt train: interrupted; continue with: keras-nmt train ... "
        "--out run --resume"
    )
    assert _read_state(tmp_path / "run")  # the backup it points to


def test_ctrl_c_before_the_first_backup(tmp_path):
    data = _write_equal_length_slice(tmp_path / "pairs.tsv")
    run = _start(
        "train",
        "--data",
        data,
        *ARGS,
        "--out",
        "run",
        "--epochs",
        "500",
        "--backup-every",
        "0",
        cwd=tmp_path,
    )
    # "N pairs from ..." is printed once the data is read, before training.
    first_line = run.stdout.readline()
    assert "pairs from" in first_line
    run.send_signal(signal.SIGINT)
    code, stdout, stderr, raw = _finish(run)
    assert code == 130, raw[-3000:]
    assert stderr[-1].startswith("keras-nmt train: interrupted; it stopped ")
    assert "before its first backup" in stderr[-1]
    code, stdout, stderr, raw = _finish(
        _start(
            "train",
            "--data",
            data,
            *ARGS,
            "--out",
            "run",
            "--resume",
            cwd=tmp_path,
        )
    )
    assert code == 1 and len(stderr) == 1, raw
    assert "Nothing to resume in 'run'" in stderr[0]
