"""Training on several hosts with JAX, proved on one: two processes on
localhost form a JAX cluster (`keras.distribution.initialize`, one CPU
device each, collectives over Gloo) and train with `train_translator` under
`keras.distribution.DataParallel()`, exactly as two machines would.

What must hold, and why it can:

- The two processes agree bit for bit (epoch logs, final weights): the
  weights are one replicated array over both devices, and every metric is
  reduced over the global batch.
- They agree with one process on one device trained on the same data with
  the same seed, to float tolerance: `EpochData` fixes the order of the
  batches by the seed and the epoch alone, and each process is fed its
  half of every global batch (`distribute.process_rows`), so each step
  sees the batch the single process sees. A batch whose rows do not split
  evenly over the devices (here the last training batch, 7 rows, and the
  validation batch, 15) gets padding rows that the loss and accuracy
  ignore, so the gradients are those of the single process (dropout too:
  JAX's random bits are counter-based, so a row gets the same mask in a
  padded batch). One number
  differs by design: the epoch's mean training `loss`, in which Keras
  weights each batch by its number of rows, padding rows included; it is
  compared loosely (the validation set is one batch, so `val_loss` is
  exact).
- Only process 0 writes: each process is given its own `out_dir` here, so
  that what each writes can be told apart. Process 0's holds the whole run;
  process 1's is never created, and the temporary directory process 1
  writes its copies into (`TMPDIR`) is left empty. On a real cluster every
  host passes the same `out_dir` on a shared file system (see
  docs/multihost.md).
- Resuming works across hosts: both processes then pass process 0's
  directory, as on a shared file system, and continue the finished run by
  one epoch (`resume=True`, more `epochs`); process 1 reads the backup
  there and writes nothing, and both end with the same weights.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
# Seconds for each group of processes to finish (the whole test takes
# about a minute of two idle cores).
TIMEOUT = 420
# One CPU device per process; XLA compiles without its costly optimisations
# (the same in every process): compiling is most of the run time here.
XLA_FLAGS = (
    "--xla_force_host_platform_device_count=1 "
    "--xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true"
)
# What the epochs' logs must agree on (not wall-clock times).
LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy", "val_bleu")
RUN_FILES = {
    ".keras-nmt-run",
    "history.csv",
    "model.keras",
    "training.json",
    "translator.json",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(name, arguments, tmp_path):
    """Start a worker in its own process group, its output in files (a
    full pipe would block it)."""
    scratch = tmp_path / f"tmp-{name}"
    scratch.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": XLA_FLAGS,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TMPDIR": str(scratch),
    }
    out = open(tmp_path / f"{name}.out", "a+")  # noqa: SIM115
    err = open(tmp_path / f"{name}.err", "a+")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, arguments)],
        stdout=out,
        stderr=err,
        env=env,
        start_new_session=True,
    )
    return {"name": name, "process": process, "out": out, "err": err}


def _kill(worker):
    process = worker["process"]
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(worker) -> str:
    worker["err"].seek(0)
    return f"--- {worker['name']} stderr ---\n{worker['err'].read()[-3000:]}"


def _wait_all(workers) -> list[dict]:
    """Wait for every worker; if one fails or time runs out, kill them all
    (a survivor would wait for its peer forever) and fail with their
    stderr. No worker outlives this call."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(w["process"].poll() is None for w in workers):
            failed = any(w["process"].poll() for w in workers)
            if failed or time.monotonic() > deadline:
                why = "failed" if failed else f"ran past {TIMEOUT} s"
                for worker in workers:
                    _kill(worker)
                pytest.fail(f"{why}:\n" + "\n".join(map(_tail, workers)))
            time.sleep(0.2)
        if any(w["process"].returncode for w in workers):
            pytest.fail("failed:\n" + "\n".join(map(_tail, workers)))
        results = []
        for worker in workers:
            worker["out"].seek(0)
            lines = worker["out"].read().strip().splitlines()
            assert lines, _tail(worker)
            results.append(json.loads(lines[-1]))  # Gloo prints lines too
        return results
    finally:
        for worker in workers:
            _kill(worker)
            worker["out"].close()
            worker["err"].close()


def _assert_same_logs(a, b, rtol, loss_rtol=None):
    """The epochs' logs agree; the training `loss` to `loss_rtol` (see the
    module docstring)."""
    assert len(a["epochs"]) == len(b["epochs"])
    for x, y in zip(a["epochs"], b["epochs"], strict=True):
        assert {"loss", "val_loss"} <= x.keys()
        for key in LOGGED:
            assert (key in x) == (key in y), key
            if key in x:
                tolerance = loss_rtol if key == "loss" and loss_rtol else rtol
                np.testing.assert_allclose(x[key], y[key], rtol=tolerance)


def _assert_same_weights(a, b, **tolerance):
    assert len(a["weights"]) == len(b["weights"])
    for x, y in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_allclose(x, y, **tolerance)


def _two_processes(tmp_path, out_dirs, *options):
    address = f"127.0.0.1:{_free_port()}"
    return [
        _start(f"process-{i}", [out, address, 2, i, *options], tmp_path)
        for i, out in enumerate(out_dirs)
    ]


@pytest.mark.slow
def test_two_jax_processes_train_as_one_and_only_process_0_writes(tmp_path):
    pytest.importorskip("jax")
    out = [tmp_path / "out-0", tmp_path / "out-1", tmp_path / "out-single"]
    workers = _two_processes(tmp_path, out[:2])
    workers.append(_start("single", [out[2]], tmp_path))
    first, second, single = _wait_all(workers)

    # (a) Two processes, one cluster, one training.
    assert (first["process"], second["process"]) == (0, 1)
    assert first["processes"] == second["processes"] == 2
    assert first["devices"] == 2
    _assert_same_logs(first, second, rtol=0)
    _assert_same_weights(first, second, rtol=0, atol=0)

    # (b) The same training as one process on one device.
    assert single["processes"] == single["devices"] == 1
    assert len(first["epochs"]) == 2
    _assert_same_logs(first, single, rtol=1e-4, loss_rtol=1e-2)
    _assert_same_weights(first, single, rtol=1e-3, atol=1e-5)

    # (c) Only process 0 writes.
    written = {p.name for p in out[0].iterdir()}
    assert RUN_FILES <= written
    assert written == {p.name for p in out[2].iterdir()}
    assert not out[1].exists()
    assert not any((tmp_path / "tmp-process-1").iterdir())

    # Resuming: both processes continue the run in process 0's directory.
    history = (out[0] / "history.csv").read_text().splitlines()
    workers = _two_processes(tmp_path, [out[0], out[0]], "--resume", 3)
    first, second = _wait_all(workers)
    assert len(first["epochs"]) == 1
    _assert_same_logs(first, second, rtol=0)
    _assert_same_weights(first, second, rtol=0, atol=0)
    resumed = (out[0] / "history.csv").read_text().splitlines()
    assert resumed[:3] == history and len(resumed) == 4
    assert not out[1].exists()
    assert not any((tmp_path / "tmp-process-1").iterdir())
