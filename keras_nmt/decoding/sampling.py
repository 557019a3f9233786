"""Random sampling of the next token, with temperature, top-k and top-p."""

import numbers

import keras
from keras import ops

from keras_nmt.decoding import constraints
from keras_nmt.decoding import loop


def sample(
    step_fn,
    start_tokens,
    state,
    constants=None,
    *,
    max_length: int,
    end_token: int | None = None,
    pad_token: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed=None,
    min_length: int = 0,
    no_repeat_ngram_size: int = 0,
    max_length_ratio: float | None = None,
    source_lengths=None,
):
    """Decodes by drawing every next token from the model's distribution.

    At every step the banned tokens are dropped (`pad_token`, the row's
    start token, `end_token` before `min_length` tokens, tokens that repeat
    an n-gram of `no_repeat_ngram_size`; see `greedy_search`), the logits
    are divided by `temperature`, all but the `top_k` largest are dropped
    (if `top_k` is given), then all but the nucleus of probability `top_p`
    (if `top_p` is given), and the next token is drawn from the softmax of
    what is left. A row with no allowed token left stops where it is.

    The nucleus (Holtzman et al. 2019, "The Curious Case of Neural Text
    Degeneration", arXiv:1904.09751) is the smallest set of most probable
    tokens whose probabilities add up to at least `top_p`: a token is kept
    when the tokens more probable than it add up to less than `top_p`, so
    the most probable token is always kept (and tokens tied with the least
    probable kept one are kept too).

    The random numbers are drawn once, before the loop: one uniform number
    per row and step, from `keras.random.uniform(seed=seed)`. Step `i` turns
    row `i` of them into a token by inverting the cumulative distribution.
    This needs no seed tensor inside the loop, so it runs the same way under
    `tf.function`, `jax.jit` and eager PyTorch; a given seed gives the same
    tokens on every call of a backend (the random streams differ between
    backends).

    Args:
        step_fn: the one-step function
            `step_fn(tokens, state, constants) -> (logits, attention,
            new_state)`; see `greedy_search`.
        start_tokens: int tensor `(batch_size,)`, the start token of every
            row.
        state: nested structure of tensors with leading axis `batch_size`
            carried from step to step, or `None`.
        constants: nested structure of tensors with leading axis
            `batch_size` read at every step, or `None`.
        max_length: int >= 1, the largest number of tokens to generate.
        end_token: optional int, the token that ends a sequence.
        pad_token: int, the token written after the end token.
        temperature: float > 0. Below 1 sharpens the distribution, above 1
            flattens it. For the most probable token use `greedy_search`.
        top_k: optional int in `[1, vocab_size]`: sample only among the
            `top_k` most probable tokens (tokens tied with the `top_k`-th
            logit are kept too).
        top_p: optional float in `(0, 1]`: sample only from the nucleus of
            probability `top_p` of the distribution left after temperature
            and `top_k`. `None` or 1 keeps every token.
        seed: an int (the same int gives the same tokens), a
            `keras.random.SeedGenerator` (new tokens on every call; under
            `compile_decoding` on JAX list its `state` in `variables`), or
            `None` (new tokens on every eager call; not allowed under
            `jax.jit`).
        min_length, no_repeat_ngram_size, max_length_ratio,
            source_lengths: as for `greedy_search`.

    Returns:
        A `Decoded(tokens, scores, log_probs, attention, lengths)` shaped as
        for `greedy_search`. `scores` sums the log-probabilities of the
        tokens under the distribution they were drawn from (after
        banned tokens, temperature, top-k and top-p); `log_probs` sums them
        under the model (`log_softmax(logits)`).

    Raises:
        ValueError: for `temperature <= 0`, `top_k` outside
            `[1, vocab_size]`, `top_p` outside `(0, 1]`, the options of
            `greedy_search`, `max_length < 1`, `start_tokens` not of rank
            1, token ids that are not ints >= 0, and, on the first call of
            `step_fn`, outputs of the wrong shapes or structure.

    Example:

    >>> table = keras.ops.log_softmax(keras.random.normal((5, 5), seed=1))
    >>> def step_fn(tokens, state, constants):
    ...     return keras.ops.take(table, tokens, axis=0), state, state
    >>> out = sample(
    ...     step_fn, [1, 2], keras.ops.zeros((2, 3)), max_length=4,
    ...     temperature=0.7, top_k=3, seed=42)
    >>> tuple(out.tokens.shape)
    (2, 4)
    """
    caller = "sample"
    max_length = loop.check_int(caller, "max_length", max_length, 1)
    end_token = loop.check_token_id(caller, "end_token", end_token, True)
    pad_token = loop.check_token_id(caller, "pad_token", pad_token)
    if isinstance(temperature, bool) or not isinstance(
        temperature, numbers.Real
    ):
        raise ValueError(
            f"`{caller}`: `temperature` must be a float > 0. "
            f"Received: temperature={temperature!r}."
        )
    if not temperature > 0:
        raise ValueError(
            f"`{caller}`: `temperature` must be > 0. Received: "
            f"temperature={temperature}. For the most probable token at every "
            "step (the limit temperature -> 0), use `greedy_search`."
        )
    if top_k is not None:
        top_k = loop.check_int(caller, "top_k", top_k, 1)
    if top_p is not None and (
        isinstance(top_p, bool)
        or not isinstance(top_p, numbers.Real)
        or not 0 < top_p <= 1
    ):
        raise ValueError(
            f"`{caller}`: `top_p` must be None or a float in (0, 1]: the "
            "probability mass of the most probable tokens to sample from. "
            f"Received: top_p={top_p!r}."
        )
    temperature = float(temperature)
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

    batch = ops.shape(start_tokens)[0]
    try:
        uniform = keras.random.uniform(
            (max_length, batch), dtype="float32", seed=seed
        )
    except ValueError as error:
        if seed is not None:
            raise
        raise ValueError(
            f"`{caller}`: `seed=None` cannot draw random numbers here (under "
            "`jax.jit`, e.g. through `compile_decoding`). Pass an int seed, "
            "or a `keras.random.SeedGenerator` whose `state` is listed in "
            "`compile_decoding(..., variables=[...])`."
        ) from error
    # u = 0 would pick a first token of probability 0.
    uniform = ops.maximum(uniform, 1e-12)

    def choose(logits, banned, index):
        vocab = logits.shape[-1]
        if top_k is not None and isinstance(vocab, int) and top_k > vocab:
            raise ValueError(
                f"`{caller}`: `top_k` must be at most the vocabulary size "
                f"{vocab} of the logits. Received: top_k={top_k}."
            )
        # A row with every token banned stops; give it finite logits so
        # that nothing below turns into NaN.
        stuck = ops.expand_dims(ops.all(banned, axis=-1), -1)
        scaled = ops.where(stuck, 0.0, loop.mask(logits, banned))
        scaled = scaled / temperature
        if top_k is not None:
            kth_largest = ops.top_k(scaled, top_k)[0][:, -1:]
            scaled = ops.where(scaled >= kth_largest, scaled, float("-inf"))
        if top_p is not None and top_p < 1:
            scaled = nucleus(scaled, top_p)
        sampled_log_probs = loop.log_softmax(scaled)
        cumulative = ops.cumsum(ops.exp(sampled_log_probs), axis=-1)
        # Inverse CDF: the token is the number of cumulative probabilities
        # below u (scaled by the total, which float rounding keeps near 1).
        u = ops.take(uniform, index, axis=0) * cumulative[:, -1]
        tokens = ops.sum(
            ops.cast(cumulative < ops.expand_dims(u, -1), "int32"), axis=-1
        )
        tokens = ops.minimum(tokens, ops.shape(logits)[-1] - 1)
        return (
            tokens,
            loop.take_token(sampled_log_probs, tokens),
            loop.take_token(loop.log_softmax(logits), tokens),
        )

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


def nucleus(logits, top_p):
    """`logits` `(N, V)` with every token outside the nucleus of
    probability `top_p` at `-inf` (see `sample`)."""
    ranked = ops.flip(ops.sort(logits, axis=-1), axis=-1)  # descending
    probs = ops.softmax(ranked, axis=-1)
    cumulative = ops.cumsum(probs, axis=-1)
    # The mass of the tokens ranked before each token.
    before = ops.concatenate(
        [ops.zeros_like(cumulative[:, :1]), cumulative[:, :-1]], axis=-1
    )
    kept = ops.where(ops.less(before, top_p), ranked, float("inf"))
    smallest = ops.min(kept, axis=-1, keepdims=True)
    return ops.where(logits >= smallest, logits, float("-inf"))
