"""The result type shared by every decoding strategy."""

from typing import Any
from typing import NamedTuple


class Decoded(NamedTuple):
    """What a decoding strategy returns: one fixed structure for all of them.

    `greedy_search` and `sample` return one sequence per source row;
    `beam_search` returns `beam_width` hypotheses per source, best first, with
    an extra `K = beam_width` axis after the batch axis. `L` is `max_length`.

    Attributes:
        tokens: int32 `(B, L)` (beam search: `(B, K, L)`), the generated
            tokens without the start token. The end token, when emitted, is
            kept at its position; every position after it is `pad_token`.
        scores: float32 `(B,)` (beam search: `(B, K)`), the value the
            strategy ranks by. Greedy: the sum of the model's
            log-probabilities of the tokens. Sampling: the sum of the
            log-probabilities under the distribution actually sampled from
            (after the banned tokens, temperature, top-k and top-p).
            Beam search: the GNMT score `log_probs / lp(lengths)`, plus the
            coverage penalty for hypotheses that emitted the end token;
            `-inf` for a missing hypothesis.
        log_probs: float32, the shape of `scores`: the sum of the model's own
            log-probabilities `log_softmax(logits)` of the generated tokens
            (end token included), untempered and unpenalised, for every
            strategy.
        attention: float32 `(B, L, *attention_shape)` (beam search:
            `(B, K, L, *attention_shape)`), what the step function returned
            as attention at each step, zeros after the end token. In beam
            search the history of a hypothesis is the history of its own
            ancestors.
        lengths: int32 `(B,)` (beam search: `(B, K)`), the number of
            generated tokens, end token included; for a sequence that never
            ended, `L` or the limit it stopped at (`max_length_ratio`, no
            allowed token left, or a beam search stopped early).
    """

    tokens: Any
    scores: Any
    log_probs: Any
    attention: Any
    lengths: Any
