"""Beam search with the GNMT length and coverage penalties, frozen finished
beams and an early stop that keeps the finished hypotheses exact."""

import numbers

from keras import ops
from keras import tree

from keras_nmt.decoding import constraints
from keras_nmt.decoding import loop
from keras_nmt.decoding.decoded import Decoded


def _length_penalty(lengths, alpha):
    """The GNMT length penalty `lp(len) = ((5 + len) / 6) ** alpha`.

    Wu et al. 2016, "Google's Neural Machine Translation System", eq. 14.
    `alpha = 0` gives 1 (no penalty).
    """
    lengths = ops.cast(lengths, "float32")
    if alpha == 0:
        return ops.ones_like(lengths)
    return ops.power((5.0 + lengths) / 6.0, alpha)


def _coverage_penalty(coverage, beta):
    """The GNMT coverage penalty `beta * sum_i log(min(c_i, 1))`.

    Wu et al. 2016, eq. 14, with `c_i` the attention that source position
    `i` received over all target steps (`coverage`, `(..., Tk)`). Positions
    whose attention sum is exactly 0 count as covered (`log 1 = 0`), as in
    `tfa.seq2seq.BeamSearchDecoder`: a masked softmax gives exactly 0 to
    padded source positions, and only to them, so padding is left out of
    the sum (a real position whose attention underflows to 0 in float32
    would be left out too).
    """
    coverage = ops.where(ops.equal(coverage, 0.0), 1.0, coverage)
    return beta * ops.sum(ops.log(ops.minimum(coverage, 1.0)), axis=-1)


