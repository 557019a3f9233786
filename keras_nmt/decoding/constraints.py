"""What no strategy may generate, and where each sequence must stop.

Shared by `greedy_search`, `sample` and `beam_search` (internal). At every
step `TokenRules.banned` says which candidate tokens are forbidden for each
row; the strategies set their logits to `-inf` before choosing, and report
log-probabilities under the model's own distribution (`log_softmax` of the
unmasked logits), as fairseq and Hugging Face do after their logits
processors:

- the padding token and the start token of the row, always (unless one of
  them is also the end token): a model may give them probability, but they
  are never a translation;
- the end token while fewer than `min_length` tokens have been generated;
- with `no_repeat_ngram_size=n`, every token that would complete an n-gram
  the row has already generated (fairseq's `--no-repeat-ngram-size`, Hugging
  Face's `no_repeat_ngram_size`). The start token is not part of the
  history: it is never generated, so no n-gram with it could repeat anyway.

`TokenRules.limits` is the largest number of tokens of each source:
`max_length`, or with `max_length_ratio` the smaller of `max_length` and
`ceil(max_length_ratio * source_length)` (at least 1).
"""

import numbers

import keras
from keras import ops

from keras_nmt.decoding import loop

# `ceil` of a float32 product: 1.1 * 10 is 11.000001 in float32. Products
# within this relative distance above an integer round down to it.
_CEIL_TOLERANCE = 1e-6


def check_ratio(caller, max_length_ratio, source_lengths, batch):
    """Checks `max_length_ratio` and `source_lengths`; returns them as a
    float (or `None`) and an int32 tensor `(batch,)` (or `None`)."""
    if max_length_ratio is None:
        return None, None
    if (
        isinstance(max_length_ratio, bool)
        or not isinstance(max_length_ratio, numbers.Real)
        or not 0 < max_length_ratio < float("inf")
    ):
        raise ValueError(
            f"`{caller}`: `max_length_ratio` must be None or a finite float "
            f"> 0. Received: max_length_ratio={max_length_ratio!r}."
        )
    if source_lengths is None:
        raise ValueError(
            f"`{caller}`: `max_length_ratio={max_length_ratio}` needs the "
            "length of every source: pass `source_lengths`, an int tensor "
            "of shape (batch_size,) (e.g. the number of non-padding source "
            "tokens)."
        )
    source_lengths = ops.convert_to_tensor(source_lengths)
    if (
        len(source_lengths.shape) != 1
        or "int" not in keras.backend.standardize_dtype(source_lengths.dtype)
        or not loop.same_dim(source_lengths.shape[0], batch)
    ):
        raise ValueError(
            f"`{caller}`: `source_lengths` must be int token counts of shape "
            f"({batch},), one per row of `start_tokens`. Received: dtype "
            f"{source_lengths.dtype}, shape {loop.fmt(source_lengths.shape)}."
        )
    return float(max_length_ratio), ops.cast(source_lengths, "int32")


