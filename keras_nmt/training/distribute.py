"""Distribution and precision helpers of a training run: who writes, how
many workers, which mixed-precision policy, and `fit` with a clear error
for a known Keras limitation."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


def mixed_precision_policy() -> str:
    """`"mixed_float16"` where a GPU trains, `"mixed_bfloat16"` otherwise.

    float16 runs on the tensor cores of every recent NVIDIA GPU (Keras adds
    loss scaling); bfloat16 has float32's range (no loss scaling) and is the
    format CPUs (AVX512-BF16, AMX) and TPUs compute in.
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        has_gpu = bool(tf.config.list_logical_devices("GPU"))
    elif backend == "jax":
        import jax

        has_gpu = jax.default_backend() == "gpu"
    elif backend == "torch":
        import torch

        has_gpu = torch.cuda.is_available()
    else:
        has_gpu = False
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: on a TensorFlow cluster
    only the chief (worker 0 without a chief); on JAX, process 0 (several
    processes share a `keras.distribution` across hosts); else always."""
    if strategy is not None:
        return bool(strategy.extended.should_checkpoint)
    if keras.config.backend() == "jax":
        import jax

        return jax.process_index() == 0
    return True


def workers(strategy) -> int:
    """The number of worker machines of a `MultiWorkerMirroredStrategy`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def fit(model, strategy, **kwargs):
    """`model.fit(**kwargs)`, with a clear error for a known Keras bug; with
    a JAX `DataParallel` over several devices, each process is fed its rows
    of every batch (see `process_rows`)."""
    distribution = _data_parallel()
    if distribution is not None:
        for key in ("x", "validation_data"):
            if kwargs.get(key) is not None:
                kwargs[key] = process_rows(kwargs[key], distribution)
    try:
        with _keras_sharding_off(distribution):
            model.fit(**kwargs)
    except ValueError as error:
        if workers(strategy) > 1 and "PerReplica" in str(error):
            raise ValueError(
                "Keras' model.fit failed under MultiWorkerMirroredStrategy "
                f"with {workers(strategy)} workers: Keras 3 (3.15 at least) "
                "cannot fit across several workers with the TensorFlow "
                "backend (keras-team/keras#20585). Use MirroredStrategy on "
                "one machine, or the JAX backend with keras.distribution "
                "across machines. The error: "
                f"{str(error).splitlines()[0]}"
            ) from error
        raise


def check_strategy(strategy) -> None:
    """Raise `ValueError` unless `strategy` is `None` or a
    `tf.distribute.Strategy` on the TensorFlow backend."""
    if strategy is None:
        return
    if keras.config.backend() != "tensorflow":
        raise ValueError(
            "train_translator: `strategy` is a tf.distribute strategy "
            "and needs the TensorFlow backend; the Keras backend is "
            f"{keras.config.backend()!r}. Run with "
            "KERAS_BACKEND=tensorflow, or on JAX set "
            "keras.distribution.set_distribution("
            "keras.distribution.DataParallel()) and pass strategy=None."
        )
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(
            "train_translator: `strategy` must be a "
            "tf.distribute.Strategy (e.g. tf.distribute."
            f"MirroredStrategy()) or None; received "
            f"{type(strategy).__name__}."
        )


def _data_parallel():
    """The `keras.distribution.DataParallel` in effect on JAX when it spans
    several devices, else `None`."""
    if keras.config.backend() != "jax":
        return None
    distribution = keras.distribution.distribution()
    if not isinstance(distribution, keras.distribution.DataParallel):
        return None
    return distribution if distribution.device_mesh.devices.size > 1 else None


@contextlib.contextmanager
def _keras_sharding_off(distribution):
    """Turn off Keras' sharding of datasets over processes (the datasets
    hold this process's rows already)."""
    if distribution is None:
        yield
        return
    auto_shard = distribution.auto_shard_dataset
    distribution.auto_shard_dataset = False
    try:
        yield
    finally:
        distribution.auto_shard_dataset = auto_shard


def process_rows(dataset: tf.data.Dataset, distribution) -> tf.data.Dataset:
    """This process's rows of every batch of `dataset` under a JAX
    `DataParallel` `distribution`: each batch is padded with padding rows
    (token 0) to a multiple of the number of devices, and process `p` of
    `P` keeps the `p`-th of `P` equal blocks of rows (one process: all).

    JAX splits a batch evenly over the devices, and Keras' own sharding
    over processes (`auto_shard_dataset`) needs batches of one known size;
    ours vary (length buckets, the smaller last batch of each). The loss
    and accuracy ignore padding tokens, so a padded batch has the gradient
    of the batch one device would train on, and every process takes the
    same steps. (Keras weights each batch in the epoch's mean `loss` by its
    number of rows, padding rows included.)
    """
    import jax

    devices = distribution.device_mesh.devices.size
    processes, index = jax.process_count(), jax.process_index()

    def rows(x):
        count = tf.shape(x)[0]
        padded = (count + devices - 1) // devices * devices
        share = padded // processes
        paddings = tf.concat(
            [[[0, padded - count]], tf.zeros([tf.rank(x) - 1, 2], tf.int32)],
            axis=0,
        )
        return tf.pad(x, paddings)[index * share : (index + 1) * share]

    return dataset.map(lambda *batch: tf.nest.map_structure(rows, batch))