def _check_penalty(caller, name, value, hint):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 <= value < float("inf")
    ):
        raise ValueError(
            f"`{caller}`: `{name}` must be a float >= 0 ({hint}). "
            f"Received: {name}={value!r}."
        )
    return float(value)


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
    coverage_penalty: float = 0.0,
    min_length: int = 0,
    no_repeat_ngram_size: int = 0,
    max_length_ratio: float | None = None,
    source_lengths=None,
    n_best: int | None = None,
):
    """Decodes by keeping the `beam_width` best hypotheses at every step.

    Beams are folded into the batch axis: the step function sees
    `N = batch_size * beam_width` rows, row `b * beam_width + k` being beam
    `k` of source `b`. `state` and `constants` are repeated `beam_width`
    times once, before the loop; after every step the rows of `state` follow
    their beams. The step function never knows about beams.

    At every step each hypothesis `y` is extended by every allowed token
    (never `pad_token` nor the start token, never `end_token` before
    `min_length` tokens, never a token that repeats an n-gram of
    `no_repeat_ngram_size`; see `greedy_search`) and scored with the GNMT
    score (Wu et al. 2016, eq. 14)

        score(y) = log p(y) / lp(|y|) + cp(y),
        lp(n) = ((5 + n) / 6) ** alpha,
        cp(y) = beta * sum_i log(min(sum_j a_ij, 1)),

    where `|y|` counts the end token, `alpha = length_penalty`,
    `beta = coverage_penalty`, and `a_ij` is the attention of target step
    `j` on source position `i` (padded positions, where the attention is 0,
    are left out as in `tfa.seq2seq`). As in `tfa.seq2seq`, `cp` only
    applies to finished hypotheses, here from the step they emit the end
    token on (it measures how much of the source a complete translation
    covers); open hypotheses, and those stopped without an end token, are
    ranked by `log p(y) / lp(|y|)`. The `beam_width` best of all candidates
    of a source are kept. A hypothesis that has emitted `end_token` is
    finished and frozen: its only continuation is `pad_token` at
    log-probability 0, so its log-probability, length and score no longer
    change, and it keeps its place as long as no open hypothesis scores
    better. So is a hypothesis that reaches the length limit of its source
    (`max_length`, or `ceil(max_length_ratio * source_length)`) or that has
    no allowed token left. At the first step only one beam per source is
    open (the others start finished at `-inf`), so the beams do not fill up
    with copies of one hypothesis.

    The loop stops once every beam of every source is frozen, or after
    `max_length` steps. When only the `n_best` best hypotheses are needed,
    a source stops earlier: as soon as its `n_best` best hypotheses are
    finished and no open hypothesis can still beat them. Every step's
    log-probability is <= 0 and `cp <= 0`, so with `alpha >= 0` no
    descendant of an open hypothesis of log-probability `l` scores above
    `l / lp(L)`, `L` the length limit of its source; the source stops once
    the bound of every open hypothesis is below its `n_best`-th best score
    (with `alpha = 0` the bound is `l` itself). The `n_best` best
    hypotheses, their scores and order are then exactly those of the search
    run to the end; the hypotheses ranked after them are returned as they
    were when the source stopped (open ones without an end token), not as
    the full search would have left them.

    Args:
        step_fn: the one-step function
            `step_fn(tokens, state, constants) -> (logits, attention,
            new_state)`; see `greedy_search`. With `coverage_penalty > 0`,
            `attention` must be `(N, source_length)`.
        start_tokens: int tensor `(batch_size,)`, the start token of every
            source.
        state: nested structure of tensors with leading axis `batch_size`
            carried from step to step (reordered with the beams), or `None`.
        constants: nested structure of tensors with leading axis
            `batch_size` read at every step (repeated once for the beams,
            never reordered), or `None`.
        max_length: int >= 1, the largest number of tokens to generate.
        end_token: optional int, the token that ends a hypothesis.
        pad_token: int, the token written after the end token; never
            generated.
        beam_width: int >= 1, the number of hypotheses kept per source
            (`K`). `beam_width=1` is greedy search.
        length_penalty: float >= 0, the GNMT `alpha`. 0 ranks by
            log-probability (which favours short hypotheses); larger values
            favour longer ones. Wu et al. use 0.6 to 1.
        coverage_penalty: float >= 0, the GNMT `beta`: penalises finished
            hypotheses that leave source positions with a total attention
            below 1 (Wu et al. use 0.2 with alpha 0.2). 0 turns it off.
        min_length, no_repeat_ngram_size, max_length_ratio,
            source_lengths: as for `greedy_search`.
        n_best: optional int in `[1, beam_width]`, the number of best
            hypotheses the caller needs: a source stops as soon as they are
            settled (see above). `None` (all `beam_width`) stops only when
            every hypothesis is finished, so all of them are those of the
            full search.

    Returns:
        A `Decoded(tokens, scores, log_probs, attention, lengths)` with all
        `K` hypotheses of every source, best score first: `tokens` int32
        `(batch_size, K, max_length)`, `scores` float32 `(batch_size, K)`
        (the GNMT scores above), `log_probs` float32 `(batch_size, K)`
        (the model's log-probabilities, unpenalised), `attention` float32
        `(batch_size, K, max_length, ...)` (the history of each hypothesis's
        own ancestors), `lengths` int32 `(batch_size, K)`. When fewer than
        `K` hypotheses exist (e.g. `K` above the number of allowed tokens at
        `max_length=1`), the missing ones have score `-inf`, length 0 and
        only `pad_token`.

    Raises:
        ValueError: for `beam_width < 1`, `length_penalty < 0`,
            `coverage_penalty < 0` (or `> 0` with attention not of rank 2),
            the options of `greedy_search`, `max_length < 1`, `start_tokens`
            not of rank 1, token ids that are not ints >= 0, and, on the
            first call of `step_fn`, outputs of the wrong shapes or
            structure.

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
    alpha = _check_penalty(
        caller,
        "length_penalty",
        length_penalty,
        "the GNMT alpha; 0 means no penalty",
    )
    beta = _check_penalty(
        caller,
        "coverage_penalty",
        coverage_penalty,
        "the GNMT beta; 0 means no penalty",
    )
    if n_best is None:
        n_best = beam_width
    n_best = loop.check_int(caller, "n_best", n_best, 1)
    if n_best > beam_width:
        raise ValueError(
            f"`{caller}`: `n_best` must be at most `beam_width` "
            f"({beam_width}): beam search keeps beam_width hypotheses. "
            f"Received: n_best={n_best}."
        )
    start_tokens, state, constants = loop.prepare_inputs(
        caller, start_tokens, state, constants
    )
    width = beam_width
    rules = constraints.TokenRules(
        caller,
        start_tokens,
        repeats=width,
        max_length=max_length,
        pad_token=pad_token,
        end_token=end_token,
        min_length=min_length,
        no_repeat_ngram_size=no_repeat_ngram_size,
        max_length_ratio=max_length_ratio,
        source_lengths=source_lengths,
    )
    batch = ops.shape(start_tokens)[0]
    # Within one beam, all candidates have the same length, so they rank by
    # their logits, except the end token, which the coverage penalty may
    # push down by one place.
    candidates = width + (1 if beta > 0 and end_token is not None else 0)

    def repeat(x):
        return ops.repeat(x, width, axis=0)

    def unfold(x):
        """`(batch * width, ...)` -> `(batch, width, ...)`."""
        return ops.reshape(x, (batch, width, *loop.trailing_shape(x)))

    def fold(x):
        """`(batch, width, ...)` -> `(batch * width, ...)`."""
        return ops.reshape(x, (-1, *loop.trailing_shape(x)[1:]))

    def init(logits, attention):
        if beta > 0 and len(attention.shape) != 2:
            raise ValueError(
                f"`{caller}`: `coverage_penalty` needs `step_fn` to return "
                "attention of shape (N, source_length), one weight per "
                "source position. Received: attention of shape "
                f"{loop.fmt(attention.shape)}. Use coverage_penalty=0."
            )
        # Beam 0 of every source is open; the others start finished at -inf,
        # so the first step expands one hypothesis per source.
        first = ops.expand_dims(ops.equal(ops.arange(width), 0), 0)
        first = ops.logical_and(first, ops.ones((batch, 1), "bool"))
        carry = {
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
        if beta > 0:
            carry["coverage"] = ops.zeros(
                (batch, width, *loop.trailing_shape(attention)), "float32"
            )
        return carry

    def candidates_of(carry, index, logits, attention):
        """The best `per_beam` continuations of every beam: their tokens,
        log-probabilities, lengths, scores, whether they are impossible
        (banned), and which beams were frozen."""
        vocab = logits.shape[-1]
        per_beam = candidates if vocab is None else min(candidates, vocab)
        banned = rules.banned(logits, index, fold(carry["tokens"]))
        # A beam with no allowed token left stops, like a finished one.
        stuck = unfold(ops.all(banned, axis=-1))
        frozen = ops.logical_or(carry["finished"], stuck)
        top_logits, top_tokens = ops.top_k(loop.mask(logits, banned), per_beam)
        step_log_probs = unfold(
            top_logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        )
        top_tokens = unfold(ops.cast(top_tokens, "int32"))
        # A frozen hypothesis continues only with pad, at log-prob 0.
        pad_only = ops.where(
            ops.equal(ops.arange(per_beam), 0), 0.0, float("-inf")
        )
        frozen_k = ops.expand_dims(frozen, -1)
        step_log_probs = ops.where(frozen_k, pad_only, step_log_probs)
        # With fewer allowed tokens than `per_beam`, the rest are banned
        # (-inf): they fill places only when nothing else can.
        impossible = ops.logical_and(
            ops.isneginf(step_log_probs), ops.logical_not(frozen_k)
        )
        top_tokens = ops.where(
            ops.logical_or(frozen_k, impossible), pad_token, top_tokens
        )
        log_probs = ops.expand_dims(carry["log_probs"], -1) + step_log_probs
        lengths = carry["lengths"] + ops.cast(ops.logical_not(frozen), "int32")
        scores = log_probs / ops.expand_dims(
            _length_penalty(lengths, alpha), -1
        )
        coverage = None
        if beta > 0:
            open_ = loop.expand_to(ops.logical_not(frozen), carry["coverage"])
            coverage = carry["coverage"] + ops.where(
                open_, unfold(attention), 0.0
            )
            if end_token is not None:
                ends = ops.logical_and(
                    ops.equal(top_tokens, end_token), ops.logical_not(frozen_k)
                )
                penalty = ops.expand_dims(_coverage_penalty(coverage, beta), -1)
                scores = scores + ops.where(ends, penalty, 0.0)
        # A frozen hypothesis keeps its score.
        scores = ops.where(
            frozen_k, ops.expand_dims(carry["scores"], -1) + pad_only, scores
        )
        return {
            "tokens": top_tokens,
            "log_probs": log_probs,
            "lengths": lengths,
            "scores": scores,
            "impossible": impossible,
            "frozen": frozen,
            "coverage": coverage,
            "per_beam": per_beam,
        }

    def settled(scores, log_probs, finished):
        """bool `(batch, 1)`: whether the `n_best` best hypotheses of a
        source are finished and beyond the reach of its open ones (the
        hypotheses are sorted, best first)."""
        top = ops.logical_and(finished, ops.isfinite(scores))[:, :n_best]
        nth_best = scores[:, n_best - 1 : n_best]
        reachable = log_probs / ops.expand_dims(
            _length_penalty(rules.limit_lengths(batch), alpha), -1
        )
        hopeful = ops.logical_and(
            ops.logical_not(finished), reachable >= nth_best
        )
        return ops.logical_and(
            ops.all(top, axis=1, keepdims=True),
            ops.logical_not(ops.any(hopeful, axis=1, keepdims=True)),
        )

    def update(carry, index, logits, attention, state):
        c = candidates_of(carry, index, logits, attention)
        per_beam = c["per_beam"]

        # The best `width` of the `width * per_beam` candidates of a source.
        scores, flat = ops.top_k(ops.reshape(c["scores"], (batch, -1)), width)
        beams = ops.cast(flat // per_beam, "int32")

        def pick(x):
            """The chosen candidates of `(batch, width, per_beam)`."""
            return ops.take_along_axis(ops.reshape(x, (batch, -1)), flat, 1)

        def follow(x):
            """Reorders `(batch, width, ...)` along the chosen beams."""
            indices = loop.expand_to(beams, x)
            return ops.take_along_axis(x, indices, axis=1)

        tokens = pick(c["tokens"])
        log_probs = pick(c["log_probs"])
        lengths = follow(c["lengths"])
        was_frozen = follow(c["frozen"])
        finished = ops.logical_or(was_frozen, pick(c["impossible"]))
        if end_token is not None:
            finished = ops.logical_or(finished, ops.equal(tokens, end_token))
        finished = ops.logical_or(finished, rules.reached_limit(lengths))
        if n_best < width:
            finished = ops.logical_or(
                finished, settled(scores, log_probs, finished)
            )
        attention = follow(unfold(attention))
        attention = ops.where(
            loop.expand_to(ops.logical_not(was_frozen), attention),
            attention,
            0.0,
        )
        rows = ops.expand_dims(ops.arange(batch, dtype="int32") * width, -1)
        rows = ops.reshape(rows + beams, (-1,))
        new_carry = {
            "tokens": loop.write_at(
                follow(carry["tokens"]), index, tokens, axis=2
            ),
            "attention": loop.write_at(
                follow(carry["attention"]), index, attention, axis=2
            ),
            "scores": scores,
            "log_probs": log_probs,
            "lengths": lengths,
            "finished": finished,
        }
        if c["coverage"] is not None:
            new_carry["coverage"] = follow(c["coverage"])
        state = tree.map_structure(lambda x: ops.take(x, rows, axis=0), state)
        return new_carry, fold(tokens), state

    out = loop.run_loop(
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
    # Impossible candidates that filled places: no hypothesis at all.
    missing = ops.isneginf(out.scores)
    return Decoded(
        tokens=ops.where(
            loop.expand_to(missing, out.tokens), pad_token, out.tokens
        ),
        scores=out.scores,
        log_probs=out.log_probs,
        attention=ops.where(
            loop.expand_to(missing, out.attention), 0.0, out.attention
        ),
        lengths=ops.where(missing, 0, out.lengths),
    )
