"""One process of a (localhost) JAX training run, for multihost_test.py.

    python multihost_worker.py OUT_DIR                      # one process
    python multihost_worker.py OUT_DIR ADDRESS PROCESSES ID # one of several
    python multihost_worker.py ... --resume EPOCHS

Trains with `train_translator` into OUT_DIR (`--resume EPOCHS`: continues
the run there up to EPOCHS epochs); with ADDRESS (the coordinator,
`host:port`), first joins the cluster with `keras.distribution.initialize`
and trains under `keras.distribution.DataParallel()`, as a host of a real
cluster would. Prints one JSON line: the process index and count, the logs
of every epoch and the final weights. Runs in a fresh process: JAX's
devices are fixed when it starts (`JAX_PLATFORMS`, `XLA_FLAGS` come from the
test).
"""

import json
import os
import pathlib
import sys

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402

FIXTURE = pathlib.Path(__file__).parents[1] / "data" / "spa-eng-fixture.tsv"
# Tiny, and short sentences (max_length 5): few distinct batch shapes, so
# few XLA compilations. 55 training pairs in batches of 16: the last batch
# of 7 rows is padded to 8 for two devices; 15 validation pairs: one
# batch, padded to 16.
TRAIN, VALIDATION = slice(0, 55), slice(55, 70)
SETTINGS = {
    "embedding_dim": 8,
    "units": 8,
    "batch_size": 16,
    "max_length": 5,
    "learning_rate": 1e-2,
    "epochs": 2,
    "seed": 3,
    "backup_every": 2,  # back up mid-epoch too: the writes only process 0 does
}


class _Logs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({k: float(v) for k, v in (logs or {}).items()})


def main(out_dir, address=None, processes=1, process_id=0, resume=None):
    if address is not None:
        keras.distribution.initialize(
            job_addresses=address,
            num_processes=processes,
            process_id=process_id,
        )
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    import jax
    import numpy as np

    from keras_nmt import text
    from keras_nmt.training import train_translator

    pairs = text.read_pairs(FIXTURE, reverse=True)
    sources, targets = list(pairs.sources), list(pairs.targets)
    logs = _Logs()
    translator = train_translator(
        (sources[TRAIN], targets[TRAIN]),
        (sources[VALIDATION], targets[VALIDATION]),
        out_dir,
        verbose=0,
        callbacks=[logs],
        **{**SETTINGS, "epochs": resume or SETTINGS["epochs"]},
        resume=resume is not None,
    )
    weights = translator.model.get_weights()
    result = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "epochs": logs.epochs,
        "weights": [np.asarray(w, "float64").ravel().tolist() for w in weights],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    resume = None
    if "--resume" in arguments:
        at = arguments.index("--resume")
        resume = int(arguments[at + 1])
        del arguments[at : at + 2]
    if len(arguments) == 1:
        main(arguments[0], resume=resume)
    else:
        out, address, processes, process_id = arguments
        main(out, address, int(processes), int(process_id), resume)
