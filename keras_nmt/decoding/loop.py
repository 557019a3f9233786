"""The loop every decoding strategy runs, and the checks they share (private).

A strategy calls `run_loop` with three small functions:

- `init(logits, attention)` builds the carry: the fixed-size output buffers
  (sized from the shapes the step function returned at the first step) and
  the running scores, lengths and `finished` flags;
- `update(carry, index, logits, attention, state)` consumes one step's
  outputs: picks the next tokens, writes them at position `index`, and
  returns `(carry, next_tokens, state)` (beam search reorders the state);
- `done(carry)` says whether every sequence has ended.

The first step runs before `ops.while_loop` (its output shapes size the
buffers); the loop runs the remaining steps, so the step function is traced
twice per compilation and each traced graph contains one step.
"""

import numbers

import keras
from keras import ops
from keras import tree

from keras_nmt.decoding.decoded import Decoded


def fmt(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def same_dim(a, b):
    """Whether two static dims agree (an unknown dim agrees with anything)."""
    if not isinstance(a, int) or not isinstance(b, int):
        return True
    return a == b


def _shape(x):
    return getattr(x, "shape", x)


def _tensor(x):
    return ops.convert_to_tensor(x)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(caller, name, value, minimum):
    """Raises `ValueError` unless `value` is a Python int `>= minimum`."""
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"`{caller}`: `{name}` must be an int >= {minimum}. "
            f"Received: {name}={value!r}."
        )
    return int(value)


def check_token_id(caller, name, value, optional=False):
    """Raises `ValueError` unless `value` is a token id (or `None`)."""
    if value is None and optional:
        return None
    if not _is_int(value) or value < 0:
        expected = "None or an int >= 0" if optional else "an int >= 0"
        raise ValueError(
            f"`{caller}`: `{name}` must be {expected}. "
            f"Received: {name}={value!r}."
        )
    return int(value)


def prepare_inputs(caller, start_tokens, state, constants):
    """Checks the inputs; returns int32 start tokens, state and constants.

    `state` and `constants` become `()` when `None`, and their leaves become
    tensors whose leading axis must be the batch size of `start_tokens`.
    """
    start_tokens = ops.convert_to_tensor(start_tokens)
    if len(start_tokens.shape) != 1:
        raise ValueError(
            f"`{caller}`: `start_tokens` must have rank 1, shape "
            f"(batch_size,): one start token per sequence. Received: shape "
            f"{fmt(start_tokens.shape)}. For one sequence, pass "
            "`start_tokens=[start_id]`."
        )
    if "int" not in keras.backend.standardize_dtype(start_tokens.dtype):
        raise ValueError(
            f"`{caller}`: `start_tokens` must be integer token ids. "
            f"Received: dtype {start_tokens.dtype}."
        )
    start_tokens = ops.cast(start_tokens, "int32")
    batch = start_tokens.shape[0]
    state = () if state is None else tree.map_structure(_tensor, state)
    constants = (
        () if constants is None else tree.map_structure(_tensor, constants)
    )
    for name, structure in (("state", state), ("constants", constants)):
        for leaf in tree.flatten(structure):
            if len(leaf.shape) == 0 or not same_dim(leaf.shape[0], batch):
                raise ValueError(
                    f"`{caller}`: every tensor in `{name}` must have the "
                    f"batch size of `start_tokens` ({batch}) as its leading "
                    f"axis. Received: a tensor of shape {fmt(leaf.shape)}."
                )
    return start_tokens, state, constants


