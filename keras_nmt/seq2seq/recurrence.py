"""LSTM / GRU steps on the weights of Keras' own cells, split in two halves.

`keras.layers.LSTMCell` and `GRUCell` multiply the input by the kernel at
every step. A decoder whose input at step t is known in advance (the target
embedding under teacher forcing) can do that product for all steps in one
large matmul and leave only the recurrent half in the loop. These functions
do the same arithmetic as the Keras cells (LSTM gates i, f, c, o; GRU with
`reset_after=True`, gates z, r, h), reading the cells' variables, so the
weights stay standard Keras weights and the cells still serialise as usual.

The weights are cast to the cell's compute dtype: inside a layer's `call`
Keras does that itself under a mixed precision policy, but `step` also runs
outside any `call` (one-token decoding), where the variables read as float32.
"""

from keras import ops


def state_size(cell_kind):
    """Number of state tensors of a cell: LSTM (h, c), GRU (h,)."""
    return 2 if cell_kind == "lstm" else 1


def partial_projection(cell, inputs, start):
    """`inputs @ kernel[start:start + dim]`: the gates' share of a slice of
    the input features (no bias), for inputs known only inside the loop."""
    kernel = cell.kernel[start : start + inputs.shape[-1]]
    return ops.matmul(inputs, _cast(kernel, cell))


def step(cell, cell_kind, gates_x, states):
    """One recurrent step from precomputed input gates.

    Args:
        cell: a built `keras.layers.LSTMCell` or `GRUCell`.
        cell_kind: `"lstm"` or `"gru"`.
        gates_x: `(B, 4 * units)` (LSTM) or `(B, 3 * units)` (GRU), the
            input's share of the gates, `x @ kernel + input_bias`.
        states: tuple of the cell's states.

    Returns:
        `(output, new_states)` with `output` the new hidden state `h`.
    """
    units = cell.units
    h_prev = states[0]
    if cell_kind == "lstm":
        z = gates_x + ops.matmul(h_prev, _cast(cell.recurrent_kernel, cell))
        i = cell.recurrent_activation(z[:, :units])
        f = cell.recurrent_activation(z[:, units : 2 * units])
        c = f * states[1] + i * cell.activation(z[:, 2 * units : 3 * units])
        o = cell.recurrent_activation(z[:, 3 * units :])
        h = o * cell.activation(c)
        return h, (h, c)
    recurrent = ops.matmul(h_prev, _cast(cell.recurrent_kernel, cell))
    if cell.use_bias:
        recurrent = recurrent + _cast(cell.bias[1], cell)
    z = cell.recurrent_activation(gates_x[:, :units] + recurrent[:, :units])
    r = cell.recurrent_activation(
        gates_x[:, units : 2 * units] + recurrent[:, units : 2 * units]
    )
    hh = cell.activation(
        gates_x[:, 2 * units :] + r * recurrent[:, 2 * units :]
    )
    h = z * h_prev + (1.0 - z) * hh
    return h, (h,)


def input_bias(cell):
    """The bias added to the input's share of the gates."""
    # GRUCell(reset_after=True) keeps (input_bias, recurrent_bias) stacked.
    bias = cell.bias[0] if len(cell.bias.shape) == 2 else cell.bias
    return _cast(bias, cell)


def _cast(weight, cell):
    return ops.cast(weight, cell.compute_dtype)
