"""Greedy search: the most probable next token at every step."""

from keras import ops

from keras_nmt.decoding import loop


def greedy_search(
    step_fn,
    start_tokens,
    state,
    constants=None,
    *,
    max_length: int,
    end_token: int | None = None,
    pad_token: int = 0,
):
    """Decodes by taking the most probable next token at every step.

    The whole search is one `keras.ops.while_loop` over fixed-size buffers;
    it stops as soon as every row has emitted `end_token` (or after
    `max_length` steps).

    Args:
        step_fn: the one-step function
            `step_fn(tokens, state, constants) -> (logits, attention,
            new_state)`: `tokens` int32 `(N,)` (the last token of each
            sequence), `logits` `(N, vocab_size)`, `attention` `(N, ...)`
            (e.g. `(N, Tk)`), `new_state` with the structure, shapes and
            dtypes of `state`. Written with `keras.ops` it runs on every
            backend.
        start_tokens: int tensor `(batch_size,)`, the start token of every
            row.
        state: nested structure (tensor, tuple, dict) of tensors with leading
            axis `batch_size` that the step function carries from step to
            step (e.g. the decoder's RNN state), or `None`.
        constants: nested structure of tensors with leading axis
            `batch_size` that the step function reads but never changes (e.g.
            encoder outputs, projected keys, source mask), or `None`.
        max_length: int >= 1, the largest number of tokens to generate.
        end_token: optional int, the token that ends a sequence. `None`
            generates exactly `max_length` tokens.
        pad_token: int, the token written after the end token.

    Returns:
        A `Decoded(tokens, scores, log_probs, attention, lengths)`: `tokens`
        int32 `(batch_size, max_length)`, `scores` and `log_probs` float32
        `(batch_size,)` (both the sum of the model's log-probabilities of the
        generated tokens), `attention` float32
        `(batch_size, max_length, ...)`, `lengths` int32 `(batch_size,)`. See
        `Decoded`.

    Raises:
        ValueError: for `max_length < 1`, `start_tokens` not of rank 1, token
            ids that are not ints >= 0, and, on the first call of `step_fn`,
            outputs of the wrong shapes or structure.

    Example:

    >>> table = keras.ops.log_softmax(keras.random.normal((5, 5), seed=1))
    >>> def step_fn(tokens, state, constants):
    ...     return keras.ops.take(table, tokens, axis=0), state, state
    >>> out = greedy_search(
    ...     step_fn, [1, 2], keras.ops.zeros((2, 3)), max_length=4,
    ...     end_token=0)
    >>> tuple(out.tokens.shape)
    (2, 4)
    """
    caller = "greedy_search"
    max_length = loop.check_int(caller, "max_length", max_length, 1)
    end_token = loop.check_token_id(caller, "end_token", end_token, True)
    pad_token = loop.check_token_id(caller, "pad_token", pad_token)
    start_tokens, state, constants = loop.prepare_inputs(
        caller, start_tokens, state, constants
    )

    def choose(logits, index):
        tokens = ops.cast(ops.argmax(logits, axis=-1), "int32")
        log_probs = loop.take_token(loop.log_softmax(logits), tokens)
        return tokens, log_probs, log_probs

    return loop.decode_rows(
        caller,
        step_fn,
        start_tokens,
        state,
        constants,
        max_length=max_length,
        end_token=end_token,
        pad_token=pad_token,
        choose=choose,
    )