def _check_step_outputs(caller, outputs, tokens, state, token_ids):
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 3:
        received = type(outputs).__name__
        if isinstance(outputs, (tuple, list)):
            received += f" of length {len(outputs)}"
        raise ValueError(
            f"`{caller}`: `step_fn(tokens, state, constants)` must return a "
            f"tuple `(logits, attention, new_state)`. Received: {received}."
        )
    logits, attention, new_state = outputs
    logits = ops.convert_to_tensor(logits)
    attention = ops.convert_to_tensor(attention)
    rows = tokens.shape[0]
    if len(logits.shape) != 2 or not same_dim(logits.shape[0], rows):
        raise ValueError(
            f"`{caller}`: `step_fn` must return logits of shape "
            f"({rows}, vocab_size), one row per token it was given. "
            f"Received: logits of shape {fmt(logits.shape)}."
        )
    if len(attention.shape) < 1 or not same_dim(attention.shape[0], rows):
        raise ValueError(
            f"`{caller}`: `step_fn` must return attention of shape "
            f"({rows}, ...), one row per token it was given (return "
            f"`ops.zeros(({rows}, 0))` for a model without attention). "
            f"Received: attention of shape {fmt(attention.shape)}."
        )
    vocab = logits.shape[1]
    for name, value in token_ids.items():
        if value is not None and isinstance(vocab, int) and value >= vocab:
            raise ValueError(
                f"`{caller}`: `{name}` must be a token id below the vocabulary "
                f"size {vocab} of the logits. Received: {name}={value}."
            )
    try:
        tree.assert_same_structure(state, new_state)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{caller}`: `step_fn` must return `new_state` with the "
            "structure of the `state` it was given. Received: "
            f"{tree.map_structure(_shape, new_state)} for state "
            f"{tree.map_structure(_shape, state)}."
        ) from error
    new_state = tree.map_structure(ops.convert_to_tensor, new_state)
    for old, new in zip(
        tree.flatten(state), tree.flatten(new_state), strict=True
    ):
        same_shape = len(old.shape) == len(new.shape) and all(
            same_dim(a, b) for a, b in zip(old.shape, new.shape, strict=True)
        )
        if not same_shape or old.dtype != new.dtype:
            raise ValueError(
                f"`{caller}`: every tensor of `new_state` returned by "
                "`step_fn` must keep the shape and dtype it had in `state`. "
                f"Received: {fmt(new.shape)} {new.dtype} for "
                f"{fmt(old.shape)} {old.dtype}."
            )
    logits = ops.cast(logits, "float32")
    return logits, ops.cast(attention, "float32"), new_state


def run_loop(
    caller,
    step_fn,
    tokens,
    state,
    constants,
    *,
    max_length,
    init,
    update,
    done,
    token_ids,
):
    """Runs the step function until `max_length` or until `done(carry)`.

    Returns a `Decoded` of the final carry's fields. `token_ids` maps
    argument names to token ids that must be below the vocabulary size
    (checked against the logits).
    """

    def step(tokens, state):
        outputs = step_fn(tokens, state, constants)
        return _check_step_outputs(caller, outputs, tokens, state, token_ids)

    logits, attention, state = step(tokens, state)
    carry = init(logits, attention)
    carry, tokens, state = update(carry, 0, logits, attention, state)

    def cond(index, tokens, state, carry):
        return ops.logical_and(
            ops.less(index, max_length), ops.logical_not(done(carry))
        )

    def body(index, tokens, state, carry):
        logits, attention, state = step(tokens, state)
        carry, tokens, state = update(carry, index, logits, attention, state)
        return index + 1, tokens, state, carry

    index = ops.convert_to_tensor(1, "int32")
    _, _, _, carry = ops.while_loop(cond, body, (index, tokens, state, carry))
    return Decoded(*(carry[name] for name in Decoded._fields))


def write_at(buffer, index, values, axis):
    """`buffer[..., index, ...] = values`, `index` on `axis` of `buffer`."""
    start = [0] * len(buffer.shape)
    start[axis] = index
    return ops.slice_update(buffer, start, ops.expand_dims(values, axis))


def trailing_shape(x):
    """`x.shape[1:]`, with dynamic sizes where the static ones are unknown
    (e.g. the source length inside a `tf.function` with a `None` input
    dimension)."""
    dynamic = ops.shape(x)
    return tuple(
        dynamic[i] if size is None else size for i, size in enumerate(x.shape)
    )[1:]


def expand_to(mask, x):
    """Appends size-1 axes to `mask` until it has the rank of `x`."""
    for _ in range(len(x.shape) - len(mask.shape)):
        mask = ops.expand_dims(mask, -1)
    return mask


def log_softmax(logits):
    return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)


def take_token(values, tokens):
    """`values[i, tokens[i]]` for `values` `(N, V)` and `tokens` `(N,)`."""
    picked = ops.take_along_axis(values, ops.expand_dims(tokens, -1), axis=-1)
    return ops.squeeze(picked, -1)


def decode_rows(
    caller,
    step_fn,
    start_tokens,
    state,
    constants,
    *,
    max_length,
    end_token,
    pad_token,
    rules,
    choose,
):
    """One sequence per row (greedy search and sampling).

    The inputs come from `prepare_inputs`; `rules` is a
    `constraints.TokenRules`. `choose(logits, banned, index)` returns
    `(tokens, scores, log_probs)`: the next int32 token of every row (never
    one of the `banned` ones, bool `(N, vocab_size)`), its log-probability
    under the distribution it was chosen from, and under the model
    (`log_softmax(logits)`). A row whose every token is banned stops
    (what `choose` returned for it is ignored); so does a row that reaches
    its length limit.
    """
    batch = ops.shape(start_tokens)[0]

    def init(logits, attention):
        return {
            "tokens": ops.full((batch, max_length), pad_token, "int32"),
            "attention": ops.zeros(
                (batch, max_length, *trailing_shape(attention)), "float32"
            ),
            "scores": ops.zeros((batch,), "float32"),
            "log_probs": ops.zeros((batch,), "float32"),
            "lengths": ops.zeros((batch,), "int32"),
            "finished": ops.zeros((batch,), "bool"),
        }

    def update(carry, index, logits, attention, state):
        banned = rules.banned(logits, index, carry["tokens"])
        stuck = ops.all(banned, axis=-1)
        tokens, scores, log_probs = choose(logits, banned, index)
        alive = ops.logical_not(ops.logical_or(carry["finished"], stuck))
        tokens = ops.where(alive, tokens, pad_token)
        attention = ops.where(expand_to(alive, attention), attention, 0.0)
        lengths = carry["lengths"] + ops.cast(alive, "int32")
        finished = ops.logical_or(carry["finished"], stuck)
        if end_token is not None:
            finished = ops.logical_or(finished, ops.equal(tokens, end_token))
        finished = ops.logical_or(finished, rules.reached_limit(lengths))
        carry = {
            "tokens": write_at(carry["tokens"], index, tokens, axis=1),
            "attention": write_at(carry["attention"], index, attention, 1),
            "scores": carry["scores"] + ops.where(alive, scores, 0.0),
            "log_probs": carry["log_probs"] + ops.where(alive, log_probs, 0.0),
            "lengths": lengths,
            "finished": finished,
        }
        return carry, tokens, state

    return run_loop(
        caller,
        step_fn,
        start_tokens,
        state,
        constants,
        max_length=max_length,
        init=init,
        update=update,
        done=lambda carry: ops.all(carry["finished"]),
        token_ids={"end_token": end_token, "pad_token": pad_token},
    )


def mask(logits, banned):
    """`logits` with the `banned` tokens at `-inf` (float32)."""
    return ops.where(banned, float("-inf"), ops.cast(logits, "float32"))
