"""The split LSTM/GRU steps equal Keras' own cells."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_nmt.seq2seq import recurrence


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_step_matches_keras_cell(kind, rng):
    units, dim, batch = 6, 5, 3
    cell = (keras.layers.LSTMCell if kind == "lstm" else keras.layers.GRUCell)(
        units, bias_initializer="random_normal"
    )
    cell.build((None, dim))
    x = ops.convert_to_tensor(rng.normal(size=(batch, dim)), "float32")
    states = tuple(
        ops.convert_to_tensor(rng.normal(size=(batch, units)), "float32")
        for _ in range(recurrence.state_size(kind))
    )
    expected_h, expected_states = cell(x, list(states))

    # The input's share of the gates, in two slices as the decoder does it.
    gates = ops.matmul(x[:, :2], cell.kernel[:2]) + recurrence.input_bias(cell)
    gates = gates + recurrence.partial_projection(cell, x[:, 2:], 2)
    h, new_states = recurrence.step(cell, kind, gates, states)

    np.testing.assert_allclose(
        ops.convert_to_numpy(h), ops.convert_to_numpy(expected_h), atol=1e-6
    )
    assert len(new_states) == len(expected_states)
    for got, want in zip(new_states, expected_states, strict=True):
        np.testing.assert_allclose(
            ops.convert_to_numpy(got), ops.convert_to_numpy(want), atol=1e-6
        )