class TokenRules:
    """The banned tokens and length limits of one decoding call.

    Args:
        caller: the strategy's name, for error messages.
        start_tokens: int32 `(batch_size,)`, from `loop.prepare_inputs`.
        repeats: how many rows each source has (`beam_width` for beam
            search, 1 otherwise); rows are source-major.
        max_length, pad_token, end_token: as checked by the strategy.
        min_length: int >= 0, tokens before the end token is allowed.
        no_repeat_ngram_size: int >= 0; 0 allows any repetition.
        max_length_ratio: `None` or a float > 0.
        source_lengths: int tensor `(batch_size,)`, or `None`.
    """

    def __init__(
        self,
        caller,
        start_tokens,
        *,
        repeats,
        max_length,
        pad_token,
        end_token,
        min_length,
        no_repeat_ngram_size,
        max_length_ratio,
        source_lengths,
    ):
        self.min_length = loop.check_int(caller, "min_length", min_length, 0)
        self.ngram = loop.check_int(
            caller, "no_repeat_ngram_size", no_repeat_ngram_size, 0
        )
        self.ratio, source_lengths = check_ratio(
            caller, max_length_ratio, source_lengths, start_tokens.shape[0]
        )
        self.max_length = max_length
        self.pad_token = pad_token
        self.end_token = end_token
        self.start_rows = ops.repeat(start_tokens, repeats, axis=0)
        self.limits = None
        if self.ratio is not None:
            scaled = ops.cast(source_lengths, "float32") * self.ratio
            limits = ops.ceil(scaled * (1.0 - _CEIL_TOLERANCE))
            self.limits = ops.cast(ops.clip(limits, 1, max_length), "int32")

    def banned(self, logits, index, history):
        """bool `(N, vocab_size)`: the tokens row `n` may not take at step
        `index`, given its generated tokens `history` int32
        `(N, max_length)` (valid before position `index`)."""
        vocab = logits.shape[-1]
        if vocab is None:
            vocab = ops.shape(logits)[-1]
        ids = ops.expand_dims(ops.arange(vocab, dtype="int32"), 0)
        banned = ops.equal(ids, ops.expand_dims(self.start_rows, -1))
        banned = ops.logical_or(banned, ops.equal(ids, self.pad_token))
        if self.end_token is not None:
            is_end = ops.equal(ids, self.end_token)
            banned = ops.logical_and(banned, ops.logical_not(is_end))
            if self.min_length > 0:
                too_short = ops.less(index, self.min_length)
                banned = ops.logical_or(
                    banned, ops.logical_and(is_end, too_short)
                )
        if self.ngram > 0:
            repeats = repeated_ngrams(history, index, self.ngram, vocab)
            if repeats is not None:
                banned = ops.logical_or(banned, repeats)
        return banned

    def reached_limit(self, lengths):
        """bool, the shape of `lengths` (`(batch_size, ...)`): whether the
        sequences have as many tokens as their source allows."""
        if self.limits is None:
            return ops.zeros_like(lengths, "bool")
        return ops.greater_equal(lengths, loop.expand_to(self.limits, lengths))

    def limit_lengths(self, batch):
        """float32 `(batch_size,)`: the largest length of each source."""
        if self.limits is None:
            return ops.full((batch,), float(self.max_length), "float32")
        return ops.cast(self.limits, "float32")


def repeated_ngrams(history, index, n, vocab):
    """bool `(N, vocab_size)`: the tokens that would repeat an n-gram.

    Row `r` has generated `history[r, :index]`. Token `v` is banned when
    some n-gram `history[r, p : p + n]` (with `p + n <= index`) starts with
    the row's last `n - 1` tokens and ends with `v`. `None` when no n-gram
    fits in the buffer.
    """
    total = history.shape[1]
    windows = total - n + 1
    if windows <= 0:
        return None
    # Window `p` is complete when its last token is already generated.
    matches = ops.less_equal(ops.arange(windows, dtype="int32"), index - n)
    following = history[:, n - 1 : n - 1 + windows]
    matches = ops.logical_and(
        ops.expand_dims(matches, 0), ops.ones_like(following, "bool")
    )
    for k in range(n - 1):
        # The k-th of the row's last `n - 1` tokens (a negative position
        # only occurs while no window is complete).
        position = ops.maximum(index - n + 1 + k, 0)
        last = ops.take(history, position, axis=1)
        window = history[:, k : k + windows]
        matches = ops.logical_and(
            matches, ops.equal(window, ops.expand_dims(last, -1))
        )
    rows = ops.shape(history)[0]
    row_ids = ops.expand_dims(ops.arange(rows, dtype="int32"), -1)
    row_ids = row_ids + ops.zeros_like(following)
    indices = ops.reshape(ops.stack([row_ids, following], axis=-1), (-1, 2))
    counts = ops.scatter_update(
        ops.zeros((rows, vocab), "float32"),
        indices,
        ops.reshape(ops.cast(matches, "float32"), (-1,)),
        reduction="add",
    )
    return ops.greater(counts, 0.0)
