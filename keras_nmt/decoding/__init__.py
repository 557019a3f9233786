"""Decoding strategies over a one-step function: greedy, sampling, beam search.

A decoder is seen only through a pure one-step function

    step_fn(tokens, state, constants) -> (logits, attention, new_state)

- `tokens`: int32 `(N,)`, the last token of each sequence;
- `state`: nested structure (tensor, tuple, dict) of tensors with leading
  axis `N` that changes from step to step (RNN state, previous attentional
  vector, ...);
- `constants`: nested structure of tensors with leading axis `N` that never
  changes (encoder outputs, projected keys, source mask, ...); sources of
  different lengths are handled by the mask in here;
- `logits`: `(N, vocab_size)`; `attention`: `(N, ...)`, e.g. `(N, Tk)`;
  `new_state`: the structure, shapes and dtypes of `state`.

Every strategy is one `keras.ops.while_loop` over fixed-size buffers that
stops early once every sequence has emitted the end token, written with
`keras.ops` only, so it runs on the TensorFlow, JAX and PyTorch backends and
compiles whole with `compile_decoding`:

- `greedy_search`: the most probable token at every step;
- `sample`: a token drawn from `softmax(logits / temperature)`, optionally
  restricted to the `top_k` most probable tokens and then to the nucleus of
  probability `top_p` (Holtzman et al. 2019);
- `beam_search`: the `beam_width` best hypotheses per source, ranked by the
  GNMT score `log p(y) / lp(|y|) + cp(y)` with the length penalty
  `lp(n) = ((5 + n) / 6) ** alpha` and, for finished hypotheses, the
  coverage penalty `cp = beta * sum_i log(min(attention sum_i, 1))` (Wu et
  al. 2016, "Google's Neural Machine Translation System: Bridging the Gap
  between Human and Machine Translation", arXiv:1609.08144). Beams are
  folded into the batch axis, so the step function never knows about them;
  finished hypotheses are frozen at their end token, and with `n_best` a
  source stops as soon as its `n_best` best hypotheses are settled.

All three never generate the padding token nor the start token, and share
`min_length` (no end token before that many tokens), `no_repeat_ngram_size`
(no n-gram twice) and `max_length_ratio` (at most
`ceil(ratio * source_lengths)` tokens); see `keras_nmt.decoding.constraints`.

All three return a `Decoded(tokens, scores, log_probs, attention, lengths)`.

`DecodingOptions` names a method and validates its options once; `decode`
runs it on a `keras_nmt.seq2seq.Seq2SeqInference`. The names are imported
on first use, so `keras_nmt.decoding.methods` loads without Keras.
"""

from keras_nmt import lazy

_EXPORTS = {
    "DecodingOptions": "keras_nmt.decoding.methods",
    "Decoded": "keras_nmt.decoding.decoded",
    "METHODS": "keras_nmt.decoding.methods",
    "beam_search": "keras_nmt.decoding.beam_search",
    "compile_decoding": "keras_nmt.decoding.compile",
    "decode": "keras_nmt.decoding.methods",
    "greedy_search": "keras_nmt.decoding.greedy",
    "sample": "keras_nmt.decoding.sampling",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy.attach(__name__, _EXPORTS)
