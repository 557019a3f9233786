"""Checkpoint averaging: the mean of the weights of a run's last epochs.

Averaging the parameters of the last few checkpoints (Vaswani et al. 2017;
Junczys-Dowmunt et al. 2016 for RNN models) smooths out the noise of the
final updates; Marian, Sockeye, fairseq and OpenNMT-py ship it as a tool.
A run keeps its last epochs' weights with `keep_checkpoints=N`
(`keras-nmt train --keep-checkpoints N`).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from keras_nmt.training.run_directory import CHECKPOINTS_DIR
from keras_nmt.training.run_directory import CHECKPOINTS_GLOB
from keras_nmt.translator import Translator


def average_checkpoints(run_dir: str | os.PathLike, last: int) -> Translator:
    """The translator of `run_dir` with the mean weights of its last
    `last` epoch checkpoints.

    Every floating-point weight is the arithmetic mean over the checkpoints
    (integer state such as dropout seeds keeps the last checkpoint's value);
    the vocabularies and decoding settings are the run's. Save the result
    with `Translator.save` (to a new directory: the run's best model stays
    as it is).

    Args:
        run_dir: a directory written by `keras-nmt train` with
            `--keep-checkpoints N` (its `checkpoints/epoch-*.weights.h5`).
        last: how many of the last checkpoints to average (>= 1).

    Returns:
        A `Translator` holding the averaged weights.

    Raises:
        ValueError: if `last` < 1 or the run kept fewer checkpoints.
        FileNotFoundError / TranslatorLoadError: if `run_dir` holds no
            loadable translator.
    """
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"Invalid last={last!r}; expected an integer >= 1.")
    run_dir = pathlib.Path(run_dir)
    translator = Translator.load(run_dir)
    paths = sorted((run_dir / CHECKPOINTS_DIR).glob(CHECKPOINTS_GLOB))
    if len(paths) < last:
        raise ValueError(
            f"Cannot average the last {last} checkpoints of '{run_dir}': it "
            f"kept {len(paths)} (in {CHECKPOINTS_DIR}/). Train with "
            f"--keep-checkpoints {last} (or more), or average fewer."
        )
    model = translator.model
    total = None
    for path in paths[-last:]:
        model.load_weights(path)
        weights = model.get_weights()
        if total is None:
            total = [np.zeros(w.shape, "float64") for w in weights]
        for sum_, weight in zip(total, weights, strict=True):
            sum_ += weight
    # Integer state (the dropout seed generators) keeps the last
    # checkpoint's value; every float weight becomes the mean.
    model.set_weights(
        [
            (sum_ / last).astype(weight.dtype)
            if np.issubdtype(weight.dtype, np.floating)
            else weight
            for sum_, weight in zip(total, model.get_weights(), strict=True)
        ]
    )
    return translator
