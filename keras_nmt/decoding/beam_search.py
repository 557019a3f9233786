"""Beam search with the GNMT length penalty and frozen finished beams."""

import numbers

from keras import ops
from keras import tree

from keras_nmt.decoding import loop


def _length_penalty(lengths, alpha):
    """The GNMT length penalty `lp(len) = ((5 + len) / 6) ** alpha`.

    Wu et al. 2016, "Google's Neural Machine Translation System", eq. 14.
    `alpha = 0` gives 1 (no penalty).
    """
    lengths = ops.cast(lengths, "float32")
    if alpha == 0:
        return ops.ones_like(lengths)
    return ops.power((5.0 + lengths) / 6.0, alpha)


def beam_search(
    step_fn,
    start_tokens,
    state,
    constants=None,
    *,
    max_length: int,
    end_token: int | None = None,
    pad_token: int = 0,
    beam_width: int = 4,
    length_penalty: float = 0.0,
):
    """Decodes by keeping the `beam_width` best hypotheses at every step.

    Beams are folded into the batch axis: the step function sees
    `N = batch_size * beam_width` rows, row `b * beam_width + k` being beam
    `k` of source `b`. `state` and `constants` are repeated `beam_width`
    times once, before the loop; after every step the rows of `state` follow
    their beams. The step function never knows about beams.

    At every step each hypothesis `y` is extended by every token and scored
    with the GNMT length-penalised log-probability (Wu et al. 2016)

        score(y) = log p(y) / lp(|y|),   lp(n) = ((5 + n) / 6) ** alpha,

    where `|y|` counts the end token and `alpha = length_penalty`; the
    `beam_width` best of all `beam_width * vocab_size` candidates of a source
    are kept. A hypothesis that has emitted `end_token` is finished and
    frozen: its only continuation is `pad_token` at log-probability 0, so its
    log-probability, length and score no longer change, and it keeps its
    place as long as no open hypothesis scores better. At the first step only
    one beam per source is open (the others start finished at `-inf`), so the
    beams do not fill up with copies of one hypothesis. The loop stops once
    every beam of every source has finished, or after `max_length` steps.

    Args:
        step_fn: the one-step function
            `step_fn(tokens, state, constants) -> (logits, attention,
            new_state)`; see `greedy_search`.
        start_tokens: int tensor `(batch_size,)`, the start token of every
            source.
        state: nested structure of tensors with leading axis `batch_size`
            carried from step to step (reordered with the beams), or `None`.
        constants: nested structure of tensors with leading axis
            `batch_size` read at every step (repeated once for the beams,
            never reordered), or `None`.
        max_length: int >= 1, the largest number of tokens to generate.
        end_token: optional int, the token that ends a hypothesis.
        pad_token: int, the token written after the end token.
        beam_width: int >= 1, the number of hypotheses kept per source
            (`K`). `beam_width=1` is greedy search.
        length_penalty: float >= 0, the GNMT `alpha`. 0 ranks by
            log-probability (which favours short hypotheses); larger values
            favour longer ones. Wu et al. use 0.6 to 1.

    Returns:
        A `Decoded(tokens, scores, log_probs, attention, lengths)` with all
        `K` hypotheses of every source, best score first: `tokens` int32
        `(batch_size, K, max_length)`, `scores` float32 `(batch_size, K)`
        (the length-penalised scores), `log_probs` float32 `(batch_size, K)`
        (the model's log-probabilities, unpenalised), `attention` float32
        `(batch_size, K, max_length, ...)` (the history of each hypothesis's
        own ancestors), `lengths` int32 `(batch_size, K)`. When fewer than
        `K` hypotheses exist (e.g. `K > vocab_size` at `max_length=1`), the
        missing ones have score `-inf`, length 0 and only `pad_token`.

    Raises:
        ValueError: for `beam_width < 1`, `length_penalty < 0`,
            `max_length < 1`, `start_tokens` not of rank 1, token ids that are
            not ints >= 0, and, on the first call of `step_fn`, outputs of the
            wrong shapes or structure.

    Example:

    >>> table = keras.ops.log_softmax(keras.random.normal((5, 5), seed=1))
    >>> def step_fn(tokens, state, constants):
    ...     return keras.ops.take(table, tokens, axis=0), state, state
    >>> out = beam_search(
    ...     step_fn, [1, 2], keras.ops.zeros((2, 3)), max_length=4,
    ...     end_token=0, beam_width=3, length_penalty=0.6)
    >>> tuple(out.tokens.shape)
    (2, 3, 4)
    """
    caller = "beam_search"
    max_length = loop.check_int(caller, "max_length", max_length, 1)
    beam_width = loop.check_int(caller, "beam_width", beam_width, 1)
    end_token = loop.check_token_id(caller, "end_token", end_token, True)
    pad_token = loop.check_token_id(caller, "pad_token", pad_token)
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, numbers.Real)
        or not length_penalty >= 0
    ):
        raise ValueError(
            f"`{caller}`: `length_penalty` must be a float >= 0 (the GNMT "
            "alpha; 0 means no penalty). Received: "
            f"length_penalty={length_penalty!r}."
        )
    alpha = float(length_penalty)
    start_tokens, state, constants = loop.prepare_inputs(
        caller, start_tokens, state, constants
    )
    batch = ops.shape(start_tokens)[0]
    width = beam_width

    def repeat(x):
        return ops.repeat(x, width, axis=0)

    def unfold(x):
        """`(batch * width, ...)` -> `(batch, width, ...)`."""
        return ops.reshape(x, (batch, width, *loop.trailing_shape(x)))

    def fold(x):
        """`(batch, width, ...)` -> `(batch * width, ...)`."""
        return ops.reshape(x, (-1, *loop.trailing_shape(x)[1:]))

    def init(logits, attention):
        # Beam 0 of every source is open; the others start finished at -inf,
        # so the first step expands one hypothesis per source.
        first = ops.expand_dims(ops.equal(ops.arange(width), 0), 0)
        first = ops.logical_and(first, ops.ones((batch, 1), "bool"))
        return {
            "tokens": ops.full((batch, width, max_length), pad_token, "int32"),
            "attention": ops.zeros(
                (batch, width, max_length, *loop.trailing_shape(attention)),
                "float32",
            ),
            "scores": ops.where(first, 0.0, float("-inf")),
            "log_probs": ops.where(first, 0.0, float("-inf")),
            "lengths": ops.zeros((batch, width), "int32"),
            "finished": ops.logical_not(first),
        }

    def update(carry, index, logits, attention, state):
        vocab = logits.shape[-1]
        per_beam = width if vocab is None else min(width, vocab)
        finished = carry["finished"]
        # The candidates of one beam all get the same length, so their order
        # is the order of their logits, and at most `width` of them can be
        # among the `width` best of the source: rank each beam's `width`
        # best tokens only, not the whole vocabulary (a few cheap passes
        # over the logits instead of several over `width * vocab` scores).
        top_logits, top_tokens = ops.top_k(logits, per_beam)
        step_log_probs = unfold(
            top_logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        )
        top_tokens = unfold(ops.cast(top_tokens, "int32"))
        # A finished hypothesis continues only with pad, at log-prob 0.
        pad_only = ops.where(
            ops.equal(ops.arange(per_beam), 0), 0.0, float("-inf")
        )
        step_log_probs = ops.where(
            ops.expand_dims(finished, -1), pad_only, step_log_probs
        )
        top_tokens = ops.where(
            ops.expand_dims(finished, -1), pad_token, top_tokens
        )
        log_probs = ops.expand_dims(carry["log_probs"], -1) + step_log_probs
        lengths = carry["lengths"] + ops.cast(
            ops.logical_not(finished), "int32"
        )
        scores = log_probs / ops.expand_dims(
            _length_penalty(lengths, alpha), -1
        )

        # The best `width` of the `width * per_beam` candidates of a source.
        scores, flat = ops.top_k(ops.reshape(scores, (batch, -1)), width)
        beams = ops.cast(flat // per_beam, "int32")
        tokens = ops.take_along_axis(
            ops.reshape(top_tokens, (batch, -1)), flat, axis=1
        )

        def follow(x):
            """Reorders `(batch, width, ...)` along the chosen beams."""
            indices = loop.expand_to(beams, x)
            return ops.take_along_axis(x, indices, axis=1)

        was_finished = follow(finished)
        now_finished = was_finished
        if end_token is not None:
            now_finished = ops.logical_or(
                was_finished, ops.equal(tokens, end_token)
            )
        attention = follow(unfold(attention))
        attention = ops.where(
            loop.expand_to(ops.logical_not(was_finished), attention),
            attention,
            0.0,
        )
        rows = ops.expand_dims(ops.arange(batch, dtype="int32") * width, -1)
        rows = ops.reshape(rows + beams, (-1,))
        carry = {
            "tokens": loop.write_at(
                follow(carry["tokens"]), index, tokens, axis=2
            ),
            "attention": loop.write_at(
                follow(carry["attention"]), index, attention, axis=2
            ),
            "scores": scores,
            "log_probs": ops.take_along_axis(
                ops.reshape(log_probs, (batch, -1)), flat, axis=1
            ),
            "lengths": follow(lengths),
            "finished": now_finished,
        }
        state = tree.map_structure(lambda x: ops.take(x, rows, axis=0), state)
        return carry, fold(tokens), state

    return loop.run_loop(
        caller,
        step_fn,
        repeat(start_tokens),
        tree.map_structure(repeat, state),
        tree.map_structure(repeat, constants),
        max_length=max_length,
        init=init,
        update=update,
        done=lambda carry: ops.all(carry["finished"]),
        token_ids={"end_token": end_token, "pad_token": pad_token},
    )
