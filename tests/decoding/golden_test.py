"""Default options decode exactly as the code before the new options did.

`golden_defaults.json` holds the outputs of `greedy_search`, `sample` and
`beam_search` recorded with `keras_nmt.decoding` at commit 9637802 (before
coverage penalty, min_length, no_repeat_ngram_size, max_length_ratio,
top_p, n_best and the pad/start ban), on problems whose PAD and start
token have a logit of -1e4, as in a trained model that never predicts
them. Greedy and beam outputs are the same on every backend; sampling
draws from each backend's own random stream.
"""

import json
import pathlib

import keras
import numpy as np
import pytest

from keras_nmt.decoding import beam_search
from keras_nmt.decoding import greedy_search
from keras_nmt.decoding import sample
from tests.decoding import toy

GOLDEN = json.loads(
    (pathlib.Path(__file__).parent / "golden_defaults.json").read_text()
)
GOLDEN_START = 7

CASES = {
    "greedy": (greedy_search, {}),
    "sample": (sample, {"temperature": 0.8, "top_k": 5, "seed": 3}),
    "sample_all": (sample, {"seed": 4}),
    "beam3": (beam_search, {"beam_width": 3, "length_penalty": 0.6}),
    "beam5": (beam_search, {"beam_width": 5}),
}


def golden_problem(seed, batch=4, vocab=8, source_length=5):
    """A random toy problem whose PAD and start token are never likely
    (logit -1e4), as in a trained model: decoding it must give the same
    outputs before and after the options that ban them."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(vocab, vocab)).astype("float32") * 2.0
    table[:, toy.END] -= 1.5
    table[:, toy.PAD] = -1e4
    table[:, GOLDEN_START] = -1e4
    bias = rng.normal(size=(batch, vocab)).astype("float32")
    keys = rng.normal(size=(batch, source_length)).astype("float32")
    lengths = source_length - np.arange(batch) % source_length
    mask = np.arange(source_length)[None, :] < lengths[:, None]
    start = np.full(batch, GOLDEN_START, "int32")
    model = toy.Toy(table)
    constants = {"bias": bias, "keys": keys, "mask": mask}
    return model, (start, model.initial_state(batch), constants)


def _golden(key):
    if key in GOLDEN["shared"]:
        return GOLDEN["shared"][key]
    return GOLDEN["sample"][keras.config.backend()][key]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", sorted(CASES))
def test_defaults_reproduce_the_old_outputs(seed, name):
    strategy, options = CASES[name]
    model, inputs = golden_problem(seed)
    out = toy.run(
        strategy, model.step, *inputs, max_length=9, end_token=1, **options
    )
    expected = _golden(f"{seed}/{name}")
    for field in ("tokens", "lengths"):
        np.testing.assert_array_equal(
            toy.numpy(getattr(out, field)), expected[field], err_msg=field
        )
    for field in ("scores", "log_probs"):
        np.testing.assert_allclose(
            toy.numpy(getattr(out, field)),
            expected[field],
            rtol=1e-6,
            err_msg=field,
        )


@pytest.mark.parametrize("name", ["beam3", "beam5"])
def test_n_best_one_keeps_the_old_best_hypothesis(name):
    strategy, options = CASES[name]
    for seed in range(4):
        model, inputs = golden_problem(seed)
        out = toy.run(
            strategy,
            model.step,
            *inputs,
            max_length=9,
            end_token=1,
            n_best=1,
            **options,
        )
        expected = _golden(f"{seed}/{name}")
        np.testing.assert_array_equal(
            toy.numpy(out.tokens)[:, 0], np.array(expected["tokens"])[:, 0]
        )
        np.testing.assert_allclose(
            toy.numpy(out.scores)[:, 0],
            np.array(expected["scores"])[:, 0],
            rtol=1e-6,
        )
