"""Trains a small seq2seq model on one device or on two, for
distributed_test.py; prints the losses and the final weights as JSON.

    python distributed_worker.py {single,mirrored,data_parallel}

Run in a fresh process: the devices must be configured before the backend
starts (TensorFlow's logical CPUs, JAX's
`--xla_force_host_platform_device_count`).
"""

import json
import os
import sys

mode = sys.argv[1]
if mode == "data_parallel":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nmt.seq2seq import build_seq2seq  # noqa: E402
from keras_nmt.seq2seq import compile_seq2seq  # noqa: E402

BATCH, STEPS = 16, 6


def data():
    rng = np.random.default_rng(0)
    source = rng.integers(1, 30, size=(BATCH * STEPS, 9)).astype("int32")
    source[::3, 6:] = 0
    target = rng.integers(1, 30, size=(BATCH * STEPS, 8)).astype("int32")
    target[::2, 5:] = 0
    return (source, target[:, :-1]), target[:, 1:]


def build():
    keras.utils.set_random_seed(0)
    model = build_seq2seq(
        30, 30, embedding_dim=8, units=16, attention="bahdanau", style="luong"
    )
    # SGD: the update is linear in the gradient, so any difference between
    # one and two devices shows up in the weights unamplified.
    compile_seq2seq(model, optimizer=keras.optimizers.SGD(0.5))
    return model


def main():
    inputs, targets = data()
    if mode == "mirrored":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = build()
        replicas = strategy.num_replicas_in_sync
    elif mode == "data_parallel":
        import jax

        distribution = keras.distribution.DataParallel(devices=jax.devices())
        keras.distribution.set_distribution(distribution)
        model = build()
        replicas = len(jax.devices())
    else:
        model = build()
        replicas = 1
    history = model.fit(
        inputs, targets, batch_size=BATCH, epochs=2, shuffle=False, verbose=0
    )
    weights = [np.asarray(w, "float64") for w in model.get_weights()]
    print(
        json.dumps(
            {
                "replicas": replicas,
                "backend": keras.backend.backend(),
                "loss": history.history["loss"],
                "weights": [w.ravel().tolist() for w in weights],
            }
        )
    )


if __name__ == "__main__":
    main()
