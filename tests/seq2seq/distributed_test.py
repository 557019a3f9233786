"""Training on two devices matches training on one.

Each run is a fresh process (devices are fixed when a backend starts): the
same initial weights (seeded) and the same data in the same order, once on
one CPU device and once split over two (TensorFlow's MirroredStrategy on two
logical CPUs; JAX with Keras' own DataParallel on two host devices). The
gradients of the two halves of a batch are averaged, so the runs agree up to
floating-point summation order.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")


def _run(mode, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(WORKER), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_same_training(single, distributed):
    assert single["replicas"] == 1
    assert distributed["replicas"] == 2
    np.testing.assert_allclose(distributed["loss"], single["loss"], rtol=1e-4)
    assert len(distributed["weights"]) == len(single["weights"])
    for a, b in zip(distributed["weights"], single["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device():
    _assert_same_training(
        _run("single", "tensorflow"), _run("mirrored", "tensorflow")
    )


@pytest.mark.slow
def test_jax_data_parallel_matches_one_device():
    pytest.importorskip("jax")
    _assert_same_training(_run("single", "jax"), _run("data_parallel", "jax"))
