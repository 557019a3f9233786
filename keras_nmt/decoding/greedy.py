"""Greedy search: the most probable next token at every step."""

from keras import ops

from keras_nmt.decoding import constraints
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
    min_length: int = 0,
    no_repeat_ngram_size: int = 0,
    max_length_ratio: float | None = None,
    source_lengths=None,
):
    """Decodes by taking the most probable next token at every step.

    The whole search is one `keras.ops.while_loop` over fixed-size buffers;
    it stops as soon as every row has emitted `end_token` (or after
    `max_length` steps).

    The most probable token is taken among the allowed ones: never
    `pad_token` nor the row's start token (unless it is `end_token`), never
    `end_token` before `min_length` tokens, never a token that repeats an
    n-gram of `no_repeat_ngram_size` tokens. A row with no allowed token
    left stops where it is.

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
        pad_token: int, the token written after the end token; never
            generated.
        min_length: int >= 0, the number of tokens generated before
            `end_token` is allowed (the end token not counted).
        no_repeat_ngram_size: int >= 0. `n > 0` forbids every token that
            would repeat an n-gram of the row's generated tokens (`n = 1`:
            no token twice). 0 allows repetitions.
        max_length_ratio: optional float > 0: row `b` generates at most
            `min(max_length, ceil(max_length_ratio * source_lengths[b]))`
            tokens (at least 1; the product is computed in float32, and a
            product within a relative 1e-6 above an integer counts as that
            integer, so that `1.1 * 10` gives 11).
        source_lengths: int tensor `(batch_size,)`, the number of tokens of
            every source; needed by `max_length_ratio` (and only read by
            it).

    Returns:
        A `Decoded(tokens, scores, log_probs, attention, lengths)`: `tokens`
        int32 `(batch_size, max_length)`, `scores` and `log_probs` float32
        `(batch_size,)` (both the sum of the model's log-probabilities of the
        generated tokens), `attention` float32
        `(batch_size, max_length, ...)`, `lengths` int32 `(batch_size,)`. See
        `Decoded`.

    Raises:
        ValueError: for `max_length < 1`, `min_length` or
            `no_repeat_ngram_size` not an int >= 0, `max_length_ratio` not
            None or a float > 0 (or given without `source_lengths`),
            `start_tokens` not of rank 1, token ids that are not ints >= 0,
            and, on the first call of `step_fn`, outputs of the wrong shapes
            or structure.

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
    rules = constraints.TokenRules(
        caller,
        start_tokens,
        repeats=1,
        max_length=max_length,
        pad_token=pad_token,
        end_token=end_token,
        min_length=min_length,
        no_repeat_ngram_size=no_repeat_ngram_size,
        max_length_ratio=max_length_ratio,
        source_lengths=source_lengths,
    )

    def choose(logits, banned, index):
        masked = loop.mask(logits, banned)
        tokens = ops.cast(ops.argmax(masked, axis=-1), "int32")
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
        rules=rules,
        choose=choose,
    )
